#!/usr/bin/env bash
# test.sh [LSO]: the end-to-end suite. Drives the real binary (default ./lso)
# through systemd-socket-activate in both handover modes of a connection and
# in burst mode (a listening socket: systemd-socket-activate without -a, and
# tests/reactivate.py, which starts lso again like systemd), with curl as the
# client. Ends with "N passed, M failed"; exits non-zero on any failure.
set -u
cd "$(dirname "$0")" || exit 1
LSO=$(realpath "${1:-./lso}")
TOP=$(pwd)
PROGRAMS="$TOP/tests/programs"
TMP=$(mktemp -d /tmp/lso-test.XXXXXX)
passed=0 failed=0 skipped=0
pids=()
WRAP=()  # a command lso is started under (start_server)

cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ---

. tests/lib.sh
# Quiet passes; failures on stderr.
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $1${2:+: $2}" >&2; }

# start_server NAME MODE VAR=VALUE...: MODE is inetd (stdin/stdout), fd3
# (a connection as fd 3), or burst (the listening socket as fd 3: lso
# accepts; it stays up unless given LSO_IDLE_EXIT_SEC, as nothing starts it
# again). Sets PORT and SERVER_PID; the launcher's log is $TMP/NAME.log.
start_server() {
	local name=$1 mode=$2 args=() accept=-a
	shift 2
	PORT=$(free_port)
	[ "$mode" = inetd ] && args+=(--inetd)
	if [ "$mode" = burst ]; then
		accept=
		[[ " $* " == *" LSO_IDLE_EXIT_SEC="* ]] || args+=(-E LSO_IDLE_EXIT_SEC=0)
	fi
	for kv in "PATH=/usr/local/bin:/usr/bin:/bin" "$@"; do args+=(-E "$kv"); done
	systemd-socket-activate $accept "${args[@]}" -l "127.0.0.1:$PORT" ${WRAP[@]+"${WRAP[@]}"} "$LSO" \
		>"$TMP/$name.log" 2>&1 &
	SERVER_PID=$!
	pids+=($!)
	for _ in $(seq 100); do
		grep -q "Listening on" "$TMP/$name.log" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "server $name did not start: $(cat "$TMP/$name.log")" >&2
	exit 1
}

# stop_burst PID NAME: SIGTERM to a burst-mode lso; it exits 0 (once its
# connections are done).
stop_burst() {
	local rc
	kill -TERM "$1"
	if ! wait_for 30 eval "! kill -0 $1 2>/dev/null || gone $1"; then
		fail "$2: burst lso exits on SIGTERM" "still running 30 s after it"
		kill -KILL "$1"
	fi
	wait "$1"
	rc=$?
	expect "$2: burst lso exits 0 on SIGTERM" "$rc" 0
}

