#!/usr/bin/env bash
# tests/fresh.sh [REV]: the README's two commands on a machine that has never
# seen the project. Boots a fresh Debian 12 (debootstrap minbase plus git, make
# and ca-certificates) with ../shared/tools/systemd-box, copies a git clone of
# the committed REV (default HEAD; never the working tree, so uncommitted files
# cannot help) into it, and runs there, as root, the quick start's
#   make test   which must exit 0 and print no FAIL and no SKIP line;
#   make run    in the background: GET /api/version must answer 200, then
#               SIGINT (Ctrl-C) to its process group must stop it.
# The box shares the host's network (SYSTEMD_BOX_NETWORK=host): apt-get and
# npm in the box need the package archives. So make run's 127.0.0.1:44444 is
# the host's: it must be free at the start, and make run starts once nothing
# listens there (after 2 min at most; LSO_RUN_PORT=N runs make run RUN_PORT=N).
# The host's own CA certificates (/usr/local/share/ca-certificates, e.g. of a
# TLS-inspecting proxy on the way to the npm registry) are trusted in the box
# too. Root. LSO_BOX_NAME names the box (default lso-fresh-test); it is always
# taken down. KEEP_TMP=1 keeps the logs. Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 2
TOP=$(pwd)
BOX=$TOP/../shared/tools/systemd-box/systemd-box
REV=${1:-HEAD}
RUN_PORT=${LSO_RUN_PORT:-44444}
passed=0 failed=0

pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

if [ ! -x "$BOX" ]; then
	fail "systemd-box" "$BOX is missing: ../shared/tools/systemd-box must sit beside the clone"
	finish
fi
[ "$(id -u)" = 0 ] || { fail "root" "tests/fresh.sh boots a container: run it as root"; finish; }
commit=$(git rev-parse --verify --quiet "$REV^{commit}") || { fail "commit $REV" "no such commit"; finish; }

export SYSTEMD_BOX_NAME=${LSO_BOX_NAME:-lso-fresh-test}
export SYSTEMD_BOX_ROOTFS=debootstrap
export SYSTEMD_BOX_PACKAGES=git,make,ca-certificates
export SYSTEMD_BOX_NETWORK=host
TMP=$(mktemp -d /tmp/lso-fresh.XXXXXX)

cleanup() {
	"$BOX" down >/dev/null 2>&1
	[ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# in_box COMMAND: a shell command line inside the box, in the clone, as root.
in_box() { "$BOX" exec bash -c "cd /root/lso && $1"; }

# no_fail_or_skip NAME LOG: the log has no FAIL and no SKIP line (in any of
# the suites' formats: "FAIL: x", "FAIL x", "SKIP x: why", "   SKIP ...").
no_fail_or_skip() {
	local bad
	bad=$(grep -E '^[[:space:]]*(FAIL|SKIP)([: ]|$)|[1-9][0-9]* skipped' "$2" | head -n 20 |
		sed 's/^[[:space:]]*//' | paste -sd '|' | sed 's/|/ | /g')
	if [ -z "$bad" ]; then pass "$1: no FAIL, no SKIP"; else fail "$1: no FAIL, no SKIP" "$bad"; fi
}

# --- a fresh machine with a clone of the commit ---

echo "== a fresh Debian 12 minbase ($SYSTEMD_BOX_PACKAGES), box $SYSTEMD_BOX_NAME"
if (exec 3<>"/dev/tcp/127.0.0.1/$RUN_PORT") 2>/dev/null; then
	fail "127.0.0.1:$RUN_PORT is free on this host" "something listens there; set LSO_RUN_PORT"
	finish
fi
"$BOX" down >/dev/null 2>&1 # a leftover of an earlier run would not be fresh
if "$BOX" up >"$TMP/up.log" 2>&1; then pass "box up"; else
	fail "box up" "$(tail -n 20 "$TMP/up.log")"
	finish
fi
shopt -s nullglob
for crt in /usr/local/share/ca-certificates/*.crt; do
	"$BOX" install -d /usr/local/share/ca-certificates "$crt" >>"$TMP/up.log" 2>&1
done
shopt -u nullglob
"$BOX" exec update-ca-certificates >>"$TMP/up.log" 2>&1 || fail "update-ca-certificates in the box"

git clone -q --no-checkout "$TOP" "$TMP/lso" && git -C "$TMP/lso" checkout -q --detach "$commit" ||
	{ fail "git clone of $commit"; finish; }
if tar -C "$TMP" -c lso | "$BOX" exec tar -x -C /root; then
	pass "clone of $(git -C "$TMP/lso" log -1 --format='%h %s') in the box"
else
	fail "clone copied into the box"
	finish
fi

# --- make test ---

echo "== make test (in the box, as root; the log is $TMP/test.log)"
t0=$(date +%s)
in_box 'make test' >"$TMP/test.log" 2>&1
rc=$?
t1=$(date +%s)
grep -E '^(==|installing:)|passed, [0-9]+ failed|^[[:space:]]*(FAIL|SKIP)' "$TMP/test.log" | sed 's/^/     /'
echo "     make test took $((t1 - t0)) s (exit $rc)"
if [ "$rc" = 0 ]; then pass "make test exits 0"; else
	fail "make test exits 0" "exit $rc: $(tail -n 5 "$TMP/test.log" | tr '\n' ' ')"; fi
no_fail_or_skip "make test" "$TMP/test.log"

# --- make run ---

echo "== make run (in the background, in the box)"
# 44444 is in the kernel's range of ephemeral ports: a test server elsewhere
# on this host may hold it for a while. Wait for it to be free.
for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$RUN_PORT") 2>/dev/null || break; sleep 1; done
run=make\ run
[ "$RUN_PORT" = 44444 ] || run="make run RUN_PORT=$RUN_PORT"
# setsid: make run leads a process group of its own, the one Ctrl-C would signal.
in_box "setsid -f bash -c 'echo \$\$ >/tmp/make-run.pid; exec $run </dev/null >/tmp/make-run.log 2>&1'"
code=000
for _ in $(seq 300); do
	code=$(in_box "curl -s -o /tmp/version.json -w '%{http_code}' --max-time 5 http://127.0.0.1:$RUN_PORT/api/version")
	[ "$code" = 200 ] && break
	in_box 'kill -0 -- -$(cat /tmp/make-run.pid)' 2>/dev/null || break # it has ended
	sleep 0.5
done
if [ "$code" = 200 ]; then pass "make run: GET /api/version 200 ($(in_box 'cat /tmp/version.json'))"; else
	fail "make run: GET /api/version 200" "got $code: $(in_box 'tail -n 5 /tmp/make-run.log' | tr '\n' ' ')"; fi
group=$(in_box 'cat /tmp/make-run.pid')
if ! in_box "kill -0 -- -$group" 2>/dev/null; then
	fail "make run stops on SIGINT" "it had ended before"
elif in_box "kill -INT -- -$group; for i in \$(seq 100); do kill -0 -- -$group 2>/dev/null || exit 0; sleep 0.1; done; exit 1"; then
	pass "make run stops on SIGINT"
else
	fail "make run stops on SIGINT" "process group $group still runs after 10 s"
	in_box "kill -KILL -- -$group" 2>/dev/null
fi
in_box 'cat /tmp/make-run.log' >"$TMP/run.log"
sed 's/^/     /' "$TMP/run.log"
no_fail_or_skip "make run" "$TMP/run.log"

finish
