#!/usr/bin/env bash
# tests/valgrind.sh LSO: valgrind memcheck over representative requests, each
# served by its own lso process: the request bytes on stdin, the response on
# stdout (lso's inetd fallback), plus two through systemd-socket-activate
# (fd 3, and --inetd on a socket) when it is installed. The async job runs
# under --trace-children=yes (the fixture programs skipped), and the detached
# runner's log is checked too, once the callback has arrived and the runner
# has exited. Every log must show zero errors and no "definitely lost"
# bytes. One line per request, then "N passed, M failed"; non-zero on failure.
# KEEP_TMP=1 keeps the logs.
set -u
cd "$(dirname "$0")/.." || exit 2
[ $# -eq 1 ] || { echo "usage: $0 LSO" >&2; exit 2; }
LSO=$(realpath "$1") || exit 2
TOP=$(pwd)
PROGRAMS="$TOP/tests/programs"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
TMP=$(mktemp -d /tmp/lso-valgrind.XXXXXX) || exit 2
passed=0 failed=0
pids=()

cleanup() {
	local log pid
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	# Whatever of ours still runs (a runner, its program): every process left a vg.PID log.
	for log in "$TMP"/vg/*/vg.*; do
		pid=${log##*.}
		[ -e "$log" ] && grep -qs "$TMP" "/proc/$pid/cmdline" && kill -9 "$pid" 2>/dev/null
		[ -e "$log" ] && kill -9 -- "-$pid" 2>/dev/null # a program's group
	done
	wait 2>/dev/null
	if [ -n "${KEEP_TMP:-}" ] || [ "$failed" != 0 ]; then
		echo "logs kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

VALGRIND=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite
	--error-exitcode=99 --num-callers=30)
# lso's environment: programs from the fixtures, a private state directory,
# nothing inherited that would change how it starts or detaches.
unset LISTEN_PID LISTEN_FDS LISTEN_FDNAMES INVOCATION_ID LSO_API_KEY LSO_OAUTH2_ACTIVE CREDENTIALS_DIRECTORY \
	JOB_FILES_ROOT_DIR LSO_DOCS_ASSETS_URL \
	STATE_DIRECTORY LSO_MAX_BODY_BYTES LSO_READ_TIMEOUT_SEC
export EXECUTABLES_ROOT_DIR="$PROGRAMS" LSO_STATE_DIR="$TMP/state" LSO_CALLBACK_RETRIES=2
# valgrind 3.19 does not know pidfd_open (ENOSYS), and lso then never sees a
# program exit: each run lasts EXECUTABLE_TIMEOUT_SEC plus two kill graces.
# Keep that short; the output is still checked, up to lso's timeout note.
export EXECUTABLE_TIMEOUT_SEC=1
mkdir -p "$TMP/req" "$TMP/resp" "$TMP/vg"

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s: %s\n' "$1" "$2"; }

# check_logs NAME: every valgrind log of NAME clean; prints a reason otherwise.
check_logs() {
	local dir=$TMP/vg/$1 log summaries=0
	for log in "$dir"/vg.*; do
		[ -e "$log" ] || { echo "no valgrind log"; return 1; }
		# A process that exec'd a program (untraced) leaves a log without a summary.
		grep -q 'ERROR SUMMARY:' "$log" || continue
		summaries=$((summaries + 1))
		if ! grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
			echo "$(grep -m 1 'ERROR SUMMARY' "$log" | sed 's/^==[0-9]*== //') in $log"
			return 1
		fi
		if grep -Eq 'definitely lost: [1-9]' "$log"; then
			echo "$(grep -m 1 'definitely lost' "$log" | sed 's/^==[0-9]*== //') in $log"
			return 1
		fi
	done
	[ "$summaries" -gt 0 ] || { echo "no valgrind log ended (no ERROR SUMMARY)"; return 1; }
	return 0
}

# status_of FILE: the status code of the (last) response in FILE.
status_of() {
	grep -a '^HTTP/1.1 ' "$1" | grep -av ' 100 Continue' | tail -n 1 | tr -d '\r' | cut -d ' ' -f 2
}

# serve NAME WANT [VAR=VALUE...]: lso under valgrind with $TMP/req/NAME on
# stdin; checks the status and the logs. Extra valgrind options in VG_EXTRA.
serve() {
	local name=$1 want=$2 got why rc
	shift 2
	mkdir -p "$TMP/vg/$name"
	env "$@" "${VALGRIND[@]}" ${VG_EXTRA:-} --log-file="$TMP/vg/$name/vg.%p" \
		"$LSO" <"$TMP/req/$name" >"$TMP/resp/$name" 2>"$TMP/resp/$name.err"
	rc=$?
	finish "$name" "$want" "$rc"
}

# finish NAME WANT RC: the verdict on one request.
finish() {
	local name=$1 want=$2 rc=$3 got why
	got=$(status_of "$TMP/resp/$name")
	if [ "$got" != "$want" ]; then
		bad "$name" "status ${got:-none}, want $want (exit $rc)"
	elif [ "$rc" = 99 ]; then
		bad "$name" "valgrind exit 99: $(check_logs "$name")"
	elif ! why=$(check_logs "$name"); then
		bad "$name" "$why"
	else
		ok "$name ($got)"
	fi
}

# request NAME METHOD PATH [BODY [HEADER...]]: write an HTTP/1.1 request file.
request() {
	local name=$1 method=$2 path=$3 body=${4-} h
	shift 3
	[ $# -gt 0 ] && shift
	{
		printf '%s %s HTTP/1.1\r\nHost: localhost\r\n' "$method" "$path"
		for h in "$@"; do printf '%s\r\n' "$h"; done
		if [ -n "$body" ]; then
			printf 'Content-Type: application/json\r\nContent-Length: %d\r\n' "${#body}"
		fi
		printf '\r\n%s' "$body"
	} >"$TMP/req/$name"
}

body_of() { sed -e '1,/^\r$/d' "$TMP/resp/$1"; }

# --- plain requests: one lso process each ---

request version GET /api/version
serve version 200

request sync-echo-args POST /api/execute/ '{"executable_name":"echo-args","args":["a","b c"],"is_async":false}'
serve sync-echo-args 201
body_of sync-echo-args | grep -q '"output":"a\\nb c\\n' || bad sync-echo-args-output "$(body_of sync-echo-args)"
no_pidfd=
if body_of sync-echo-args | grep -q 'Execution timed out'; then
	no_pidfd=1
	echo "note: lso did not see the program exit under valgrind (no pidfd_open?): runs end by timeout"
fi

printf 'POST /api/execute HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n1c;x=y\r\n{"executable_name":"marker",\r\n12\r\n"is_async":false}\r\n0\r\nT: 1\r\n\r\n' >"$TMP/req/sync-chunked-continue"
serve sync-chunked-continue 201

printf 'GET /api/version HTTP/1.1\r\nHost a\r\n\r\n' >"$TMP/req/400-bad-header"
serve 400-bad-header 400

printf 'POST /api/execute HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' >"$TMP/req/400-cl-and-te"
serve 400-cl-and-te 400

request 404-unknown GET /api/nothing
serve 404-unknown 404

request 404-job-malformed GET /api/jobs/not-a-uuid
serve 404-job-malformed 404

request 405-post-version POST /api/version '{}'
serve 405-post-version 405

# 408: half a request, then a silent client (the fifo's writer holds it open).
mkdir -p "$TMP/vg/408-timeout"
mkfifo "$TMP/slow-client"
(printf 'GET /api/version HTTP/1.1\r\nHost: a\r\n'; exec sleep 30) >"$TMP/slow-client" &
slow=$!
env LSO_READ_TIMEOUT_SEC=1 "${VALGRIND[@]}" --log-file="$TMP/vg/408-timeout/vg.%p" "$LSO" \
	<"$TMP/slow-client" >"$TMP/resp/408-timeout" 2>/dev/null
rc=$?
kill "$slow" 2>/dev/null
wait "$slow" 2>/dev/null
finish 408-timeout 408 "$rc"

request 410-missing POST /api/execute '{"executable_name":"no-such-program"}'
serve 410-missing 410

printf 'POST /api/execute HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{}' >"$TMP/req/413-body"
serve 413-body 413

request 422-bad-json POST /api/execute '{"executable_name": "x",'
serve 422-bad-json 422

request 422-types POST /api/execute '{"args":["a",1,{"k":[1]}],"is_async":"maybe","callback":5}'
serve 422-types 422

request 422-nul POST /api/execute '{"executable_name":"a\u0000b","args":["\u0000"]}'
serve 422-nul 422

request 422-url POST /api/execute '{"executable_name":"echo-args","callback":"ftp://example.com/x"}'
serve 422-url 422

request 422-not-object POST /api/execute '["executable_name"]'
serve 422-not-object 422

printf 'POST /api/execute HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' >"$TMP/req/422-content-type"
serve 422-content-type 422

{
	printf 'GET /api/version HTTP/1.1\r\nHost: a\r\nX-Big: '
	head -c 70000 /dev/zero | tr '\0' a
	printf '\r\n\r\n'
} >"$TMP/req/431-header"
serve 431-header 431

request 503-not-file POST /api/execute '{"executable_name":"adir","is_async":false}'
serve 503-not-file 503

request 400-outside POST /api/execute '{"executable_name":"../lso","is_async":false}'
serve 400-outside 400

request 422-unsafe-name POST /api/execute '{"executable_name":"a b","is_async":false}'
serve 422-unsafe-name 422

request 403-not-executable POST /api/execute '{"executable_name":"not-executable","is_async":false}'
serve 403-not-executable 403

request 401-key GET "/api/jobs/123e4567-e89b-42d3-a456-426614174000"
serve 401-key 401 LSO_OAUTH2_ACTIVE=true LSO_API_KEY=secret

request 500-no-key GET /api/version
serve 500-no-key 500 LSO_OAUTH2_ACTIVE=true

request 200-doc GET /api/doc
serve 200-doc 200

request 200-files GET "/api/files/123e4567-e89b-42d3-a456-426614174000"
serve 200-files 200 JOB_FILES_ROOT_DIR="$TMP"

request 404-file GET "/api/files/123e4567-e89b-42d3-a456-426614174000/a.txt"
serve 404-file 404 JOB_FILES_ROOT_DIR="$TMP"

request 422-job-id GET /api/files/nope
serve 422-job-id 422

request 505-version GET /api/version
sed -i 's|HTTP/1.1\r|HTTP/2.0\r|' "$TMP/req/505-version"
serve 505-version 505

# --- async: a job with a callback, its record, its cancel ---

python3 "$TOP/tests/receiver.py" "$TMP/receiver.port" "$TMP/receiver.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$TMP/receiver.port" ] && break; sleep 0.05; done
RECEIVER="http://127.0.0.1:$(cat "$TMP/receiver.port" 2>/dev/null)"

# wait_runner NAME SECONDS: until every log of NAME has its summary (runner exited).
wait_runner() {
	local log pending
	for _ in $(seq $(($2 * 10))); do
		pending=0
		for log in "$TMP/vg/$1"/vg.*; do
			grep -q 'ERROR SUMMARY:' "$log" || pending=1
		done
		[ "$pending" = 0 ] && return 0
		# A log without a summary may be a child that exec'd a program: let it go
		# once that process is gone.
		pending=0
		for log in "$TMP/vg/$1"/vg.*; do
			grep -q 'ERROR SUMMARY:' "$log" && continue
			[ -d "/proc/${log##*.}" ] && pending=1
		done
		[ "$pending" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# The runner is a forked grandchild of lso; the program it execs is skipped.
VG_EXTRA="--trace-children=yes --trace-children-skip=$PROGRAMS/*,/bin/*,/usr/bin/*"
request async-callback POST /api/execute "{\"executable_name\":\"echo-args\",\"args\":[\"hello\"],\"callback\":\"$RECEIVER/ok/vg\"}"
serve async-callback 201
job=$(body_of async-callback | sed -n 's/.*"job_id":"\([0-9a-f-]*\)".*/\1/p')
delivered=
for _ in $(seq 600); do
	if [ -n "$job" ] && grep -q "$job" "$TMP/receiver.log" 2>/dev/null; then delivered=1; break; fi
	sleep 0.1
done
if [ -z "$delivered" ]; then
	bad async-callback-delivery "no callback for job ${job:-?} within 60 s"
elif ! wait_runner async-callback 30; then
	bad async-runner "the runner did not exit within 30 s of its callback"
elif ! why=$(check_logs async-callback); then
	bad async-runner "$why"
else
	ok "async-runner ($(ls "$TMP/vg/async-callback" | wc -l) logs, callback delivered)"
fi
VG_EXTRA=

request job-show GET "/api/jobs/$job"
serve job-show 200
body_of job-show | grep -Eq '"status":"(successful|timeout)"' || bad job-show-record "$(body_of job-show | head -c 300)"

request job-delete-finished DELETE "/api/jobs/$job"
serve job-delete-finished 409

# Cancel a running job: the runner handles the signal and delivers "canceled".
VG_EXTRA="--trace-children=yes --trace-children-skip=$PROGRAMS/*,/bin/*,/usr/bin/*"
request async-cancel POST /api/execute "{\"executable_name\":\"sleep-echo\",\"args\":[\"30\"],\"callback\":\"$RECEIVER/ok/cancel\"}"
serve async-cancel 201 EXECUTABLE_TIMEOUT_SEC=60
VG_EXTRA=
job2=$(body_of async-cancel | sed -n 's/.*"job_id":"\([0-9a-f-]*\)".*/\1/p')
for _ in $(seq 100); do
	grep -q '"status": *"running"' "$TMP/state/jobs/$job2.json" 2>/dev/null && break
	sleep 0.1
done
request job-cancel DELETE "/api/jobs/$job2"
if [ -n "$no_pidfd" ]; then
	# lso signals the runner through a pidfd: without one under valgrind it would
	# answer 409. This request runs natively; the runner it cancels is checked.
	"$LSO" <"$TMP/req/job-cancel" >"$TMP/resp/job-cancel" 2>/dev/null
	got=$(status_of "$TMP/resp/job-cancel")
	[ "$got" = 202 ] && ok "job-cancel ($got, lso not under valgrind: no pidfd_open)" ||
		bad job-cancel "status ${got:-none}, want 202"
else
	serve job-cancel 202
fi
delivered=
for _ in $(seq 300); do
	if grep -q "$job2" "$TMP/receiver.log" 2>/dev/null; then delivered=1; break; fi
	sleep 0.1
done
if [ -z "$delivered" ]; then
	bad async-cancel-delivery "no callback for canceled job ${job2:-?} within 30 s"
elif ! wait_runner async-cancel 30; then
	bad async-cancel-runner "the runner did not exit within 30 s of its callback"
elif ! why=$(check_logs async-cancel); then
	bad async-cancel-runner "$why"
else
	ok "async-cancel-runner (callback delivered)"
fi

# --- through a real socket handover, when systemd-socket-activate is there ---

if command -v systemd-socket-activate >/dev/null && command -v curl >/dev/null; then
	free_port() {
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
	}
	# via_socket NAME MODE WANT PATH [CURL-ARGS...]: MODE fd3 or inetd.
	via_socket() {
		local name=$1 mode=$2 want=$3 path=$4 port wrapper=$TMP/wrap-$1 code args=()
		shift 4
		port=$(free_port)
		mkdir -p "$TMP/vg/$name"
		# exec keeps the pid, so LISTEN_PID still names lso under valgrind.
		printf '#!/bin/sh\nexec %s --log-file=%s/vg.%%p %s\n' \
			"${VALGRIND[*]}" "$TMP/vg/$name" "$LSO" >"$wrapper"
		chmod +x "$wrapper"
		[ "$mode" = inetd ] && args+=(--inetd)
		systemd-socket-activate -a "${args[@]}" -l "127.0.0.1:$port" \
			-E EXECUTABLES_ROOT_DIR="$PROGRAMS" -E LSO_STATE_DIR="$TMP/state" \
			-E PATH="$PATH" "$wrapper" >"$TMP/resp/$name.launcher" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do
			grep -q "Listening on" "$TMP/resp/$name.launcher" 2>/dev/null && break
			sleep 0.05
		done
		code=$(curl -sS -o "$TMP/resp/$name.body" -w '%{http_code}' --max-time 30 \
			"$@" "http://127.0.0.1:$port$path" 2>"$TMP/resp/$name.curl")
		printf 'HTTP/1.1 %s\r\n' "$code" >"$TMP/resp/$name"
		kill "${pids[-1]}" 2>/dev/null
		wait "${pids[-1]}" 2>/dev/null
		# The instance may still be writing its leak summary.
		for _ in $(seq 100); do
			grep -qs 'ERROR SUMMARY:' "$TMP/vg/$name"/vg.* && break
			sleep 0.1
		done
		finish "$name" "$want" 0
	}
	via_socket socket-fd3-version fd3 200 /api/version
	via_socket socket-inetd-422 inetd 422 /api/execute -H 'Content-Type: application/json' \
		--data-binary '{"executable_name":"echo-args","args":[1]}'
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
