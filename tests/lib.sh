# tests/lib.sh: the helpers the test scripts share. Sourced, not run. The
# script sets TMP (its temp dir) and passed=0 failed=0 skipped=0 first; it may
# redefine pass and fail to report in its own way (test.sh keeps passes quiet).

# One line per check: "ok   NAME", "FAIL NAME: DETAIL", "SKIP NAME: WHY".
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $1: $2"; }

# check NAME COMMAND...: passes when the command succeeds.
check() {
	local name=$1
	shift
	if "$@" >/dev/null 2>&1; then pass "$name"; else fail "$name"; fi
}

# expect NAME GOT WANT
expect() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "got [$2], want [$3]"; fi
}

# jqcheck NAME FILTER [FILE]: the JSON (default: the last response body,
# $TMP/body) satisfies the filter.
jqcheck() {
	local file=${3:-$TMP/body}
	if [ -s "$file" ] && jq -e "$2" "$file" >/dev/null 2>&1; then pass "$1"; else
		fail "$1" "$2 on $(head -c 600 "$file" 2>/dev/null)"; fi
}

# wait_for SECONDS COMMAND...: retry until the command succeeds.
wait_for() {
	local tries=$(($1 * 20))
	shift
	for _ in $(seq "$tries"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

# callbacks_say JOB FILTER: the job has callbacks, and each one satisfies the
# filter (the script defines callbacks_for JOB: one JSON line a callback).
# In this shell, not under bash -c: that shell knows no callbacks_for, and
# jq -e on no input succeeds.
callbacks_say() { callbacks_for "$1" | jq -s -e "length > 0 and all(.[]; $2)" >/dev/null; }

# tally_callbacks OUTPUT JOB...: the jobs' answered callbacks (2xx, from the
# script's callbacks_for) counted: TALLY_NONE jobs had none, TALLY_RESENT more
# than one, TALLY_CONTRADICTED two different bodies (each named on stderr);
# the last one was the program's successful run with OUTPUT in TALLY_REAL
# jobs, "Job lost..." in TALLY_LOST. Delivery is at least once: the same
# callback again is possible (a kill between the receiver's answer and the
# record), two different ones never.
tally_callbacks() {
	local output=$1 file="$TMP/tally.json" j got
	shift
	TALLY_NONE=0 TALLY_RESENT=0 TALLY_CONTRADICTED=0 TALLY_REAL=0 TALLY_LOST=0
	for j; do
		callbacks_for "$j" | jq -s -c '[.[] | select(.status < 300) | .body]' >"$file"
		got=$(jq length "$file")
		[ "$got" = 0 ] && TALLY_NONE=$((TALLY_NONE + 1))
		[ "$got" -gt 1 ] && TALLY_RESENT=$((TALLY_RESENT + 1))
		jq -e 'unique | length > 1' "$file" >/dev/null &&
			{ TALLY_CONTRADICTED=$((TALLY_CONTRADICTED + 1)); echo "   $j: $(cat "$file")" >&2; }
		jq -e --arg out "$output" 'last | .result == {"output": $out, "return_code": 0, "status": "successful"}' \
			"$file" >/dev/null && TALLY_REAL=$((TALLY_REAL + 1))
		jq -e 'last | .result.output | startswith("Job lost")' "$file" >/dev/null && TALLY_LOST=$((TALLY_LOST + 1))
	done
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# apt_install PACKAGE...: install those that are missing (root, apt-get).
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} = 0 ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "missing packages: ${missing[*]} (install them, or run as root on Debian)" >&2
		return 1
	fi
	echo "installing ${missing[*]}"
	local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
	DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "${missing[@]}" >"$TMP/apt.log" 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$TMP/apt.log" 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "${missing[@]}" >>"$TMP/apt.log" 2>&1
	} || { tail -n 5 "$TMP/apt.log" >&2; return 1; }
}

# npm_install DIR PACKAGE@VERSION...: the pinned packages in DIR (a project-local
# node_modules), from the npm registry unless those versions are there already;
# on failure prints why and returns 1. Uses $TMP for npm's log.
npm_install() {
	local dir=$1 p have=1
	shift
	command -v npm >/dev/null || { echo "npm is not installed (tests/deps.sh installs npm)"; return 1; }
	for p in "$@"; do
		[ "$(jq -r .version "$dir/node_modules/${p%@*}/package.json" 2>/dev/null)" = "${p##*@}" ] || have=0
	done
	[ "$have" = 1 ] && return 0
	mkdir -p "$dir" 2>/dev/null || { echo "cannot create $dir"; return 1; }
	[ -e "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
	npm install --prefix "$dir" --no-audit --no-fund --no-save --prefer-offline --loglevel=error \
		"$@" >"$TMP/npm.log" 2>&1 ||
		{ echo "npm install $* failed: $(tail -n 3 "$TMP/npm.log" | tr '\n' ' ')"; return 1; }
}