# request METHOD PATH [curl args...]: sets CODE; body in $TMP/body, headers in $TMP/headers.
request() {
	local method=$1 path=$2
	shift 2
	CODE=$(curl -sS -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' \
		--max-time 30 "$@" "http://127.0.0.1:$PORT$path" 2>"$TMP/curl.err")
}

# execute JSON [curl args...]: POST /api/execute/ with a JSON body.
execute() {
	local json=$1
	shift
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

# sync NAME [ARGS-JSON]: run a program synchronously.
sync() {
	execute "{\"executable_name\":\"$1\",\"args\":${2:-[]},\"is_async\":false}"
}

# raw DATA [SECONDS]: send raw bytes on a new connection, print the reply.
raw() {
	timeout "${2:-5}" bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf "%b" "$1" >&3; cat <&3' \
		"$PORT" "$1" 2>/dev/null
}

status_of() { head -n 1 | cut -d ' ' -f 2; }

# gone PID: the process has ended (a zombie waiting for init counts) within 2 s.
gone() {
	local state
	[ -n "$1" ] || return 1
	for _ in $(seq 40); do
		state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
		[ -z "$state" ] || [ "$state" = Z ] && return 0
		sleep 0.05
	done
	return 1
}

# --- async helpers ---

# start_receiver NAME [PORT]: a callback receiver; sets RECEIVER (its base URL).
start_receiver() {
	rm -f "$TMP/$1.port"
	python3 "$TOP/tests/receiver.py" "$TMP/$1.port" "$TMP/$1.callbacks" ${2:+"$2"} &
	pids+=($!)
	for _ in $(seq 100); do
		[ -s "$TMP/$1.port" ] && break
		sleep 0.05
	done
	RECEIVER="http://127.0.0.1:$(cat "$TMP/$1.port")"
}

# submit NAME ARGS-JSON [CALLBACK-URL]: an async run; sets JOB.
submit() {
	local callback=null
	[ -n "${3:-}" ] && callback="\"$3\""
	execute "{\"executable_name\":\"$1\",\"args\":$2,\"callback\":$callback}"
	JOB=$(jq -r .job_id "$TMP/body")
}

# callbacks_for JOB: the callbacks received for a job, one JSON line each.
callbacks_for() {
	cat "$TMP"/*.callbacks 2>/dev/null | jq -c "select(.body.job_id == \"$1\")"
}

job_status_is() {
	request GET "/api/jobs/$1"
	jq -e ".status == \"$2\"" "$TMP/body" >/dev/null
}

# job_record_is JOB FILTER: GET of the job answers a record satisfying the filter.
job_record_is() {
	request GET "/api/jobs/$1"
	jq -e "$2" "$TMP/body" >/dev/null
}

has_callbacks() { [ "$(callbacks_for "$1" | wc -l)" -ge "${2:-1}" ]; }

# no_process_with VAR=PREFIX: no live process has such a variable in its environment.
no_process_with() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		tr '\0' '\n' <"$f" 2>/dev/null | grep -q "^$1" || continue
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && continue
		echo "left running: $(tr '\0' ' ' <"/proc/$pid/cmdline")" >&2
		return 1
	done
}

# holds_no_socket PID: none of the process's descriptors is a socket.
holds_no_socket() {
	[ -d "/proc/$1/fd" ] && ! ls -l "/proc/$1/fd" | grep -q 'socket:'
}

# runner_of JOB: the pid of the process running the job (first field of its lock file).
runner_of() { cut -d ' ' -f 1 "$STATE/jobs/$1.lock"; }

# --- the suites ---

test_routes() {
	request GET /api/version
	expect "version status" "$CODE" 200
	jqcheck "version body" '.api == "2.0" and (.module | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'
	check "Connection: close" grep -qi '^Connection: close' "$TMP/headers"
	check "Content-Length" grep -qi '^Content-Length: [0-9]' "$TMP/headers"
	request GET /api/nowhere
	expect "unknown path" "$CODE" 404
	jqcheck "404 body" '.detail == "Not Found"'
	request GET /api/execute/
	expect "GET on execute" "$CODE" 405
	jqcheck "405 body" '.detail == "Method Not Allowed"'
	expect "405 Allow header" "$(allow_of)" POST
	request POST /api/version
	expect "POST on version" "$CODE" 405
	expect "405 Allow GET" "$(allow_of)" "GET, HEAD"
	execute '{"executable_name":"echo-args","args":["x"],"is_async":false}' --url-query ignored=1
	expect "query string ignored" "$CODE" 201
	request POST /api/execute -H 'Content-Type: application/json' \
		--data-binary '{"executable_name":"echo-args","args":["no slash"],"is_async":false}'
	expect "route without slash" "$CODE" 201
	jqcheck "route without slash runs" '.result.output == "no slash\n"'
	test_allow
}

# allow_of: the Allow header of the last response.
allow_of() { tr -d '\r' <"$TMP/headers" | sed -n 's/^Allow: //Ip'; }

# Every route's 405 lists exactly the methods its path is served with (HEAD
# wherever GET is, RFC 9110 9.3.2), and each of those is served there.
test_allow() {
	local id=00000000-0000-4000-8000-000000000000 path allow method
	while read -r path allow; do
		request PUT "$path"
		expect "PUT $path: 405" "$CODE" 405
		expect "PUT $path: Allow" "$(allow_of)" "$allow"
		for method in ${allow//,/}; do
			case $method in
			HEAD) request HEAD "$path" --head ;;
			POST) request POST "$path" -H 'Content-Type: application/json' --data-binary '{}' ;;
			*) request "$method" "$path" ;;
			esac
			check "$method $path: served ($CODE)" [ "$CODE" != 405 -a "$CODE" != 000 ]
		done
	done <<-EOF
	/api/execute/ POST
	/api/execute POST
	/api/playbook/ POST
	/api/playbook POST
	/api/version GET, HEAD
	/api/version/ GET, HEAD
	/api/openapi.json GET, HEAD
	/api/doc GET, HEAD
	/api/redoc GET, HEAD
	/api/jobs/$id GET, HEAD, DELETE
	/api/files/$id GET, HEAD
	/api/files/$id/a.txt GET, HEAD
	/api/files/$id/delete DELETE, GET, HEAD
	EOF
}

test_sync_run() {
	local id
	sync echo-args '["a b", "$(id)", "*", "", "--x=\"q\""]'
	expect "sync status" "$CODE" 201
	jqcheck "args verbatim" '.result.output == "a b\n$(id)\n*\n\n--x=\"q\"\n"'
	jqcheck "successful" '.result.return_code == 0 and .result.status == "successful"'
	jqcheck "job_id uuid4" '.job_id | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")'
	id=$(jq -r .job_id "$TMP/body")
	sync echo-args
	check "fresh job_id each time" [ "$(jq -r .job_id "$TMP/body")" != "$id" ]
	sync out-err
	jqcheck "stdout then stderr" '.result.output == "to stdout\nto stderr\n"'
	sync exit-code '["3"]'
	jqcheck "exit status" '.result.return_code == 3 and .result.status == "failed"'
	sync self-kill
	jqcheck "signal -> -N" '.result.return_code == -15 and .result.status == "failed"'
	sync no-shebang
	jqcheck "no /bin/sh fallback" '.result.return_code == -1 and (.result.output | test("Exec format error"))'
	sync read-stdin
	jqcheck "stdin is /dev/null" '.result.output == "stdin: eof\n"'
	sync show-fds
	# 0-2, and the checked file itself, which a script's interpreter reads as /dev/fd/4.
	jqcheck "only 0-2 inherited, and the script's own file" '[.result.output | split("\n")[] | select(length > 0) | split(" ")[0]] == ["0","1","2","4"]'
	jqcheck "fd 4 is the script" '.result.output | test("\n4 /.*/show-fds\n$")'
	jqcheck "stdin /dev/null, pipes out" '.result.output | test("^0 /dev/null\n1 pipe:.*\n2 pipe:")'
	sync show-signals
	jqcheck "empty mask, nothing ignored" '.result.output == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"'
	sync show-env
	id=$(jq -r .job_id "$TMP/body")
	jqcheck "env: LSO_JOB_ID, no LISTEN_" ".result.output == \"LSO_JOB_ID=$id\n\""
	sync show-pgid
	jqcheck "own process group" '.result.output | capture("pid=(?<p>[0-9]+) pgrp=(?<g>[0-9]+)") | .p == .g'
	sync yes-head
	jqcheck "yes | head -n 1" '.result.output == "y\n" and .result.return_code == 0'
	sync odd-bytes
	jqcheck "output repaired to valid JSON" \
		'.result.output == "crlf\nlone\ncr bad\ufffdbyte nul\u0000x ctl\u0001y tab\tz \"q\" back\\s"'
	check "NUL escaped as \\u0000" grep -qF 'nul\u0000x' "$TMP/body"
	sync maps-of-lso
	jqcheck "sync path does not load libcurl" '.result.output == "libcurl mappings: 0\n"'
	sync sub/nested
	jqcheck "program in a subfolder" '.result.output == "nested\n"'
	sync inside-link '["via link"]'
	jqcheck "symlink inside the root" '.result.output == "via link\n"'
	sync "$PROGRAMS/echo-args" '["absolute"]'
	jqcheck "absolute path inside the root" '.result.output == "absolute\n"'
}

test_timeouts() {
	local t0 t1 pid
	t0=$(date +%s%N)
	sync group-sleeper "[\"$TMP/sleeper.pid\"]"
	t1=$(date +%s%N)
	jqcheck "timeout" '.result.return_code == -1 and .result.status == "failed" and (.result.output | test("Execution timed out.$"))'
	check "timeout within limit + grace" [ $(((t1 - t0) / 1000000)) -lt 6000 ]
	pid=$(cat "$TMP/sleeper.pid")
	check "whole group killed on timeout" gone "$pid"
	sync ignore-term "[\"$TMP/ignorer.pid\"]"
	jqcheck "SIGTERM ignored: killed anyway" '.result.return_code == -1'
	check "SIGKILL after the grace period" gone "$(cat "$TMP/ignorer.pid")"
	t0=$(date +%s%N)
	sync bg-holder
	t1=$(date +%s%N)
	jqcheck "background holder: exit status kept" '.result.return_code == 0'
	check "background holder does not hang the request" [ $(((t1 - t0) / 1000000)) -lt 2500 ]
	pid=$(jq -r '.result.output | rtrimstr("\n")' "$TMP/body")
	check "background holder killed" gone "$pid"
}

test_validation() {
	local marker="$TMP/marker-ran"
	request POST /api/execute/ --data-binary "{\"executable_name\":\"marker\",\"args\":[\"$marker\"],\"is_async\":false}" -H 'Content-Type:'
	expect "no Content-Type" "$CODE" 422
	jqcheck "no Content-Type: body as input" '.detail[0].type == "model_attributes_type" and .detail[0].loc == ["body"]'
	request POST /api/execute/ -H 'Content-Type: text/plain' --data-binary "{\"executable_name\":\"marker\",\"args\":[\"$marker\"],\"is_async\":false}"
	expect "text/plain" "$CODE" 422
	request POST /api/execute/ --data "executable_name=marker&args=$marker"
	expect "form-urlencoded" "$CODE" 422
	check "nothing ran on 422" [ ! -e "$marker" ]
	request POST /api/execute/ -H 'Content-Type: Application/JSON; charset=utf-8' \
		--data-binary '{"executable_name":"echo-args","args":["p"],"is_async":false}'
	expect "content type with parameters" "$CODE" 201
	execute '{"executable_name":"echo-args"'
	expect "bad JSON" "$CODE" 422
	jqcheck "json_invalid" '.detail[0].type == "json_invalid" and .detail[0].loc[0] == "body" and .detail[0].msg == "JSON decode error"'
	execute '["executable_name"]'
	jqcheck "not an object" '.detail[0].type == "model_attributes_type" and .detail[0].input == ["executable_name"]'
	execute '{"args":[]}'
	expect "missing name" "$CODE" 422
	jqcheck "missing" '.detail == [{"type":"missing","loc":["body","executable_name"],"msg":"Field required","input":{"args":[]}}]'
	execute '{"executable_name":5}'
	jqcheck "string_type" '.detail[0] | .type == "string_type" and .loc == ["body","executable_name"] and .input == 5'
	execute '{"executable_name":"echo-args","args":"x"}'
	jqcheck "list_type" '.detail[0] | .type == "list_type" and .loc == ["body","args"]'
	execute '{"executable_name":"echo-args","args":["a",1,null]}'
	jqcheck "args items must be strings" '[.detail[] | .type + ":" + (.loc | map(tostring) | join("."))] == ["string_type:body.args.1","string_type:body.args.2"]'
	execute '{"executable_name":"echo-args","args":["a\u0000b"],"is_async":false}'
	jqcheck "NUL in an argument" '.detail[0] | .loc == ["body","args",0] and .input == "a\u0000b"'
	execute '{"executable_name":"echo\u0000-args","is_async":false}'
	jqcheck "NUL in the name" '.detail[0] | .loc == ["body","executable_name"]'
	local name
	for name in 'echo args' 'echo-args;id' '$(id)' 'echo*' 'é' '' 'a\\b' 'a\nb' '~/x' 'a:b' '%2e%2e'; do
		execute "$(jq -cn --arg n "$name" '{executable_name: $n, is_async: false}')"
		expect "unsafe name [$name]: 422" "$CODE" 422
		expect "unsafe name [$name]: upstream's item" "$(jq -cS .detail "$TMP/body")" \
			"$(jq -cnS --arg n "$name" '[{type: "value_error", loc: ["body", "executable_name"],
				msg: ("Value error, Name '"'"'" + $n + "'"'"' contains characters that are not allowed."),
				input: $n, ctx: {error: {}}}]')"
	done
	execute '{"executable_name":"no such","args":5}'
	jqcheck "an unsafe name among other problems" '[.detail[].type] == ["value_error","list_type"]'
	execute '{"executable_name":"sub/nested","is_async":false}'
	expect "every safe character: a path with / runs" "$CODE" 201
	execute '{"executable_name":"echo-args","is_async":"maybe"}'
	jqcheck "bool_parsing" '.detail[0] | .type == "bool_parsing" and .loc == ["body","is_async"]'
	execute '{"executable_name":"echo-args","is_async":[true]}'
	jqcheck "bool_type" '.detail[0].type == "bool_type"'
	execute '{"executable_name":"echo-args","is_async":false,"callback":"not a url"}'
	jqcheck "url_parsing" '.detail[0] | .type == "url_parsing" and .loc == ["body","callback"]'
	execute '{"executable_name":"echo-args","is_async":false,"callback":"/relative"}'
	jqcheck "relative callback" '.detail[0].type == "url_parsing"'
	execute '{"executable_name":"echo-args","is_async":false,"callback":"ftp://host/x"}'
	jqcheck "url_scheme" '.detail[0].type == "url_scheme"'
	execute '{"executable_name":"echo-args","is_async":false,"callback":"http://"}'
	jqcheck "empty host" '.detail[0].type == "url_parsing"'
	execute '{"executable_name":5,"args":{},"is_async":"x","callback":3}'
	jqcheck "every problem listed" '[.detail[].type] == ["string_type","list_type","url_type","bool_parsing"]'
	execute '{"executable_name":"echo-args","args":["cb ignored"],"is_async":false,"callback":"http://127.0.0.1:9/x","unknown":1}'
	expect "sync callback and unknown fields ignored" "$CODE" 201
	jqcheck "sync callback ignored" '.result.output == "cb ignored\n"'
	local word
	for word in false 0 '"false"' '"0"' '"no"' '"off"' '"f"' '"n"' '"NO"' '"Off"'; do
		execute "{\"executable_name\":\"echo-args\",\"args\":[\"lax\"],\"is_async\":$word}"
		jqcheck "lax bool $word is false" '.result.output == "lax\n"'
	done
}

