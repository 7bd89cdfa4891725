#!/usr/bin/env bash
# tests/systemd.sh: lso's units under a real systemd. Boots a box
# (tests/systemd/box: systemd-nspawn over the host's / with a tmpfs overlay,
# private network), installs lso the real way (make install into a staging
# tree, copied into the box), and drives it through lso.socket with curl and
# a callback receiver running inside the box. Ends with "N passed, M failed";
# exits non-zero on any failure. Root only.
# LSO_KEEP_BOX=1 leaves the box up afterwards (tests/systemd/box exec ...;
# tests/systemd/box down); LSO_BOX_NAME names it (default lso-systemd-test).
set -u
if [ "$(id -u)" != 0 ]; then
	echo "tests/systemd.sh: must run as root (it boots a container)" >&2
	exit 2
fi
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
BOX="$TOP/tests/systemd/box"
export LSO_BOX_NAME=${LSO_BOX_NAME:-lso-systemd-test}
export LSO_BOX_DIR=${LSO_BOX_DIR:-/var/tmp/lso-systemd-box}
TMP=$(mktemp -d /tmp/lso-systemd.XXXXXX)
PORT=44444           # lso.socket's address, inside the box
RPORT=18080          # the callback receiver, inside the box
RECEIVER="http://127.0.0.1:$RPORT"
PROGRAMS=/srv/lso-test/programs
STATE=/var/lib/lso
# systemd-analyze security's exposure score of lso@.service may not rise above
# this: 6.1 with PrivateTmp=yes, 6.2 with TemporaryFileSystem=/tmp (which the
# analyzer does not credit).
EXPOSURE_MAX=6.2
passed=0 failed=0 skipped=0
box_started=0
START=$SECONDS