test_resolution() {
	sync ../echo-args
	expect "dot-dot" "$CODE" 400
	jqcheck "outside wording (upstream 5.x)" '.detail == "Path '"'"'../echo-args'"'"' is outside the configured root directory."'
	sync sub/../../programs/echo-args
	expect "dot-dot through a subfolder" "$CODE" 400
	sync /bin/true
	expect "absolute path outside" "$CODE" 400
	sync /nonexistent/program
	expect "absolute path outside, missing: decided before existence" "$CODE" 400
	sync ../no-such-program
	expect "dot-dot to nothing: 400, not 410" "$CODE" 400
	sync outside-link
	expect "symlink pointing outside" "$CODE" 400
	sync climbing-link
	expect "relative symlink climbing out" "$CODE" 400
	sync missing-program
	expect "missing" "$CODE" 410
	jqcheck "missing wording" '.detail == "Executable '"'"'missing-program'"'"' does not exist."'
	sync adir
	expect "directory" "$CODE" 503
	jqcheck "not a file wording" '.detail == "Executable '"'"'adir'"'"' is not a valid file."'
	sync not-executable
	expect "no x bit" "$CODE" 403
	jqcheck "not executable wording" '.detail == "Executable '"'"'not-executable'"'"' is not marked as executable."'
	check "the server path is never shown" bash -c "! grep -qF '$PROGRAMS' '$TMP/body'"
}

test_http() {
	local reply
	request POST /api/execute/ -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
		--data-binary '{"executable_name":"echo-args","args":["chunked"],"is_async":false}'
	expect "chunked body" "$CODE" 201
	jqcheck "chunked body read" '.result.output == "chunked\n"'
	request POST /api/execute/ -H 'Content-Type: application/json' -H 'Expect: 100-continue' \
		--data-binary '{"executable_name":"echo-args","args":["continued"],"is_async":false}'
	expect "Expect: 100-continue" "$CODE" 201
	reply=$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\nExpect: 100-continue\r\n\r\n' 2)
	check "100 Continue before the body" grep -q '^HTTP/1.1 100 Continue' <<<"$reply"
	request GET /api/version -0
	expect "HTTP/1.0" "$CODE" 200
	expect "HTTP/1.0 Host-less" "$(raw 'GET /api/version HTTP/1.0\r\n\r\n' | status_of)" 200
	expect "HTTP/1.1 needs Host" "$(raw 'GET /api/version HTTP/1.1\r\n\r\n' | status_of)" 400
	expect "garbage" "$(raw '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n' | status_of)" 400
	expect "no version" "$(raw 'GET /api/version\r\n\r\n' | status_of)" 400
	expect "HTTP/2.0" "$(raw 'GET /api/version HTTP/2.0\r\nHost: x\r\n\r\n' | status_of)" 505
	expect "CL and TE" "$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' | status_of)" 400
	expect "two Content-Lengths" "$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x' | status_of)" 400
	expect "bad chunk size" "$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n' | status_of)" 400
	expect "space before colon" "$(raw 'GET /api/version HTTP/1.1\r\nHost : x\r\n\r\n' | status_of)" 400
	expect "obs-fold" "$(raw 'GET /api/version HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n' | status_of)" 400
	expect "unknown transfer coding" "$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n' | status_of)" 501
	expect "header block over 64 KiB" "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 70000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$PORT/api/version")" 431
	reply=$(raw 'GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	check "raw response has Connection: close" grep -qi '^Connection: close' <<<"$reply"
}

# Small limits: body, output, read deadline.
test_limits() {
	local t0 t1 reply
	execute "{\"executable_name\":\"echo-args\",\"args\":[\"$(head -c 2000 /dev/zero | tr '\0' a)\"],\"is_async\":false}"
	expect "body over LSO_MAX_BODY_BYTES" "$CODE" 413
	execute "{\"executable_name\":\"echo-args\",\"args\":[\"$(head -c 2000 /dev/zero | tr '\0' a)\"],\"is_async\":false}" -H 'Transfer-Encoding: chunked'
	expect "chunked body over the limit" "$CODE" 413
	sync big-output '["5000"]'
	jqcheck "output capped" '(.result.output | startswith("aaaa")) and (.result.output | test("\n\\[output truncated at 1000 bytes\\]\n$")) and (.result.output | length) < 1100'
	jqcheck "capped output keeps the exit status" '.result.return_code == 0'
	t0=$(date +%s%N)
	reply=$(raw 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"exec' 5)
	t1=$(date +%s%N)
	expect "slow client gets 408" "$(status_of <<<"$reply")" 408
	check "408 at the read deadline" [ $(((t1 - t0) / 1000000)) -lt 3000 ]
	expect "silent client gets 408" "$(raw '' 5 | status_of)" 408
}

test_no_root() {
	sync echo-args
	expect "no EXECUTABLES_ROOT_DIR: 410" "$CODE" 410
}

test_log() {
	grep -qE '^POST /api/execute/ 201 job=[0-9a-f-]{36} program="echo-args" rc=0 ms=[0-9]+$' "$TMP/$1.log"
}

test_units() {
	local dest="$TMP/install"
	make -s install DESTDIR="$dest" PREFIX=/usr >/dev/null 2>&1 || { fail "make install"; return; }
	check "installed binary" [ -x "$dest/usr/bin/lso" ]
	check "installed env file" [ -f "$dest/etc/lso/lso.env" ]
	sed -i "s|^ExecStart=\([^ ]*\)lso|ExecStart=$LSO|" "$dest/lib/systemd/system/lso@.service" \
		"$dest/lib/systemd/system/lso-recover.service"
	# verify also looks up Documentation=man:lso(8): in the staged tree.
	check "systemd-analyze verify" env MANPATH="$dest/usr/share/man" systemd-analyze verify \
		"$dest/lib/systemd/system/lso.socket" "$dest/lib/systemd/system/lso@.service" \
		"$dest/lib/systemd/system/lso-recover.service" "$dest/lib/systemd/system/lso-recover.timer"
	check "man page installed" [ -f "$dest/usr/share/man/man8/lso.8" ]
	check "default KillMode" bash -c "! grep -q '^KillMode' '$dest/lib/systemd/system/lso@.service'"
}

test_async_run() {
	local t0 t1
	start_receiver main
	t0=$(date +%s%N)
	submit sleep-echo '["1"]' "$RECEIVER/ok/fast"
	t1=$(date +%s%N)
	expect "async status" "$CODE" 201
	jqcheck "async body" '.result == null and (.job_id | test("^[0-9a-f-]{36}$"))'
	check "201 (and EOF) long before the program ends" [ $(((t1 - t0) / 1000000)) -lt 700 ]
	check "record right after 201" jq -e '.status == "queued" or .status == "running"' <(curl -s "http://127.0.0.1:$PORT/api/jobs/$JOB")
	check "running while the program runs" wait_for 2 job_status_is "$JOB" running
	jqcheck "started_at set, no result yet" '.started_at != null and .finished_at == null and .result == null'
	check "callback arrives" wait_for 5 has_callbacks "$JOB"
	callbacks_for "$JOB" > "$TMP/cb"
	check "callback body" jq -e --arg id "$JOB" '.body == {"job_id": $id, "result": {"output": "slept 1\n", "return_code": 0, "status": "successful"}}' "$TMP/cb"
	check "callback is application/json" jq -e '.content_type == "application/json"' "$TMP/cb"
	check "record final" wait_for 2 job_status_is "$JOB" successful
	jqcheck "record fields" '.kind == "execute" and .name == "sleep-echo" and .args == ["1"] and .result.output == "slept 1\n" and .finished_at != null and .created_at <= .started_at'
	jqcheck "timestamps RFC 3339 UTC, today" ".created_at | test(\"^$(date -u +%F)T[0-9]{2}:[0-9]{2}:[0-9]{2}\\\\.[0-9]{3}Z\$\")"
	jqcheck "record callback delivered" '.callback.attempts == 1 and .callback.delivered == true and .callback.last_error == null'
	submit exit-code '["4"]'
	check "failed job without callback" wait_for 3 job_status_is "$JOB" failed
	jqcheck "no callback: null" '.callback == null and .result.return_code == 4'
	submit group-sleeper "[\"$TMP/async-sleeper.pid\"]" "$RECEIVER/ok/timeout"
	check "async timeout" wait_for 8 job_status_is "$JOB" timeout
	jqcheck "async timeout result" '.result.return_code == -1 and (.result.output | test("Execution timed out.$"))'
	check "async timeout kills the group" gone "$(cat "$TMP/async-sleeper.pid")"
	check "timeout callback" wait_for 3 has_callbacks "$JOB"
	submit odd-bytes '[]'
	check "async output repaired like sync" wait_for 3 job_status_is "$JOB" successful
	jqcheck "async output" '.result.output == "crlf\nlone\ncr bad\ufffdbyte nul\u0000x ctl\u0001y tab\tz \"q\" back\\s"'
}

test_async_delivery() {
	local port
	start_receiver main
	submit echo-args '["flaky"]' "$RECEIVER/flaky/1"
	check "retried on 503 until delivered" wait_for 10 has_callbacks "$JOB" 3
	check "delivered on the third attempt" wait_for 2 job_status_is "$JOB" successful
	check "attempts counted" wait_for 2 bash -c "curl -s http://127.0.0.1:$PORT/api/jobs/$JOB | jq -e '.callback.attempts == 3 and .callback.delivered'"
	submit echo-args '["refused"]' "$RECEIVER/notfound/1"
	check "4xx answered once" wait_for 3 has_callbacks "$JOB"
	sleep 2
	expect "no retry after 4xx" "$(callbacks_for "$JOB" | wc -l | tr -d ' ')" 1
	# Recorded after the receiver answered: waited for, not assumed after the sleep.
	check "4xx recorded" wait_for 5 job_record_is "$JOB" '.callback.delivered == false and .callback.attempts == 1 and .callback.last_error == "HTTP 404"'
	port=$(free_port)
	submit echo-args '["late receiver"]' "http://127.0.0.1:$port/ok/late"
	sleep 1.5
	start_receiver late "$port"
	check "receiver down at first, up later: delivered" wait_for 8 has_callbacks "$JOB"
	request GET "/api/jobs/$JOB"
	jqcheck "connection errors retried" '.callback.delivered == true and .callback.attempts >= 2'
	check "each attempt logged" grep -q "callback job=$JOB attempt=2" "$TMP/$SERVER.log"
	submit echo-args '["redirected"]' "$RECEIVER/redirect/1"
	check "redirect answered" wait_for 3 has_callbacks "$JOB"
	sleep 1
	check "redirects not followed" bash -c "! grep -q '\"/ok/redirected\"' $TMP/main.callbacks"
	check "3xx: not delivered, not retried" wait_for 5 job_record_is "$JOB" '.callback.delivered == false and .callback.attempts == 1 and .callback.last_error == "HTTP 307"'
	submit echo-args '["slow receiver"]' "$RECEIVER/slow/1"
	check "REQUEST_TIMEOUT_SEC ends an attempt; the retry delivers" wait_for 10 has_callbacks "$JOB" 2
	check "timed-out attempt then delivery recorded" wait_for 3 bash -c "curl -s http://127.0.0.1:$PORT/api/jobs/$JOB | jq -e '.callback.delivered and .callback.attempts == 2'"
	check "the timeout is logged" grep -q "callback job=$JOB attempt=1 .*[Tt]imeout" "$TMP/$SERVER.log"
}

test_async_jobs_api() {
	request GET /api/jobs/00000000-0000-4000-8000-000000000000
	expect "unknown job" "$CODE" 404
	jqcheck "unknown job detail" '.detail == "Job not found."'
	for bad in ..%2F..%2Fetc%2Fpasswd ABCDEF00-0000-4000-8000-000000000000 x 00000000-0000-4000-8000-00000000000 '00000000-0000-4000-8000-000000000000.json'; do
		request GET "/api/jobs/$bad"
		expect "malformed id $bad" "$CODE" 404
	done
	request GET /api/jobs/../version --path-as-is
	check "no path tricks through the id" [ "$CODE" != 200 ]
	request PUT /api/jobs/00000000-0000-4000-8000-000000000000
	expect "PUT on a job" "$CODE" 405
	expect "405 Allow for jobs" "$(allow_of)" "GET, HEAD, DELETE"
	request DELETE /api/jobs/00000000-0000-4000-8000-000000000000
	expect "cancel unknown" "$CODE" 404
}

test_async_cancel() {
	local pid
	start_receiver main
	submit group-sleeper "[\"$TMP/cancel.pid\"]" "$RECEIVER/ok/cancel"
	check "cancel: running first" wait_for 2 job_status_is "$JOB" running
	wait_for 2 test -s "$TMP/cancel.pid"
	pid=$(cat "$TMP/cancel.pid")
	check "the job's process holds no client socket (inetd)" holds_no_socket "$(runner_of "$JOB")"
	request DELETE "/api/jobs/$JOB"
	expect "cancel running" "$CODE" 202
	jqcheck "cancel answers the record" ".job_id == \"$JOB\""
	check "canceled" wait_for 4 job_status_is "$JOB" canceled
	jqcheck "canceled result" '.result.return_code == -1 and .result.status == "failed" and (.result.output | endswith("Execution canceled."))'
	check "cancel kills the group" gone "$pid"
	check "cancel callback" wait_for 3 has_callbacks "$JOB"
	check "cancel callback body" callbacks_say "$JOB" '.body.result.return_code == -1 and (.body.result.output | endswith("Execution canceled."))'
	request DELETE "/api/jobs/$JOB"
	expect "cancel finished: 409" "$CODE" 409
}

test_async_lost() {
	local runner leftover
	start_receiver main
	submit group-sleeper "[\"$TMP/lost.pid\"]" "$RECEIVER/ok/lost"
	check "lost: running first" wait_for 2 job_status_is "$JOB" running
	wait_for 2 test -s "$TMP/lost.pid"
	leftover=$(cat "$TMP/lost.pid")
	runner=$(runner_of "$JOB")
	kill -KILL "$runner"
	check "runner gone" gone "$runner"
	check "SIGKILLed runner: lost" job_status_is "$JOB" lost
	jqcheck "lost result" '.result.return_code == -1 and .finished_at != null'
	check "lost: failure callback" wait_for 3 has_callbacks "$JOB"
	check "lost: leftovers killed" gone "$leftover"
	request DELETE "/api/jobs/$JOB"
	expect "cancel lost: 409" "$CODE" 409
	submit sleep-echo '["30"]' "$RECEIVER/ok/recover"
	check "recover: running first" wait_for 2 job_status_is "$JOB" running
	runner=$(runner_of "$JOB")
	kill -KILL "$runner"
	gone "$runner"
	# An instance killed while writing a job's first record leaves it empty.
	local torn=00000000-0000-4000-8000-0000000000ee
	: >"$STATE/jobs/$torn.json"
	: >"$STATE/jobs/$torn.lock"
	env EXECUTABLES_ROOT_DIR="$PROGRAMS" LSO_STATE_DIR="$STATE" "$LSO" --recover 2>>"$TMP/$SERVER.log"
	check "lso --recover settles it" jq -e '.status == "lost"' "$STATE/jobs/$JOB.json"
	check "lso --recover skips an empty record" test ! -s "$STATE/jobs/$torn.json"
	request GET "/api/jobs/$torn"
	expect "an empty record: 404" "$CODE" 404
	check "lso --recover delivers the callback" wait_for 5 has_callbacks "$JOB"
	check "--recover leaves live jobs alone" bash -c "! grep -l '\"status\":\"running\"' $STATE/jobs/*.json | grep -q ."
}

# records_running N: N of the records in $STATE say running.
records_running() { [ "$(cat "$STATE"/jobs/*.json | jq -r .status | grep -c running)" = "$1" ]; }

test_async_queue() {
	local probe="$TMP/probe.log" jobs=() max
	for i in 1 2 3 4 5; do
		submit concurrency-probe "[\"$probe\",\"2\",\"$i\"]"
		jobs+=("$JOB")
	done
	# Two take the slots (each says running once it has one), however slow
	# their start; one snapshot of all records each time (GETs one by one
	# could straddle a slot change). More than two at once: the probe's count below.
	check "two running" wait_for 10 records_running 2
	check "the job's process holds no client socket (fd 3)" holds_no_socket "$(runner_of "${jobs[0]}")"
	check "the rest queued" job_status_is "${jobs[4]}" queued
	jqcheck "queued: not started" '.started_at == null'
	submit sleep-echo '["5"]'
	request DELETE "/api/jobs/$JOB"
	expect "cancel queued" "$CODE" 202
	check "queued job canceled" wait_for 3 job_status_is "$JOB" canceled
	jqcheck "canceled before starting" '.started_at == null and .result.return_code == -1'
	for j in "${jobs[@]}"; do
		check "queued job $j ran" wait_for 12 job_status_is "$j" successful
	done
	max=$(sort -k2,2n "$probe" | awk '/^start/ {n++} /^end/ {n--} n > m {m = n} END {print m}')
	expect "at most MAX_THREAD_POOL_WORKERS at once" "$max" 2
	expect "first come, first started" "$(grep ^start "$probe" | sort -k2,2n | awk '{print $3}' | head -n 2 | sort | tr -d '\n')" 12
}

# After the async suites: nothing of ours left running, no temp records.
test_async_leftovers() {
	sleep 1
	check "no temp record files" bash -c "! ls $STATE/jobs | grep -vqE '\.(json|lock|next)\$'"
	check "finished jobs' spare records emptied" bash -c "! find $STATE/jobs -name '*.next' -size +0c | grep -q ."
	check "no job left running" bash -c "! grep -l '\"status\":\"\(queued\|running\)\"' $STATE/jobs/*.json | grep -q ."
	check "no program or lso of this run left running" no_process_with "LSO_STATE_DIR=$STATE"
}

# --- playbooks (real Ansible) ---

# playbook JSON: POST /api/playbook (no slash, as GÉANT's client calls it); sets JOB.
playbook() {
	request POST /api/playbook -H 'Content-Type: application/json' --data-binary "$1"
	JOB=$(jq -r '.job_id // empty' "$TMP/body")
}

local_inventory='{"all":{"hosts":{"localhost":{"ansible_connection":"local","color":"blue"}}}}'

callback_of() { callbacks_for "$1" | jq -c 'select(.path | startswith("/ok/pb"))' | tail -n 1; }

test_playbook_validation() {
	playbook '{"playbook_name":"missing.yml","inventory":"localhost\n"}'
	expect "missing playbook" "$CODE" 410
	jqcheck "missing playbook wording" '.detail == "Filename '"'"'missing.yml'"'"' does not exist."'
	playbook '{"playbook_name":"../playbooks/pass.yml","inventory":"localhost\n"}'
	expect "playbook traversal" "$CODE" 400
	jqcheck "playbook outside wording" '.detail == "Path '"'"'../playbooks/pass.yml'"'"' is outside the configured root directory."'
	playbook "{\"playbook_name\":\"$PROGRAMS/echo-args\",\"inventory\":\"localhost\\n\"}"
	expect "playbook absolute path outside" "$CODE" 400
	playbook '{"playbook_name":"outside-link.yml","inventory":"localhost\n"}'
	expect "playbook symlink outside" "$CODE" 400
	playbook '{"playbook_name":"../missing.yml","inventory":"localhost\n"}'
	expect "playbook outside and missing: 400" "$CODE" 400
	playbook '{"playbook_name":"pass yml","inventory":"localhost\n"}'
	expect "unsafe playbook name" "$CODE" 422
	jqcheck "unsafe playbook name: upstream's item" '.detail == [{"type":"value_error","loc":["body","playbook_name"],"msg":"Value error, Name '"'"'pass yml'"'"' contains characters that are not allowed.","input":"pass yml","ctx":{"error":{}}}]'
	playbook '{"playbook_name":"pass.yml;id","inventory":"localhost\n"}'
	expect "playbook name with a shell character" "$CODE" 422
	playbook '{"playbook_name":"sub","inventory":"localhost\n"}'
	expect "playbook directory" "$CODE" 503
	playbook '{"inventory":"localhost\n"}'
	jqcheck "playbook_name missing" '.detail[0] | .type == "missing" and .loc == ["body","playbook_name"]'
	playbook '{"playbook_name":"pass.yml","inventory":5}'
	expect "inventory neither string nor object" "$CODE" 422
	jqcheck "inventory union errors" '[.detail[] | .type] == ["dict_type","string_type"]'
	playbook '{"playbook_name":"pass.yml"}'
	jqcheck "inventory missing" '.detail[0] | .type == "missing" and .loc == ["body","inventory"]'
	playbook '{"playbook_name":"pass.yml","inventory":"localhost\n","extra_vars":[1]}'
	jqcheck "extra_vars must be an object" '.detail[0] | .type == "dict_type" and .loc == ["body","extra_vars"]'
	playbook '{"playbook_name":"pass.yml","inventory":"localhost\n","progress":"ftp://x/y","progress_is_incremental":"maybe"}'
	jqcheck "progress URL and lax bool" '[.detail[] | .type] == ["url_scheme","bool_parsing"]'
	playbook '{"playbook_name":"pass.yml","inventory":{"all":{"hosts":["localhost"]}}}'
	expect "bad inventory object" "$CODE" 422
	jqcheck "Ansible's message" '.detail.messages[0] | contains("Invalid \"hosts\" entry for \"all\" group, requires a dictionary")'
	jqcheck "bad inventory: upstream 5.x's structured body" '.detail | keys == ["error","messages","parsed_groups","parsed_hosts","reason"] and .error == "invalid_inventory" and .reason == "unparsable" and .parsed_groups == ["all","ungrouped"] and .parsed_hosts == []'
	playbook '{"playbook_name":"pass.yml","inventory":{"web":{"hosts":{"w1":null}},"db":{"hosts":[1]}}}'
	expect "bad inventory after good hosts" "$CODE" 422
	jqcheck "rejected_with_warnings, with what was read" '.detail | .reason == "rejected_with_warnings" and .parsed_hosts == ["w1"] and .parsed_groups == ["all","ungrouped","web"]'
	playbook '{"playbook_name":"pass.yml","inventory":"h1\nh2\n[bad group]\n"}'
	jqcheck "ini: rejected_with_warnings" '.detail | .error == "invalid_inventory" and .reason == "rejected_with_warnings" and .parsed_hosts == ["h1","h2"]'
	playbook '{"playbook_name":"pass.yml","inventory":{"all":{"hosts":["localhost"]}},"progress_is_incremental":"maybe"}'
	jqcheck "a field of the wrong type keeps the list form" '.detail | type == "array" and length == 1 and .[0].type == "bool_parsing"'
	playbook '{"playbook_name":"pass yml","inventory":"[broken"}'
	jqcheck "an unsafe name keeps the list form too" '.detail | type == "array" and .[0].loc == ["body","playbook_name"]'
	playbook '{"playbook_name":"pass.yml","inventory":"[broken\nlocalhost\n"}'
	expect "bad inventory text" "$CODE" 422
	jqcheck "ini section message" '.detail.reason == "unparsable" and (.detail.messages[0] | startswith("Invalid section entry"))'
	request GET /api/playbook
	expect "GET playbook" "$CODE" 405
}

test_playbook_runs() {
	local pass string fail unreachable progress cumulative
	start_receiver pb
	playbook "{\"playbook_name\":\"pass.yml\",\"inventory\":$local_inventory,\"extra_vars\":{\"greeting\":\"world\",\"number\":21},\"callback\":\"$RECEIVER/ok/pb\"}"
	expect "playbook accepted" "$CODE" 201
	jqcheck "playbook 201 body" 'keys == ["job_id"]'
	pass=$JOB
	playbook "{\"playbook_name\":\"sub/nested.yml\",\"inventory\":\"localhost ansible_connection=local color=red\\n\",\"callback\":\"$RECEIVER/ok/pb\"}"
	string=$JOB
	playbook "{\"playbook_name\":\"fail.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\"}"
	fail=$JOB
	playbook "{\"playbook_name\":\"pass.yml\",\"inventory\":{\"all\":{\"hosts\":{\"nohost\":{\"ansible_host\":\"127.0.0.1\",\"ansible_port\":1,\"ansible_connection\":\"ssh\"}}}},\"callback\":\"$RECEIVER/ok/pb\"}"
	unreachable=$JOB
	playbook "{\"playbook_name\":\"steps.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\",\"progress\":\"$RECEIVER/ok/progress-inc\"}"
	progress=$JOB
	playbook "{\"playbook_name\":\"steps.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\",\"progress\":\"$RECEIVER/ok/progress-all\",\"progress_is_incremental\":false}"
	cumulative=$JOB
	for job in "$pass" "$string" "$fail" "$unreachable" "$progress" "$cumulative"; do
		check "playbook callback $job" wait_for 60 has_callbacks "$job"
	done
	callback_of "$pass" > "$TMP/cb"
	check "passing play: callback shape" jq -e --arg id "$pass" '.body | keys == ["job_id","output","return_code","status"] and .job_id == $id and .status == "successful" and .return_code == 0' "$TMP/cb"
	check "passing play: extra_vars and host vars" jq -e '.body.output | any(contains("hello world from localhost (blue)"))' "$TMP/cb"
	check "passing play: set_fact" jq -e '.body.output | any(contains("doubled=42"))' "$TMP/cb"
	check "passing play: no empty lines" jq -e '.body.output | all(length > 0)' "$TMP/cb"
	check "passing play: command ran" jq -e '.body.output | any(contains("TASK [run a command]"))' "$TMP/cb"
	check "string inventory with host vars" jq -e '.body.status == "successful" and (.body.output | any(contains("from localhost (red)")))' <(callback_of "$string")
	check "failing task: failed, 2" jq -e '.body.status == "failed" and .body.return_code == 2' <(callback_of "$fail")
	check "unreachable host: failed, 4" jq -e '.body.status == "failed" and .body.return_code == 4 and (.body.output | any(contains("UNREACHABLE")))' <(callback_of "$unreachable")
	check "playbook record" job_status_is "$pass" successful
	jqcheck "playbook record kind" '.kind == "playbook" and .name == "pass.yml" and .result.return_code == 0'
	jq -c 'select(.path == "/ok/progress-inc") | .body.progress' "$TMP/pb.callbacks" > "$TMP/progress"
	check "incremental progress: several posts" [ "$(wc -l < "$TMP/progress")" -ge 3 ]
	check "incremental progress: each line once, in order" jq -se '[.[][] | select(startswith("TASK ["))] == ["TASK [step one] ****************************************************************","TASK [pause] *******************************************************************","TASK [step two] ****************************************************************","TASK [pause again] *************************************************************","TASK [step three] **************************************************************"]' "$TMP/progress"
	check "progress before the callback" bash -c "jq -r 'select(.body.job_id == \"$progress\" or .path == \"/ok/progress-inc\") | .path' $TMP/pb.callbacks | tail -n 1 | grep -qx /ok/pb"
	jq -c 'select(.path == "/ok/progress-all") | .body.progress' "$TMP/pb.callbacks" > "$TMP/progress-all"
	check "cumulative progress: each post holds all lines so far" jq -se '. as $p | [range(1; $p | length) as $i | $p[$i][0:($p[$i - 1] | length)] == $p[$i - 1]] | all' "$TMP/progress-all"
	check "cumulative progress grows" jq -se 'length >= 3 and (.[-1] | any(contains("TASK [step three]")))' "$TMP/progress-all"
	check "playbook temp files removed" bash -c "[ -z \"\$(ls -A $STATE/tmp 2>/dev/null)\" ]"
}

test_playbook_stops() {
	local timeout cancel lost
	start_receiver pbstop
	playbook "{\"playbook_name\":\"slow.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\"}"
	timeout=$JOB
	playbook "{\"playbook_name\":\"slow.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\"}"
	cancel=$JOB
	check "playbook running" wait_for 10 job_status_is "$cancel" running
	sleep 1
	request DELETE "/api/jobs/$cancel"
	expect "cancel playbook" "$CODE" 202
	check "silent playbook: timeout" wait_for 30 has_callbacks "$timeout"
	check "timeout callback" jq -e '.body.status == "timeout" and .body.return_code == -1' <(callback_of "$timeout")
	check "canceled playbook callback" wait_for 10 has_callbacks "$cancel"
	check "cancel callback" jq -e '.body.status == "canceled" and .body.return_code == -1' <(callback_of "$cancel")
	playbook "{\"playbook_name\":\"slow.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\"}"
	lost=$JOB
	check "playbook to lose: running" wait_for 10 job_status_is "$lost" running
	kill -KILL "$(runner_of "$lost")"
	check "playbook whose runner died: lost" wait_for 3 job_status_is "$lost" lost
	check "lost playbook: one failure callback" wait_for 5 has_callbacks "$lost"
	check "lost playbook callback shape" jq -e '.body.status == "failed" and .body.return_code == -1 and (.body.output | length == 1) and (.body.output[0] | startswith("Ansible playbook run failed: "))' <(callback_of "$lost")
	check "no ansible left running" wait_for 5 no_process_with "LSO_STATE_DIR=$STATE"
	check "stopped playbooks' temp files removed" bash -c "[ -z \"\$(ls -A $STATE/tmp 2>/dev/null)\" ]"
}

# job_id and job_files_dir in the extra vars, over the client's; the file reaches the client.
test_playbook_files() {
	local job
	start_receiver pbfiles
	playbook "{\"playbook_name\":\"job-files.yml\",\"inventory\":$local_inventory,\"extra_vars\":{\"job_id\":\"forged\",\"job_files_dir\":\"$TMP/forged\"},\"callback\":\"$RECEIVER/ok/pb\"}"
	expect "files playbook accepted" "$CODE" 201
	job=$JOB
	check "files playbook callback" wait_for 60 has_callbacks "$job"
	check "files playbook: successful" jq -e '.body.status == "successful"' <(callback_of "$job")
	check "files playbook: job_id is lso's, not the client's" jq -e --arg id "$job" \
		'.body.output | any(contains("job_id=" + $id + " "))' <(callback_of "$job")
	check "files playbook: job_files_dir is lso's" jq -e --arg d "$PB_FILES/$job" \
		'.body.output | any(endswith("job_files_dir=" + $d + "\""))' <(callback_of "$job")
	check "files playbook: the client's job_files_dir untouched" [ ! -e "$TMP/forged" ]
	request GET "/api/files/$job"
	jqcheck "files playbook: the file is listed" ".files == [\"sub/report.txt\"] and .job_id == \"$job\""
	request GET "/api/files/$job/sub/report.txt"
	expect "files playbook: the file downloads" "$(cat "$TMP/body")" "report of $job"
	request DELETE "/api/files/$job/delete"
	expect "files playbook: deleted" "$CODE" 204
	check "files playbook: the folder is gone" [ ! -e "$PB_FILES/$job" ]
}

suite_playbooks() {
	if ! command -v ansible-playbook >/dev/null; then
		echo "SKIP: playbook tests: ansible-playbook is not installed and could not be (tests/deps.sh installs ansible-core)"
		skipped=$((skipped + 1))
		return
	fi
	STATE="$TMP/pb-state"
	SERVER=playbook
	PB_FILES="$TMP/pb-files"
	mkdir -p "$PB_FILES"
	start_server playbook inetd EXECUTABLES_ROOT_DIR="$PROGRAMS" LSO_STATE_DIR="$STATE" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" ANSIBLE_PLAYBOOK_TIMEOUT_SEC=60 \
		JOB_FILES_ROOT_DIR="$PB_FILES"
	test_playbook_validation
	test_playbook_runs
	test_playbook_files
	# A short silence limit: Ansible's own start-up may be slower on a busy machine.
	start_server playbook-idle inetd EXECUTABLES_ROOT_DIR="$PROGRAMS" LSO_STATE_DIR="$STATE" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" ANSIBLE_PLAYBOOK_TIMEOUT_SEC=4
	test_playbook_stops
}

# --- a job's files (upstream 5.x) ---

FJOB=0c8e0000-0000-4000-8000-00000000f11e

# files_refused LABEL ENCODED-NAME: 400 with upstream's wording, nothing of the outside in the body.
files_refused() {
	request GET "/api/files/$FJOB/$2" --path-as-is
	expect "files: $1: 400" "$CODE" 400
	jqcheck "files: $1: wording" '.detail | test("^Path .* is outside the configured root directory\\.$")'
	check "files: $1: nothing of the outside, no server path" bash -c "! grep -qe TOP-SECRET -e '$TMP' '$TMP/body'"
}

test_files() {
	local dir="$FILES/$FJOB" out="$TMP/files-outside" name
	mkdir -p "$dir/sub/deep" "$out"
	printf 'hello\n' >"$dir/a.txt"
	head -c 70000 /dev/urandom >"$dir/sub/b.bin"
	printf 'deep\n' >"$dir/sub/deep/c"
	printf 'TOP-SECRET-CONTENT\n' >"$out/secret"
	ln -sfn ../../files-outside/secret "$dir/out-rel"
	ln -sfn "$out/secret" "$dir/out-abs"
	ln -sfn "$out" "$dir/out-dir"
	ln -sfn ../../files-outside/nothing "$dir/out-dangling"
	ln -sfn a.txt "$dir/in-link"
	request GET "/api/files/$FJOB"
	expect "files: list" "$CODE" 200
	jqcheck "files: every regular file, relative, sorted" ". == {\"job_id\": \"$FJOB\", \"files\": [\"a.txt\", \"sub/b.bin\", \"sub/deep/c\"]}"
	request GET "/api/files/${FJOB^^}"
	jqcheck "files: the job id in capitals is the same job" ".job_id == \"$FJOB\" and (.files | length) == 3"
	request GET "/api/files/${FJOB//-/}"
	jqcheck "files: the job id without hyphens too" ".job_id == \"$FJOB\""
	request GET "/api/files/$FJOB/a.txt"
	expect "files: download" "$CODE" 200
	check "files: exact bytes" cmp "$TMP/body" "$dir/a.txt"
	check "files: octet-stream" grep -qi '^Content-Type: application/octet-stream' "$TMP/headers"
	check "files: attachment name" grep -qi '^Content-Disposition: attachment; filename="a.txt"' "$TMP/headers"
	request GET "/api/files/$FJOB/sub/b.bin"
	check "files: binary file in a subfolder, exact" cmp "$TMP/body" "$dir/sub/b.bin"
	request GET "/api/files/$FJOB/sub%2Fb.bin"
	check "files: %2F is a slash" cmp "$TMP/body" "$dir/sub/b.bin"
	request GET "/api/files/$FJOB/in-link"
	expect "files: a link staying inside is followed" "$(cat "$TMP/body")" hello
	files_refused "relative link out" out-rel
	files_refused "absolute link out" out-abs
	files_refused "folder link out" out-dir/secret
	files_refused "dangling link out (before existence)" out-dangling
	files_refused "../ literal" ../../files-outside/secret
	files_refused "..%2F encoded" ..%2F..%2Ffiles-outside%2Fsecret
	files_refused "%2e%2e encoded" %2e%2e/%2e%2e/files-outside/secret
	files_refused "climbing out of a subfolder" sub/..%2F..%2F..%2Ffiles-outside/secret
	files_refused "absolute, encoded" %2Fetc%2Fpasswd
	files_refused "absolute (double slash)" /etc/passwd
	files_refused "missing outside" ../nothing-at-all
	request GET "/api/files/$FJOB/nope"
	expect "files: missing" "$CODE" 404
	jqcheck "files: missing wording" ".detail == \"File 'nope' does not exist for job '$FJOB'\""
	request GET "/api/files/$FJOB/sub"
	expect "files: a folder is not a file" "$CODE" 404
	request GET "/api/files/0c8e0000-0000-4000-8000-00000000dead/a.txt"
	expect "files: a job without a folder: 404" "$CODE" 404
	request GET /api/files/0c8e0000-0000-4000-8000-00000000dead
	jqcheck "files: a job without a folder: []" '.files == []'
	for name in 'a%20b' 'a;b' 'a%00b' '%C3%A9' 'a%5Cb'; do
		request GET "/api/files/$FJOB/$name"
		expect "files: unsafe name $name: 422" "$CODE" 422
		jqcheck "files: unsafe name $name: path filename" '.detail[0].type == "value_error" and .detail[0].loc == ["path","filename"]'
	done
	for name in not-a-uuid .. "$FJOB"x 0c8e0000-0000-4000-8000-00000000f11 %2e%2e; do
		request GET "/api/files/$name" --path-as-is
		expect "files: job id $name: 422" "$CODE" 422
		jqcheck "files: job id $name: uuid_parsing" '.detail[0].type == "uuid_parsing" and .detail[0].loc == ["path","job_id"]'
		request GET "/api/files/$name/a.txt" --path-as-is
		expect "files: job id $name, a file: 422" "$CODE" 422
		request DELETE "/api/files/$name/delete" --path-as-is
		expect "files: job id $name, delete: 422" "$CODE" 422
	done
	request POST "/api/files/$FJOB"
	expect "files: POST on the list: 405" "$CODE" 405
	expect "files: Allow: GET, HEAD" "$(allow_of)" "GET, HEAD"
	request DELETE "/api/files/$FJOB/a.txt"
	expect "files: DELETE on a file: 405" "$CODE" 405
	request DELETE "/api/files/$FJOB/delete"
	expect "files: delete" "$CODE" 204
	check "files: 204 has no body" [ ! -s "$TMP/body" ]
	check "files: the job's folder is gone" [ ! -e "$dir" ]
	check "files: the link targets outside survive" [ -f "$out/secret" ]
	check "files: the outside folder survives" [ "$(ls "$out")" = secret ]
	request DELETE "/api/files/$FJOB/delete"
	expect "files: delete again: 204" "$CODE" 204
	# A job folder that is a link out of the root: no folder, and deleting removes only the link.
	ln -sfn "$out" "$FILES/$FJOB"
	request GET "/api/files/$FJOB"
	jqcheck "files: a job folder that is a link lists nothing" '.files == []'
	request GET "/api/files/$FJOB/secret"
	expect "files: nor serves through it" "$CODE" 404
	request DELETE "/api/files/$FJOB/delete"
	expect "files: delete a linked job folder" "$CODE" 204
	check "files: the link is gone, its target stays" bash -c "[ ! -L '$FILES/$FJOB' ] && [ -f '$out/secret' ]"
}

# A file of a few GB is streamed: the serving lso's peak RSS stays small.
test_files_big() {
	local dir="$FILES/$FJOB" size rss
	mkdir -p "$dir"
	truncate -s 3G "$dir/big.bin"
	printf 'end' | dd of="$dir/big.bin" bs=1 seek=$((3 * 1024 * 1024 * 1024 - 3)) conv=notrunc status=none
	# The body's last bytes, then curl's count of what it received.
	size=$(curl -sS --max-time 120 -w '%{size_download}' "http://127.0.0.1:$PORT/api/files/$FJOB/big.bin" \
		2>"$TMP/curl.err" | tail -c 40 | tr -d '\0')
	expect "big file: every byte sent, the last ones right" "$size" "end$((3 * 1024 * 1024 * 1024))"
	wait_for 5 test -s "$TMP/files-rss"
	rss=$(tail -n 1 "$TMP/files-rss")
	check "big file: 3 GiB sent with a peak RSS under 64 MiB (was $rss KiB)" [ "${rss:-999999}" -lt 65536 ]
	rm -f "$dir/big.bin"
}

suite_core() {
	test_routes
	test_sync_run
	test_validation
	test_resolution
	test_http
	test_timeouts
}

common=(EXECUTABLES_ROOT_DIR="$PROGRAMS" EXECUTABLE_TIMEOUT_SEC=2 LSO_STATE_DIR="$TMP/state")

# TEST_ONLY="async playbooks" runs only those sections (for development).
want() { [ -z "${TEST_ONLY:-}" ] || [[ " $TEST_ONLY " == *" $1 "* ]]; }

if want core; then
	echo "== inetd handover (stdin/stdout)"
	start_server inetd inetd "${common[@]}"
	suite_core
	check "request log line (inetd)" test_log inetd

	echo "== systemd handover (fd 3)"
	start_server fd3 fd3 "${common[@]}"
	suite_core
	check "request log line (fd 3)" test_log fd3

	echo "== burst mode (a listening socket as fd 3)"
	start_server burst burst "${common[@]}"
	suite_core
	check "request log line (burst)" test_log burst
fi

if want burst; then
	echo "== burst mode: bounds, idle exit, SIGTERM, descriptors, zombies"
	. "$TOP/tests/burst.sh"
	suite_burst
fi

if want files; then
	echo "== a job's files"
	FILES="$TMP/files"
	mkdir -p "$FILES"
	start_server files inetd "${common[@]}" JOB_FILES_ROOT_DIR="$FILES"
	test_files
	check "request log line names the file" grep -qE '^GET /api/files/[0-9a-f-]{36}/a.txt 200 job=[0-9a-f-]{36} program="a.txt"' "$TMP/files.log"
	# The peak RSS of the lso sending it, as /usr/bin/time measures it.
	WRAP=(/usr/bin/time -f %M -o "$TMP/files-rss")
	start_server files-big inetd "${common[@]}" JOB_FILES_ROOT_DIR="$FILES" LSO_READ_TIMEOUT_SEC=60
	WRAP=()
	test_files_big
	start_server files-none fd3 "${common[@]}"
	request GET "/api/files/$FJOB"
	jqcheck "no JOB_FILES_ROOT_DIR: nothing listed" '.files == []'
	request GET "/api/files/$FJOB/a.txt"
	expect "no JOB_FILES_ROOT_DIR: 404" "$CODE" 404
	request DELETE "/api/files/$FJOB/delete"
	expect "no JOB_FILES_ROOT_DIR: delete 204" "$CODE" 204
fi

if want upstream; then
	echo "== upstream 5.x settings, accepted and ignored"
	start_server upstream inetd "${common[@]}" INVENTORY_VALIDATION_TIMEOUT_SEC=not-a-number \
		EXECUTOR=celery TESTING=maybe CELERY_BROKER_URL=redis://nowhere:1/0 \
		CELERY_RESULT_BACKEND=redis://nowhere:1/1 WORKER_QUEUE_NAME=q LOGGING_CONFIG=/nonexistent.yaml
	sync echo-args '["upstream settings"]'
	expect "upstream settings: a run works" "$CODE" 201
	jqcheck "upstream settings: its output" '.result.output == "upstream settings\n"'
	request GET /api/version/
	expect "GET /api/version/ (trailing slash)" "$CODE" 200
	jqcheck "GET /api/version/ answers like /api/version" '.api == "2.0" and (.module | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'
	request POST /api/version/
	expect "POST /api/version/: 405" "$CODE" 405
fi

# suite_async MODE QUEUE-MODE [SUFFIX]: the async sections, with the servers in
# those modes; burst servers are stopped (SIGTERM) before the leftovers check.
suite_async() {
	local mode=$1 queue_mode=$2 suffix=${3:-} async_pid queue_pid
	STATE="$TMP/async-state$suffix"
	SERVER=async$suffix
	start_server "async$suffix" "$mode" "${common[@]}" LSO_STATE_DIR="$STATE" EXECUTABLE_TIMEOUT_SEC=3 REQUEST_TIMEOUT_SEC=1
	async_pid=$SERVER_PID
	test_async_run
	test_async_delivery
	test_async_jobs_api
	test_async_cancel
	test_async_lost
	STATE="$TMP/queue-state$suffix"
	SERVER=queue$suffix
	start_server "queue$suffix" "$queue_mode" "${common[@]}" LSO_STATE_DIR="$STATE" MAX_THREAD_POOL_WORKERS=2 EXECUTABLE_TIMEOUT_SEC=10
	queue_pid=$SERVER_PID
	test_async_queue
	[ "$queue_mode" != burst ] || stop_burst "$queue_pid" "queue$suffix"
	test_async_leftovers
	STATE="$TMP/async-state$suffix"
	[ "$mode" != burst ] || stop_burst "$async_pid" "async$suffix"
	test_async_leftovers
}

if want async; then
	echo "== async jobs"
	suite_async inetd fd3
	echo "== async jobs, burst mode"
	suite_async burst burst -burst
fi

if want playbooks; then
	echo "== playbooks"
	suite_playbooks
fi

if want attack; then
	echo "== attacks and hostile programs"
	. "$TOP/tests/attack.sh"
	suite_attack
fi

if want fulldisk; then
	echo "== a full state directory: a result never contradicted"
	. "$TOP/tests/attack.sh"
	suite_attack_full_disk
fi

if want bounds; then
	echo "== bounded cost per request: answers, records, memory, the queue"
	. "$TOP/tests/attack.sh"
	suite_attack_bounds
fi

if want templating; then
	echo "== client data never templated by Ansible"
	if python3 "$TOP/tests/yaml-roundtrip.py" "$TOP/tests/yaml-tool" >"$TMP/yaml-roundtrip.out" 2>&1; then pass; else
		fail "tests/yaml-roundtrip.py: $(grep -v '^[0-9]* passed' "$TMP/yaml-roundtrip.out" | head -n 20)"; fi
	echo "   tests/yaml-roundtrip.py: $(tail -n 1 "$TMP/yaml-roundtrip.out")"
	. "$TOP/tests/attack.sh"
	suite_attack_templating
fi

if want settle; then
	echo "== settle: dead runners, cancels at once"
	. "$TOP/tests/attack.sh"
	suite_attack_settle
fi

if want limits; then
	echo "== limits"
	start_server limits inetd "${common[@]}" LSO_MAX_BODY_BYTES=1000 LSO_MAX_OUTPUT_BYTES=1000 LSO_READ_TIMEOUT_SEC=1
	test_limits

	echo "== no root configured"
	start_server noroot fd3 PATH=/usr/bin:/bin
	test_no_root
fi

if want openapi; then
	echo "== OpenAPI document (tests/openapi.sh)"
	start_server openapi fd3 "${common[@]}" LSO_STATE_DIR="$TMP/openapi-state" \
		JOB_FILES_ROOT_DIR="$TMP/openapi-files"
	if OPENAPI_FILES_ROOT="$TMP/openapi-files" "$TOP/tests/openapi.sh" "$PORT" "$LSO" >"$TMP/openapi.out" 2>&1; then pass; else
		fail "tests/openapi.sh: $(grep '^FAIL' "$TMP/openapi.out" | head -n 20)"; fi
	grep '^SKIP' "$TMP/openapi.out"
	echo "   tests/openapi.sh: $(tail -n 1 "$TMP/openapi.out")"
fi

if want docs; then
	echo "== documentation pages in headless Chromium (tests/docs.sh)"
	if "$TOP/tests/docs.sh" "$LSO" >"$TMP/docs.out" 2>&1; then pass; else
		fail "tests/docs.sh: $(grep '^FAIL' "$TMP/docs.out" | head -n 20)"; fi
	grep '^SKIP' "$TMP/docs.out"
	echo "   tests/docs.sh: $(tail -n 1 "$TMP/docs.out")"
fi

if want runuser; then
	echo "== LSO_RUN_USER: programs and playbooks under a user of their own"
	. "$TOP/tests/runuser.sh"
	suite_runuser
fi

if want units; then
	echo "== units"
	test_units
fi

echo "== server logs"
# Every lso exited cleanly, and the sanitizers (LSO_SAN build) found nothing.
check "no sanitizer reports" bash -c "! grep -hE 'Sanitizer|runtime error' $TMP/*.log"
check "every lso exited 0" bash -c "! cat $TMP/*.log | grep -E 'died with (code [1-9]|signal)' | grep -v 'code 78'"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