cleanup() {
	if [ "$box_started" = 1 ] && [ -n "${LSO_KEEP_BOX:-}" ]; then
		echo "box '$LSO_BOX_NAME' left up: $BOX exec CMD...; $BOX down" >&2
	elif [ "$box_started" = 1 ]; then
		"$BOX" down 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One run per box name at a time: a second run would power the first one's box off.
mkdir -p "$LSO_BOX_DIR"
exec 8>"$LSO_BOX_DIR/.suite.$LSO_BOX_NAME"
if ! flock -n 8; then
	echo "tests/systemd.sh: another run uses box '$LSO_BOX_NAME' (set LSO_BOX_NAME)" >&2
	exit 1
fi

# --- helpers ---

. tests/lib.sh
section() { echo "== $1 ($((SECONDS - START)) s)"; }

# bx CMD...: run CMD inside the box.
bx() { "$BOX" exec "$@"; }

# request METHOD PATH [curl args...]: from inside the box, through lso.socket.
# Sets CODE; the body is in $TMP/body, the headers in $TMP/headers.
request() {
	local method=$1 path=$2
	shift 2
	bx curl -sS -i --max-time 30 -X "$method" "$@" "http://127.0.0.1:$PORT$path" \
		>"$TMP/response" 2>"$TMP/curl.err" </dev/null
	CODE=$(head -n 1 "$TMP/response" | cut -d ' ' -f 2)
	sed '/^\r$/q' "$TMP/response" >"$TMP/headers"
	sed '1,/^\r$/d' "$TMP/response" >"$TMP/body"
}

# execute JSON [curl args...]: POST /api/execute/.
execute() {
	local json=$1
	shift
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

# sync NAME [ARGS-JSON] [curl args...]: a synchronous run.
sync() {
	local name=$1 args=${2:-[]}
	shift $(($# < 2 ? $# : 2))
	execute "{\"executable_name\":\"$name\",\"args\":$args,\"is_async\":false}" "$@"
}

# submit NAME ARGS-JSON [CALLBACK-PATH]: an async run; sets JOB.
submit() {
	local callback=null
	[ -n "${3:-}" ] && callback="\"$RECEIVER$3\""
	execute "{\"executable_name\":\"$1\",\"args\":$2,\"callback\":$callback}"
	JOB=$(jq -r .job_id "$TMP/body" 2>/dev/null)
}

# callbacks_for JOB: the POSTs the receiver got for a job, one JSON line each.
callbacks_for() {
	bx cat /run/lso-test/callbacks.log 2>/dev/null </dev/null |
		jq -c "select(.body.job_id == \"$1\")"
}
has_callback() { [ -n "$(callbacks_for "$1")" ]; }

# record JOB: the job's record, as lso stored it, into $TMP/record.
record() { bx cat "$STATE/jobs/$1.json" >"$TMP/record" 2>/dev/null </dev/null; }
record_matches() { record "$1" && jq -e "$2" "$TMP/record"; } # JOB FILTER
record_status_is() { record_matches "$1" ".status == \"$2\""; }

unit_state() { bx systemctl show -p ActiveState --value "$1" </dev/null; }
unit_active() { [ "$(unit_state "$1")" = active ]; }
# gone, or stopped for good (a scope that ends is collected)
unit_inactive() { case $(unit_state "$1") in inactive|failed) ;; *) return 1 ;; esac; }

# no instances of lso@.service are loaded (one per connection; collected once done)
no_instances() { [ -z "$(bx systemctl list-units --all --plain --no-legend 'lso@*' </dev/null)" ]; }

# no_job_processes JOB: no live process carries the job's id in its environment.
no_job_processes() {
	bx sh -c '! grep -lsxz "LSO_JOB_ID=$1" /proc/[0-9]*/environ' sh "$1" </dev/null
}

# Does lso send the journal field LSO_JOB_ID= (in lso.c, or log.c's native
# journal message)? Until then its check is skipped.
sends_job_field() {
	grep -q 'LSO_JOB_ID=' "$TOP/lso.c" || grep -q '\\nLSO_JOB_ID=' "$TOP/log.c"
}

# journal ARGS...: the messages of the box's journal, one a line.
journal() { bx journalctl --no-pager -o cat "$@" </dev/null 2>/dev/null; }
journal_has() { # REGEX JOURNALCTL-ARGS...
	local regex=$1
	shift
	journal "$@" | grep -Eq "$regex"
}

# --- setup: boot, install the real way, configure ---

die_setup() {
	fail "setup: $1" "${2:-}"
	echo "$passed passed, $failed failed"
	exit 1
}

setup() {
	local stage=$TMP/stage unitdir f missing=()
	section "setup"
	"$BOX" down >/dev/null 2>&1   # a box a killed run left behind
	box_started=1
	"$BOX" up || die_setup "boot the box"

	# The install target, as a packager runs it.
	make -C "$TOP" install DESTDIR="$stage" PREFIX=/usr/local >"$TMP/install.log" 2>&1 ||
		die_setup "make install" "$(tail -n 5 "$TMP/install.log")"
	# Where make install put the units and the tmpfiles snippet (UNITDIR, TMPFILESDIR).
	unitdir=$(dirname "$(find "$stage" -name lso.socket | head -n 1)")
	[ "$unitdir" != . ] || die_setup "make install installed no lso.socket"
	TMPFILES_CONF=$(find "$stage" -path '*/tmpfiles.d/lso.conf' | head -n 1)
	# What the Makefile does not install yet comes from the tree.
	if [ ! -e "$unitdir/lso-recover.service" ]; then
		cp "$TOP/lso-recover.service" "$unitdir/"
		missing+=(lso-recover.service)
	fi
	if [ -z "$TMPFILES_CONF" ]; then
		TMPFILES_CONF=$stage/usr/lib/tmpfiles.d/lso.conf
		mkdir -p "${TMPFILES_CONF%/*}"
		cp "$TOP/lso.tmpfiles" "$TMPFILES_CONF"
		missing+=(lso.tmpfiles)
	fi
	[ ${#missing[@]} = 0 ] ||
		echo "note: make install does not install ${missing[*]} yet; copied from the tree"
	TMPFILES_CONF=${TMPFILES_CONF#"$stage"}
	INSTALLED_UNITS=()
	for f in "$unitdir"/*; do INSTALLED_UNITS+=("${f#"$stage"}"); done

	# Into the box's own file system (the host's later changes do not reach
	# the overlay). Keep the box's /lib -> usr/lib and its directories' modes.
	(cd "$stage" && tar -cf - -- *) |
		bx tar -xf - --keep-directory-symlink --no-overwrite-dir --no-same-owner -C / ||
		die_setup "copy the installed tree into the box"
	"${CC:-cc}" -O2 -Wall -Wextra -pthread -o "$TMP/load" "$TOP/bench/load.c" ||
		die_setup "build bench/load.c"
	bx sh -c 'mkdir -p /srv/lso-test && cat >/srv/lso-test/load && chmod 755 /srv/lso-test/load' \
		<"$TMP/load" || die_setup "copy bench/load.c's client into the box"
	tar -C "$TOP/tests" -cf - programs |
		bx sh -c 'mkdir -p /srv/lso-test && tar -xf - -C /srv/lso-test' &&
		tar -C "$TOP/tests/systemd" -cf - programs | bx tar -xf - -C /srv/lso-test &&
		bx sh -c 'cat >/srv/lso-test/receiver.py' <"$TOP/tests/receiver.py" ||
		die_setup "copy the fixtures into the box"
	bx sh -c 'cat >/etc/lso/lso.env' <<-EOF || die_setup "write /etc/lso/lso.env"
		EXECUTABLES_ROOT_DIR=$PROGRAMS
		EXECUTABLE_TIMEOUT_SEC=20
		REQUEST_TIMEOUT_SEC=5
		LSO_CALLBACK_RETRIES=2
	EOF
	bx systemctl daemon-reload </dev/null || die_setup "daemon-reload"
	bx systemctl enable --now lso.socket </dev/null >/dev/null 2>&1 ||
		die_setup "systemctl enable --now lso.socket"
	bx mkdir -p /run/lso-test
	bx systemd-run --quiet --unit=lso-test-receiver /usr/bin/python3 /srv/lso-test/receiver.py \
		/run/lso-test/receiver.port /run/lso-test/callbacks.log "$RPORT" </dev/null &&
		wait_for 10 bx test -s /run/lso-test/receiver.port ||
		die_setup "start the callback receiver"
}

# --- the suites ---

test_units() {
	local out score
	section "units"
	check "lso.socket enabled" bx systemctl is-enabled lso.socket
	check "lso.socket listening" unit_active lso.socket
	check "lso-recover.service can be enabled" bx systemctl enable --quiet lso-recover.service
	out=$(bx systemd-analyze verify "${INSTALLED_UNITS[@]}" 2>&1 </dev/null)
	if [ $? = 0 ] && [ -z "$out" ]; then pass "systemd-analyze verify ${INSTALLED_UNITS[*]##*/}"
	else fail "systemd-analyze verify" "$out"; fi
	out=$(bx systemd-analyze security --no-pager lso@security.service 2>&1 </dev/null)
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "     systemd-analyze security lso@.service: exposure ${score:-?} (at most $EXPOSURE_MAX)"
	if [ -n "$score" ] && awk -v s="$score" -v m="$EXPOSURE_MAX" 'BEGIN { exit !(s <= m) }'; then
		pass "exposure of lso@.service $score <= $EXPOSURE_MAX"
	else
		fail "exposure of lso@.service ${score:-?} <= $EXPOSURE_MAX" "$(printf '%s\n' "$out" | grep '✗')"
	fi
}

test_sync() {
	section "sync requests through lso.socket"
	request GET /api/version
	expect "version status" "$CODE" 200
	jqcheck "version body" '.api == "2.0" and (.module | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'
	sync echo-args '["a", "b c"]'
	expect "sync run status" "$CODE" 201
	jqcheck "sync run output" '.result == {"output": "a\nb c\n", "return_code": 0, "status": "successful"}'
	SYNC_JOB=$(jq -r .job_id "$TMP/body" 2>/dev/null)
	sync exit-code '[]'
	jqcheck "sync run that fails" '.result.return_code != 0 and .result.status == "failed"'
	check "instances collected after their request" wait_for 5 no_instances
}

test_journal() {
	section "journal"
	check "request line of GET /api/version in lso@'s journal" wait_for 5 journal_has \
		'^GET /api/version 200 job=- program=- rc=- ms=[0-9]+$' -u 'lso@*'
	check "request line of the sync run in lso@'s journal" wait_for 5 journal_has \
		"^POST /api/execute/ 201 job=$SYNC_JOB program=\"echo-args\" rc=0 ms=[0-9]+\$" -u 'lso@*'
	# Also the lines of instances gone before journald reads them (it looks
	# up a datagram sender's unit only then): journald paused, 3 requests.
	local before total
	before=$(version_lines)
	bx systemctl kill -s SIGSTOP systemd-journald.service </dev/null
	for _ in 1 2 3; do bx curl -s -o /dev/null "http://127.0.0.1:$PORT/api/version" </dev/null; done
	bx systemctl kill -s SIGCONT systemd-journald.service </dev/null
	wait_for 10 eval "[ \"\$(version_lines)\" -ge $((before + 3)) ]"
	total=$(version_lines)
	expect "journalctl -u lso@* has all $total request lines of GET /api/version" \
		"$(version_lines -u 'lso@*')" "$total"
}

# version_lines [JOURNALCTL-ARGS...]: how many request lines of GET /api/version.
version_lines() { journal "$@" | grep -c '^GET /api/version 200 '; }

# Runs CONNECTIONS requests at once from inside the box, SPACING seconds apart;
# prints "HTTP-CODE CURL-EXIT SECONDS" per request.
at_once() { # CONNECTIONS SPACING JSON
	bx bash -c '
		for i in $(seq "$1"); do
			( out=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" --max-time 20 \
				-H "Content-Type: application/json" --data-binary "$3" \
				"http://127.0.0.1:'$PORT'/api/execute/"); rc=$?
			  set -- $out; echo "$1 $rc $2" ) &
			sleep "$2"
		done
		wait' bash "$@" </dev/null
}

test_connections() {
	local t0 out ok refused max
	section "concurrent connections, MaxConnections="
	max=$(bx systemctl show -p MaxConnections --value lso.socket </dev/null)
	t0=$(date +%s.%N)
	out=$(at_once 6 0 '{"executable_name":"sleep-echo","args":["2"],"is_async":false}')
	expect "6 concurrent sync runs answered" "$(grep -c '^201 0 ' <<<"$out")" 6
	check "6 concurrent 2 s runs took less than 6 s" awk -v a="$t0" -v b="$(date +%s.%N)" \
		'BEGIN { exit !(b - a < 6) }'

	bx sh -c 'mkdir -p /etc/systemd/system/lso.socket.d &&
		printf "[Socket]\nMaxConnections=2\n" >/etc/systemd/system/lso.socket.d/50-test.conf &&
		systemctl daemon-reload && systemctl restart lso.socket' </dev/null
	expect "drop-in lowers MaxConnections" \
		"$(bx systemctl show -p MaxConnections --value lso.socket </dev/null)" 2
	out=$(at_once 3 0.5 '{"executable_name":"sleep-echo","args":["3"],"is_async":false}')
	ok=$(grep -c '^201 0 ' <<<"$out")
	refused=$(awk '$1 == "000" && $2 != 0 && $3 < 2' <<<"$out" | wc -l)
	expect "2 connections within MaxConnections=2 served" "$ok" 2
	if [ "$refused" = 1 ]; then pass "the third connection refused at once, not hung"
	else fail "the third connection refused at once, not hung" "$(tr '\n' ';' <<<"$out")"; fi
	check "lso.socket logs the refusal" journal_has 'Too many incoming connections' -u lso.socket
	# An async job leaves its instance (which exits just after answering):
	# once the instances are gone, the jobs hold no connection.
	local jobs=()
	submit sleep-echo '["4"]'
	jobs+=("$JOB")
	submit sleep-echo '["4"]'
	jobs+=("$JOB")
	wait_for 5 no_instances
	out=$(at_once 2 0 '{"executable_name":"echo-args","args":["x"],"is_async":false}')
	expect "2 async jobs running hold no connections" "$(grep -c '^201 0 ' <<<"$out")" 2
	check "... the 2 jobs still ran" eval \
		"record_status_is ${jobs[0]} running && record_status_is ${jobs[1]} running"
	check "lso.socket still listening" unit_active lso.socket

	bx sh -c 'rm -f /etc/systemd/system/lso.socket.d/50-test.conf &&
		systemctl daemon-reload && systemctl restart lso.socket' </dev/null
	expect "MaxConnections back to the unit's" \
		"$(bx systemctl show -p MaxConnections --value lso.socket </dev/null)" "$max"
	check "jobs outlive a restart of lso.socket" wait_for 10 eval \
		"record_status_is ${jobs[0]} successful && record_status_is ${jobs[1]} successful"
}

# --- load: the sockets as shipped under a busy client ---

LOAD=/srv/lso-test/load
# Requests for bench/load.c (one connection each), written into the box.
write_load_requests() {
	local sync='{"executable_name":"echo-args","args":["load"],"is_async":false}'
	bx sh -c 'printf "GET /api/version HTTP/1.1\r\nHost: lso\r\nConnection: close\r\n\r\n" \
			>/srv/lso-test/req-version &&
		printf "POST /api/execute/ HTTP/1.1\r\nHost: lso\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" \
			"${#1}" "$1" >/srv/lso-test/req-sync' sh "$sync" </dev/null
}

# load_run ARGS...: bench/load.c in the box; LOAD_OUT is its summary line, LOAD_ERR its causes.
load_run() {
	LOAD_OUT=$(bx "$LOAD" -t 30 "$@" 2>"$TMP/load.err" </dev/null)
	LOAD_ERR=$(tr '\n' ' ' <"$TMP/load.err")
}
load_field() { sed -n "s/.*\<$1=\([^ ]*\).*/\1/p" <<<"$LOAD_OUT"; }

# answers_after SOCKET WHAT: the socket is still active and the next request is answered.
answers_after() {
	local socket=$1 what=$2
	check "$socket active after $what" unit_active "$socket"
	expect "$socket: result still success after $what" \
		"$(bx systemctl show -p Result --value "$socket" </dev/null)" success
	request GET /api/version
	expect "$socket: the next request after $what is answered" "$CODE" 200
}

# test_load SOCKET REFUSALS: 32 connections from one client for 8 s on
# /api/version, then on a sync run: every request answered 2xx; then 200
# connections at once. REFUSALS=refused: beyond MaxConnections= systemd may
# refuse (close at once, without an answer) some of the 200; anything else
# (a non-2xx answer, a hang) fails. REFUSALS=none: all 200 answered 2xx.
test_load() {
	local socket=$1 refusals=$2 what count failures
	section "load on $socket as shipped"
	for what in version sync; do
		load_run -d 8 127.0.0.1 "$PORT" "/srv/lso-test/req-$what" 1000000 32
		count=$(load_field count) failures=$(load_field failures)
		if [ -n "$count" ] && [ "$count" -gt 0 ] && [ "$failures" = 0 ]; then
			pass "$socket: 32 connections for 8 s on $what: $count requests, all 2xx ($(load_field rps) req/s)"
		else
			fail "$socket: 32 connections for 8 s on $what, all 2xx" "$LOAD_OUT $LOAD_ERR"
		fi
		answers_after "$socket" "8 s of $what at 32 connections"
	done
	load_run 127.0.0.1 "$PORT" /srv/lso-test/req-version 200 200
	count=$(load_field count) failures=$(load_field failures)
	if [ "$refusals" = none ]; then
		if [ "$count" = 200 ] && [ "$failures" = 0 ]; then
			pass "$socket: 200 connections at once, all answered 2xx"
		else
			fail "$socket: 200 connections at once, all answered 2xx" "$LOAD_OUT $LOAD_ERR"
		fi
	else
		# A refused connection is closed without a byte: a "status" failure with
		# an empty head, or a reset. Nothing else may go wrong.
		if [ "$count" = 200 ] && ! grep -Eq '(socket|connect|send)=|recv=[0-9]+ \(last: [^C]|last: "[^"]' <<<"$LOAD_ERR"; then
			pass "$socket: 200 connections at once: $((200 - failures)) answered 2xx, $failures refused at once (MaxConnections)"
		else
			fail "$socket: 200 connections at once: answered 2xx or refused at once" "$LOAD_OUT $LOAD_ERR"
		fi
	fi
	answers_after "$socket" "200 connections at once"
	check "$socket never hit a trigger limit" eval "! journal_has 'Trigger limit hit|trigger-limit-hit' -u $socket"
}

# The installed slice's limits, for every job together (lso-jobs.slice).
test_jobs_slice() {
	section "lso-jobs.slice's limits"
	expect "lso-jobs.slice: TasksMax" "$(bx systemctl show -p TasksMax --value lso-jobs.slice </dev/null)" 2048
	check "lso-jobs.slice: a memory limit ($(bx systemctl show -p MemoryMax --value lso-jobs.slice </dev/null))" \
		bx sh -c 'systemctl show -p MemoryMax --value lso-jobs.slice | grep -qx "[0-9][0-9]*"' </dev/null
	check "lso-jobs.slice: ... and a softer one below it" \
		bx sh -c 'systemctl show -p MemoryHigh --value lso-jobs.slice | grep -qx "[0-9][0-9]*"' </dev/null
	# The kernel's copy, where the box's cgroups let systemd set it (v2, or v1 pids delegated).
	local pids_max
	pids_max=$(bx sh -c 'systemctl start lso-jobs.slice; cat /sys/fs/cgroup/lso.slice/lso-jobs.slice/pids.max ||
		cat /sys/fs/cgroup/pids/lso.slice/lso-jobs.slice/pids.max' </dev/null 2>/dev/null)
	if [ -n "$pids_max" ]; then
		expect "lso-jobs.slice: the kernel holds the task limit" "$pids_max" 2048
	else
		# systemd's own TasksMax= is checked above; the kernel's copy needs a pids
		# controller the box's slices do not get on a cgroup v1 host.
		echo "   lso-jobs.slice: the kernel's pids.max not readable here (cgroup v1, pids not delegated)"
	fi
}

test_async() {
	local runner
	section "async job in its own scope"
	submit sleep-echo '["3"]' /ok/async
	expect "async status" "$CODE" 201
	jqcheck "async body" '.result == null and (.job_id | length) == 36'
	ASYNC_JOB=$JOB
	local scope=lso-job-$JOB.scope
	check "the job runs as $scope" wait_for 5 unit_active "$scope"
	expect "$scope is in lso-jobs.slice" "$(bx systemctl show -p Slice --value "$scope" </dev/null)" lso-jobs.slice
	check "its instance is gone while the job runs" wait_for 5 no_instances
	check "... and the job still runs" unit_active "$scope"
	runner=$(bx cut -d ' ' -f 1 "$STATE/jobs/$JOB.lock" </dev/null)
	check "the runner's cgroup is the scope" bx grep -q "/lso-jobs.slice/$scope\$" "/proc/$runner/cgroup"
	request GET "/api/jobs/$JOB"
	jqcheck "record says running" '.status == "running"'
	check "callback delivered after the instance is gone" wait_for 10 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "callback body" '.path == "/ok/async" and
		.body.result == {"output": "slept 3\n", "return_code": 0, "status": "successful"}' "$TMP/callback"
	local done='.status == "successful" and .callback.delivered == true'
	wait_for 5 record_matches "$JOB" "$done"
	jqcheck "record successful, callback delivered" "$done" "$TMP/record"
	check "$scope gone after the job" wait_for 5 unit_inactive "$scope"
	check "journalctl -u $scope has the runner's lines" journal_has \
		"^job $JOB successful rc=0\$" -u "$scope"
	check "request line of the async run in lso@'s journal" journal_has \
		"^POST /api/execute/ 201 job=$JOB program=\"sleep-echo\" rc=- ms=[0-9]+\$" -u 'lso@*'
	if sends_job_field; then
		check "journalctl LSO_JOB_ID=<id> has the request line" journal_has \
			"^POST /api/execute/ 201 job=$JOB " "LSO_JOB_ID=$JOB"
		check "journalctl LSO_JOB_ID=<id> has the runner's lines" journal_has \
			"^job $JOB successful" "LSO_JOB_ID=$JOB"
	else
		skip "journalctl LSO_JOB_ID=<id>" "lso sends no LSO_JOB_ID= journal field yet"
	fi
}

# start_long TAG: an async job that runs until stopped; sets JOB, waits until its program runs.
start_long() {
	submit sleep-echo '["15"]' "/ok/$1"
	wait_for 5 record_status_is "$JOB" running
}

test_stop_scope() {
	local t0
	section "systemctl stop lso-job-<id>.scope"
	start_long stop
	local scope=lso-job-$JOB.scope
	check "$scope running" unit_active "$scope"
	t0=$SECONDS
	check "systemctl stop $scope" bx timeout 30 systemctl stop "$scope"
	check "... within 5 s" test $((SECONDS - t0)) -le 5
	check "failure callback after the stop" wait_for 10 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "callback says failed" '.body.result.status == "failed" and .body.result.return_code < 0' "$TMP/callback"
	record "$JOB"
	jqcheck "record final" '.status == "canceled" or .status == "failed"' "$TMP/record"
	check "nothing of the job left running" wait_for 5 no_job_processes "$JOB"
}

test_cancel() {
	section "DELETE /api/jobs/<id> across instances"
	start_long cancel
	request DELETE "/api/jobs/$JOB"
	expect "cancel status" "$CODE" 202
	check "callback after the cancel" wait_for 10 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "callback says canceled" '.body.result.status == "failed" and
		(.body.result.output | test("Execution canceled\\.$"))' "$TMP/callback"
	check "record canceled" wait_for 5 record_status_is "$JOB" canceled
	check "the scope is gone" wait_for 5 unit_inactive "lso-job-$JOB.scope"
}

test_recover() {
	section "lso-recover.service settles a killed runner's job"
	start_long lost
	local scope=lso-job-$JOB.scope
	check "systemctl kill -s KILL $scope" bx systemctl kill -s KILL "$scope"
	check "$scope ends" wait_for 5 unit_inactive "$scope"
	check "nothing of the job left running" wait_for 5 no_job_processes "$JOB"
	check "the record still says running" record_status_is "$JOB" running
	check "no callback yet" test -z "$(callbacks_for "$JOB")"
	check "systemctl start lso-recover.service" bx timeout 60 systemctl start lso-recover.service
	# The callback goes out from a scope of its own: the pass does not wait for it.
	wait_for 10 record_matches "$JOB" '.callback.delivered == true'
	jqcheck "record says lost" '.status == "lost" and .result.return_code == -1 and
		.callback.delivered == true' "$TMP/record"
	check "failure callback for the lost job" wait_for 5 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "callback says failed, lost" '.body.result.status == "failed" and
		.body.result.return_code == -1 and (.body.result.output | test("lost"))' "$TMP/callback"
	check "lso-recover.service logs the job" journal_has "job $JOB lost" -u lso-recover.service

	# A runner killed alone, its program having left a process outside its
	# process group: the next read of the record settles the job, kills all
	# the job left, and delivers the callback from a detached process.
	submit escaper '[]' /ok/lost-read
	wait_for 5 record_status_is "$JOB" running
	scope=lso-job-$JOB.scope
	check "kill -KILL the runner alone" bx kill -KILL "$(bx cut -d ' ' -f 1 "$STATE/jobs/$JOB.lock" </dev/null)"
	request GET "/api/jobs/$JOB"
	jqcheck "GET settles the job as lost" '.status == "lost"'
	check "failure callback for the job lost and read" wait_for 10 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "... says failed, lost" '.body.result.status == "failed" and
		(.body.result.output | test("lost"))' "$TMP/callback"
	check "the GET's instance did not keep the delivery" \
		eval "! journal_has 'job $JOB stays in this instance' -u 'lso@*'"
	check "$scope ends" wait_for 10 unit_inactive "$scope"
	check "nothing of the job left running" wait_for 5 no_job_processes "$JOB"
}

# box_runner JOB: the pid the job's lock file names, if it names one.
box_runner() {
	local p
	read -r p _ < <(bx cat "$STATE/jobs/$1.lock" </dev/null 2>/dev/null)
	[[ $p =~ ^[0-9]+$ ]] && echo "$p"
}

# delivered_count JOB: how many of the job's callbacks the receiver answered 2xx.
delivered_count() { callbacks_for "$1" | jq -s '[.[] | select(.status < 300)] | length'; }
# all_delivered JOB...: each job has a callback answered 2xx (one read of the receiver's log).
all_delivered() {
	bx cat /run/lso-test/callbacks.log 2>/dev/null </dev/null | jq -s -e --args \
		'[.[] | select(.status < 300) | .body.job_id] as $got | $ARGS.positional - $got == []' "$@"
}
# within SECONDS COMMAND...: retry (every half second) until the command succeeds or time is up.
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.5
	done
}

# lso-recover.timer, every 2 s here: runners SIGKILLed at random moments near
# their program's end get their job's callback without a GET, exactly once.
test_timer() {
	local n=${SETTLE_KILLS:-20} jobs=() runner landed=0 j path
	section "lso-recover.timer settles killed runners without a GET"
	check "lso-recover.timer installed" bx test -f /usr/local/lib/systemd/system/lso-recover.timer -o \
		-f /lib/systemd/system/lso-recover.timer
	bx mkdir -p /run/systemd/system/lso-recover.timer.d
	printf '[Timer]\nOnActiveSec=2s\nOnUnitInactiveSec=2s\nAccuracySec=100ms\n' |
		bx sh -c 'cat >/run/systemd/system/lso-recover.timer.d/test.conf'
	bx systemctl daemon-reload </dev/null
	check "systemctl enable --now lso-recover.timer" bx systemctl enable --now lso-recover.timer
	check "lso-recover.timer active" unit_active lso-recover.timer
	for i in $(seq "$n"); do
		if [ $((i % 2)) = 0 ]; then path=flaky; else path=ok; fi
		submit sleep-echo '["0.5"]' "/$path/timer-kill-$i"
		jobs+=("$JOB")
		for _ in $(seq 40); do runner=$(box_runner "$JOB") && break; sleep 0.05; done
		sleep "0.$((RANDOM % 10))"
		[[ $runner =~ ^[0-9]+$ ]] && bx kill -KILL "$runner" 2>/dev/null </dev/null && landed=$((landed + 1))
	done
	check "every job called back, without a GET" within 60 all_delivered "${jobs[@]}"
	tally_callbacks $'slept 0.5\n' "${jobs[@]}"
	expect "no job without its callback" "$TALLY_NONE" 0
	expect "no job called back with two different results" "$TALLY_CONTRADICTED" 0
	expect "each callback the result or lost" "$((TALLY_REAL + TALLY_LOST))" "$n"
	echo "     random kills under the timer: $n tried, $landed landed; callbacks: $TALLY_REAL results, $TALLY_LOST lost, $TALLY_NONE missing, $TALLY_RESENT resent, $TALLY_CONTRADICTED contradicted"
	check "lso-recover.service ran from the timer" journal_has "job [0-9a-f-]{36} lost" -u lso-recover.service
	for j in "${jobs[@]}"; do
		no_job_processes "$j" || fail "nothing of job $j left running"
	done
	bx systemctl disable --now lso-recover.timer </dev/null >/dev/null 2>&1
	bx rm -rf /run/systemd/system/lso-recover.timer.d
	bx systemctl daemon-reload </dev/null
}

# not_canceled JOB...: how many of the jobs' last callbacks do not say canceled.
not_canceled() {
	local j bad=0
	for j; do
		callbacks_for "$j" | jq -s -e 'last | .body.result.output | endswith("Execution canceled.")' >/dev/null ||
			bad=$((bad + 1))
	done
	echo "$bad"
}

# DELETE right after the 201: under systemd the runner moves into its scope
# meanwhile; canceled, with its callback, every time.
test_cancel_at_once() {
	local n=${SETTLE_CANCELS:-100} jobs=() codes=() bad
	section "DELETE right after the 201, $n times"
	for i in $(seq "$n"); do
		submit sleep-echo '["20"]' /ok/cancel-at-once
		jobs+=("$JOB")
		request DELETE "/api/jobs/$JOB"
		codes+=("$CODE")
	done
	expect "$n DELETEs answered 202" "$(printf '%s\n' "${codes[@]}" | sort | uniq -c | tr -s ' ')" " $n 202"
	check "every callback arrives" within 120 all_delivered "${jobs[@]}"
	bad=$(not_canceled "${jobs[@]}")
	expect "every callback says canceled" "$bad" 0
	echo "     cancel at once: $n DELETEs, $((n - bad)) canceled callbacks"
}

# SIGTERM (what DELETE and systemctl stop send) the moment the runner names
# itself in its lock file, while it is still moving into its scope: canceled,
# with its callback, every time.
test_term_at_once() {
	local n=${SETTLE_TERMS:-30} jobs=() j bad body
	section "SIGTERM the moment a runner names itself, $n times"
	body='{"executable_name":"sleep-echo","args":["20"],"callback":"'$RECEIVER'/ok/term-at-once"}'
	for i in $(seq "$n"); do
		j=$(bx sh -c 'id=$(curl -s -H "Content-Type: application/json" --data-binary "$1" \
			http://127.0.0.1:'$PORT'/api/execute/ | jq -r .job_id)
			t=0 p=
			until read -r p _ <'$STATE'/jobs/$id.lock 2>/dev/null && [ -n "$p" ]; do
				t=$((t + 1)); [ $t -lt 100000 ] || break
			done
			[ -n "$p" ] && kill -TERM "$p"; echo "$id"' sh "$body" </dev/null)
		jobs+=("$j")
	done
	check "every callback arrives" within 120 all_delivered "${jobs[@]}"
	bad=$(not_canceled "${jobs[@]}")
	expect "every callback says canceled" "$bad" 0
	echo "     SIGTERM at once: $n runners, $((n - bad)) canceled callbacks"
}

test_credential() {
	local key
	section "auth: LSO_OAUTH2_ACTIVE and the credential lso-api-key (LoadCredential=)"
	key=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	# On without a key (the shipped unit's LoadCredential= finds nothing): fail closed.
	bx sh -c 'cp /etc/lso/lso.env /etc/lso/lso.env.saved && echo LSO_OAUTH2_ACTIVE=true >>/etc/lso/lso.env' </dev/null
	sync echo-args '["x"]' -H "Authorization: Bearer $key"
	expect "on without a key: 500, nothing runs" "$CODE" 500
	request GET /api/openapi.json
	expect "on without a key: the document still served" "$CODE" 200
	check "on without a key: the journal names the setting" wait_for 5 \
		journal_has 'LSO_OAUTH2_ACTIVE is on but there is no API key' -u 'lso@*'
	bx sh -c 'umask 077 && mkdir -p /etc/credstore && printf "%s\n" "$1" >/etc/credstore/lso-api-key' \
		sh "$key" </dev/null
	request GET "/api/jobs/$SYNC_JOB"
	expect "no key: 401" "$CODE" 401
	check "401 asks for a bearer key" grep -qi '^WWW-Authenticate: Bearer' "$TMP/headers"
	sync echo-args '["x"]'
	expect "no key: nothing runs" "$CODE" 401
	sync echo-args '["x"]' -H "Authorization: Bearer wrong$key"
	expect "wrong key: 401" "$CODE" 401
	request GET /api/version
	expect "/api/version needs the key too" "$CODE" 401
	request GET /api/doc
	expect "/api/doc is public" "$CODE" 200
	sync echo-args '["x"]' -H "Authorization: Bearer $key"
	expect "key: sync run 201" "$CODE" 201
	sync show-env "[]" -H "Authorization: Bearer $key"
	jqcheck "the program sees neither the key nor CREDENTIALS_DIRECTORY" \
		'.result.output | test("LSO_API_KEY|CREDENTIALS_DIRECTORY") | not'
	# Nor a descriptor onto the credential (its own or lso's), nor the way to it.
	sync cred-probe "[]" -H "Authorization: Bearer $key"
	jqcheck "a probing program finds no descriptor onto the credential, no variable" \
		'.result.output | split("\n") | map(select(startswith("path ") | not)) == ["CREDENTIALS_DIRECTORY=", ""]'
	check "... and never the key" bash -c "! grep -qF -- '$key' '$TMP/body'"
	# By path, a program running as lso's user (root) reads it: what LSO_RUN_USER is for.
	jqcheck "without LSO_RUN_USER: the credential is readable by path" \
		'.result.output | split("\n") | any(test("^path /run/credentials/lso@.*/lso-api-key: readable$"))'
	test_run_user "$key"
	request GET "/api/jobs/$ASYNC_JOB" -H "Authorization: Bearer $key"
	expect "key: job record 200" "$CODE" 200
	bx sh -c 'mv /etc/lso/lso.env.saved /etc/lso/lso.env && rm -f /etc/credstore/lso-api-key' </dev/null
	sync echo-args '["x"]'
	expect "auth off again: open, the credential missing" "$CODE" 201
}

# LSO_RUN_USER (a user of the box's, made here): the program runs as it, and
# the credential lso@.service loaded is no longer readable by path.
test_run_user() {
	local key=$1 uid
	bx sh -c 'id -u lso-run >/dev/null 2>&1 || useradd --system --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin lso-run' </dev/null
	uid=$(bx id -u lso-run </dev/null)
	bx sh -c 'cp /etc/lso/lso.env /etc/lso/lso.env.before-run-user &&
		echo LSO_RUN_USER=lso-run >>/etc/lso/lso.env' </dev/null
	sync show-ids "[]" -H "Authorization: Bearer $key"
	jqcheck "LSO_RUN_USER=lso-run: the program runs as it" \
		".result.output | startswith(\"uid=$uid gid=$(bx id -g lso-run </dev/null) \") and contains(\"user=lso-run\")"
	sync cred-probe "[]" -H "Authorization: Bearer $key"
	jqcheck "LSO_RUN_USER=lso-run: the credential is not readable by path, no descriptor, no variable" \
		'.result.output | split("\n") == ["CREDENTIALS_DIRECTORY=", ""]'
	execute '{"executable_name":"show-ids","args":[]}' -H "Authorization: Bearer $key"
	JOB=$(jq -r .job_id "$TMP/body" 2>/dev/null)
	check "LSO_RUN_USER=lso-run: an async job (in its scope) runs as it" within 10 \
		record_matches "$JOB" ".result.output | startswith(\"uid=$uid \")"
	bx sh -c 'mv /etc/lso/lso.env.before-run-user /etc/lso/lso.env' </dev/null
}

instance_running() { [ -n "$(bx systemctl list-units --plain --no-legend --state=active 'lso@*' </dev/null)" ]; }
no_scope_for() { ! unit_active "lso-job-$1.scope"; }

# Without permission to create units (User= and no polkit rule), the instance
# does not exit: it supervises the job until the callback is out, and says why.
test_supervise() {
	section "no permission for a scope: the instance supervises"
	bx sh -c 'mkdir -p /etc/systemd/system/lso@.service.d &&
		printf "[Service]\nUser=nobody\n" >/etc/systemd/system/lso@.service.d/50-test-user.conf &&
		systemctl daemon-reload' </dev/null
	submit sleep-echo '["3"]' /ok/supervised
	expect "unprivileged instance: 201" "$CODE" 201
	check "the instance stays while the job runs" wait_for 3 instance_running
	check "no scope for the job" no_scope_for "$JOB"
	check "callback delivered" wait_for 15 has_callback "$JOB"
	check "the instance logs why it stays" journal_has \
		"^lso: job $JOB stays in this instance, which supervises it: " -u 'lso@*'
	check "the instance ends after the job" wait_for 10 no_instances
	bx sh -c 'rm -f /etc/systemd/system/lso@.service.d/50-test-user.conf &&
		systemctl daemon-reload' </dev/null
}

test_hardening() {
	local job
	section "an admin program under lso@.service's sandbox"
	sync admin-probe "[\"$RPORT\"]"
	job=$(jq -r .job_id "$TMP/body" 2>/dev/null)
	jqcheck "sync admin-probe succeeds" '.result.return_code == 0'
	jqcheck "... writes /var/lib, uses /tmp, reads /etc, talks TCP" \
		'.result.output | test("state ok\ntmp ok\nos-release ok: [a-z]+\ntcp ok: 200\n")'
	check "its state is on the system, outside the sandbox" bx test -s "/var/lib/lso-admin-probe/$job"
	check "the receiver got its connection" test -n "$(callbacks_for "$job")"
	submit admin-probe "[\"$RPORT\", \"1\"]" /ok/admin-async
	check "async admin-probe calls back" wait_for 10 eval \
		"callbacks_for $JOB | grep -q /ok/admin-async"
	callbacks_for "$JOB" | grep /ok/admin-async | head -n 1 >"$TMP/callback"
	jqcheck "async admin-probe succeeds after its instance is gone (/tmp too)" \
		'.body.result.return_code == 0' "$TMP/callback"
}

# lso processes in the box (the burst process, its children, job runners).
lso_processes() { bx pgrep -x lso </dev/null | wc -l; }
burst_idle() { unit_inactive lso-burst.service && [ "$(lso_processes)" = 0 ]; }

test_burst() {
	local score out t0
	section "burst mode: lso-burst.socket and lso-burst.service as shipped"
	expect "lso-burst.socket not enabled by make install" \
		"$(bx systemctl is-enabled lso-burst.socket </dev/null)" disabled
	check "systemctl start lso-burst.socket while lso.socket listens" bx systemctl start lso-burst.socket
	check "lso-burst.socket listening" unit_active lso-burst.socket
	check "... lso.socket stopped (Conflicts=)" unit_inactive lso.socket
	check "nothing of lso-burst.service runs before a connection" unit_inactive lso-burst.service
	request GET /api/version
	expect "version through lso-burst.socket" "$CODE" 200
	check "a connection started lso-burst.service" unit_active lso-burst.service
	sync echo-args '["a", "b c"]'
	jqcheck "sync run in burst mode" '.result == {"output": "a\nb c\n", "return_code": 0, "status": "successful"}'
	BURST_JOB=$(jq -r .job_id "$TMP/body" 2>/dev/null)
	check "request line in lso-burst.service's journal" wait_for 5 journal_has \
		"^POST /api/execute/ 201 job=$BURST_JOB program=\"echo-args\" rc=0 ms=[0-9]+\$" -u lso-burst.service
	check "... with LSO_JOB_ID=" wait_for 5 journal_has "^POST /api/execute/ 201 job=$BURST_JOB " "LSO_JOB_ID=$BURST_JOB"
	out=$(bx systemd-analyze security --no-pager lso-burst.service 2>&1 </dev/null)
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -n "$score" ] && awk -v s="$score" -v m="$EXPOSURE_MAX" 'BEGIN { exit !(s <= m) }'; then
		pass "exposure of lso-burst.service $score <= $EXPOSURE_MAX"
	else
		fail "exposure of lso-burst.service ${score:-?} <= $EXPOSURE_MAX" "$(printf '%s\n' "$out" | grep '✗')"
	fi

	# An async job moves to its scope: stopping the burst service leaves it alone.
	submit sleep-echo '["4"]' /ok/burst-async
	expect "async in burst mode: 201" "$CODE" 201
	local scope=lso-job-$JOB.scope
	check "the job runs as $scope" wait_for 5 unit_active "$scope"
	expect "$scope is in lso-jobs.slice" "$(bx systemctl show -p Slice --value "$scope" </dev/null)" lso-jobs.slice
	check "systemctl stop lso-burst.service" bx timeout 30 systemctl stop lso-burst.service
	check "... the job still runs" unit_active "$scope"
	check "its callback is delivered" wait_for 15 has_callback "$JOB"
	callbacks_for "$JOB" | head -n 1 >"$TMP/callback"
	jqcheck "... with its result" '.body.result == {"output": "slept 4\n", "return_code": 0, "status": "successful"}' "$TMP/callback"
	check "journalctl -u $scope has the runner's lines" wait_for 5 journal_has \
		"^job $JOB successful rc=0\$" -u "$scope"

	# SIGTERM (systemctl stop) with a request in flight: it is answered.
	bx sh -c 'curl -s -o /run/lso-test/term.body -w "%{http_code}" --max-time 20 \
		-H "Content-Type: application/json" \
		--data-binary "{\"executable_name\":\"sleep-echo\",\"args\":[\"2\"],\"is_async\":false}" \
		http://127.0.0.1:'$PORT'/api/execute/ >/run/lso-test/term.code' </dev/null &
	local client=$!
	wait_for 5 bx pgrep -f 'sleep 2' </dev/null
	check "systemctl stop lso-burst.service, a request in flight" bx timeout 30 systemctl stop lso-burst.service
	wait "$client"
	expect "... the request in flight answered" "$(bx cat /run/lso-test/term.code </dev/null)" 201
	check "... with its output" bx grep -q 'slept 2' /run/lso-test/term.body
	check "lso-burst.socket still listening after the stop" unit_active lso-burst.socket
	expect "lso-burst.service stopped cleanly" "$(bx systemctl show -p Result --value lso-burst.service </dev/null)" success

	test_load lso-burst.socket none

	# The idle exit as shipped (LSO_IDLE_EXIT_SEC=30): then no lso process at all.
	t0=$SECONDS
	check "idle: lso-burst.service exits, no lso process left" wait_for 60 burst_idle
	echo "     idle exit after $((SECONDS - t0)) s"
	expect "... exited cleanly" "$(bx systemctl show -p Result --value lso-burst.service </dev/null)" success
	check "lso-burst.socket still listening when idle" unit_active lso-burst.socket
	request GET /api/version
	expect "the next connection starts it again" "$CODE" 200

	check "systemctl start lso.socket while lso-burst.service serves" bx systemctl start lso.socket
	check "... lso.socket listening" unit_active lso.socket
	check "... burst mode stopped" eval "unit_inactive lso-burst.socket && unit_inactive lso-burst.service"
	request GET /api/version
	expect "... and lso.socket answers" "$CODE" 200
}

test_tmpfiles() {
	local conf=$TMPFILES_CONF id=00000000-0000-4000-8000-000000000000
	section "lso.tmpfiles"
	check "installed as $conf" bx test -s "$conf"
	check "systemd-tmpfiles --clean takes it" bx systemd-tmpfiles --clean "$conf"
	check "recent records kept" bx test -e "$STATE/jobs/$ASYNC_JOB.json"
	# The same lines with a 1 s age: old records go, the directory stays.
	bx sh -c 'printf "{}\n" >"$1/jobs/$2.json" && : >"$1/jobs/$2.lock" &&
		awk "\$1 !~ /^#/ && NF >= 6 { \$6 = \"1s\" } 1" "$3" >/run/lso-test/short.conf' \
		sh "$STATE" "$id" "$conf" </dev/null
	sleep 2
	bx systemd-tmpfiles --clean /run/lso-test/short.conf </dev/null >/dev/null 2>&1
	check "aged records and locks removed" bx sh -c "! ls $STATE/jobs/$id.*"
	check "the jobs directory stays" bx test -d "$STATE/jobs"
}

diagnose() {
	echo "--- journal of the box (lso units, last 60 lines)"
	bx journalctl --no-pager -o short-monotonic -u 'lso*' -u lso-test-receiver </dev/null | tail -n 60
}

setup
test_units
test_sync
test_journal
test_connections
write_load_requests
test_load lso.socket refused
test_async
test_jobs_slice
test_stop_scope
test_cancel
test_recover
test_timer
test_cancel_at_once
test_term_at_once
test_credential
test_supervise
test_hardening
test_burst
test_tmpfiles
[ "$failed" = 0 ] || diagnose
echo "took $((SECONDS - START)) s"
[ "$skipped" = 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
