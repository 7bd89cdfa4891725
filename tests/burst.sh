# tests/burst.sh: burst mode's own behaviour (lso handed a listening socket).
#
# Sourced by test.sh, after its helpers (check, expect, jqcheck, request,
# execute, sync, start_server, stop_burst, gone, wait_for, ...) and its
# `common` array: this file only defines functions. Entry point: suite_burst.
# Every server it starts is named burst-*; its files live in $TMP/burst-*.
# No check here measures time: waits are bounds on what must happen, and
# "still there" is only checked while something certainly holds it.

# burst_children PID: the live children of a burst lso (its connection children).
burst_children() {
	local c
	for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
		[ "$(awk '{print $3}' "/proc/$c/stat" 2>/dev/null)" = Z ] || echo "$c"
	done
}
burst_zombies() {
	local c
	for c in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
		[ "$(awk '{print $3}' "/proc/$c/stat" 2>/dev/null)" != Z ] || echo "$c"
	done
}
# socket_inodes PID: the inodes of the sockets the process holds, one a line.
socket_inodes() { ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p'; }
# serving PID N: at least N children of the burst lso hold a connection (a
# socket that is not the listening one: not just the spare).
serving() {
	local c listen n=0
	listen=$(socket_inodes "$1")
	for c in $(burst_children "$1"); do
		socket_inodes "$c" | grep -qvx "$listen" && n=$((n + 1))
	done
	[ "$n" -ge "$2" ]
}

# burst_post NAME ARGS-JSON OUT: a sync run with curl, for use in the background.
burst_post() {
	curl -s -o "$3" -w '%{http_code}' --max-time 30 -H 'Content-Type: application/json' \
		--data-binary "{\"executable_name\":\"$1\",\"args\":$2,\"is_async\":false}" \
		"http://127.0.0.1:$PORT/api/execute/" >"$3.code" 2>/dev/null
}

# At most LSO_MAX_CONNECTIONS served at once; the others wait in the
# backlog and are served after, none refused.
burst_bound() {
	local probe="$TMP/burst-bound.probe" max i ok=0 clients=()
	start_server burst-bound burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-state" \
		LSO_MAX_CONNECTIONS=2 EXECUTABLE_TIMEOUT_SEC=20
	for i in 1 2 3 4 5; do
		burst_post concurrency-probe "[\"$probe\",\"1\",\"$i\"]" "$TMP/burst-bound.$i" &
		clients+=($!)
	done
	wait "${clients[@]}"
	for i in 1 2 3 4 5; do
		[ "$(cat "$TMP/burst-bound.$i.code" 2>/dev/null)" = 201 ] && ok=$((ok + 1))
	done
	expect "LSO_MAX_CONNECTIONS=2: all 5 connections answered 201, none refused" "$ok" 5
	max=$(sort -k2,2n "$probe" | awk '/^start/ {n++} /^end/ {n--} n > m {m = n} END {print m}')
	expect "LSO_MAX_CONNECTIONS=2: at most 2 requests served at once" "$max" 2
	stop_burst "$SERVER_PID" burst-bound
}

# After LSO_IDLE_EXIT_SEC without a connection in flight: exit 0, nothing left.
burst_idle() {
	local pid rc client
	start_server burst-idle burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-idle-state" \
		LSO_IDLE_EXIT_SEC=1 EXECUTABLE_TIMEOUT_SEC=10
	pid=$SERVER_PID
	request GET /api/version
	expect "burst-idle: answered" "$CODE" 200
	# A 3 s run holds the burst (no idle time starts while it is in flight).
	burst_post sleep-echo '["3"]' "$TMP/burst-idle.run" &
	client=$!
	wait_for 5 serving "$pid" 1
	sleep 2
	check "LSO_IDLE_EXIT_SEC=1: still serving 2 s into a 3 s request" kill -0 "$pid"
	wait "$client"
	expect "... which is answered" "$(cat "$TMP/burst-idle.run.code")" 201
	if wait_for 10 eval "! kill -0 $pid 2>/dev/null || gone $pid"; then pass; else
		fail "then it exits, idle"; kill -KILL "$pid"; fi
	wait "$pid"
	rc=$?
	expect "idle exit status 0" "$rc" 0
	check "nothing of it left" no_process_with "LSO_STATE_DIR=$TMP/burst-idle-state"
	check "LSO_IDLE_EXIT_SEC=0.25 is taken" bash -c \
		"LSO_IDLE_EXIT_SEC=0.25 LISTEN_FDS=0 '$LSO' </dev/null >/dev/null 2>&1; [ \$? = 0 ]"
	check "LSO_IDLE_EXIT_SEC=1.2345 (past the millisecond) is refused" bash -c \
		"printf 'GET /api/version HTTP/1.0\r\n\r\n' | LSO_IDLE_EXIT_SEC=1.2345 '$LSO' | grep -q '^HTTP/1.1 500'"
	check "LSO_IDLE_EXIT_SEC=-1 is refused" bash -c \
		"printf 'GET /api/version HTTP/1.0\r\n\r\n' | LSO_IDLE_EXIT_SEC=-1 '$LSO' | grep -q '^HTTP/1.1 500'"
}

# A steady stream of requests across many idle exits, lso started again each
# time by a launcher that keeps the socket (as systemd does): none lost.
burst_race() {
	local n=150 ok=0 i code activations launcher
	rm -f "$TMP/burst-race.port"
	env PATH=/usr/local/bin:/usr/bin:/bin EXECUTABLES_ROOT_DIR="$PROGRAMS" \
		LSO_STATE_DIR="$TMP/burst-race-state" LSO_IDLE_EXIT_SEC=0.05 \
		python3 "$TOP/tests/reactivate.py" "$TMP/burst-race.port" "$TMP/burst-race.activations" \
		"$LSO" 2>"$TMP/burst-race.log" &
	launcher=$!
	pids+=($!)
	wait_for 10 test -s "$TMP/burst-race.port"
	PORT=$(cat "$TMP/burst-race.port")
	for i in $(seq "$n"); do
		if [ $((i % 3)) = 0 ]; then
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H 'Content-Type: application/json' \
				--data-binary '{"executable_name":"echo-args","args":["r"],"is_async":false}' \
				"http://127.0.0.1:$PORT/api/execute/")
			[ "$code" = 201 ] && ok=$((ok + 1))
		else
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$PORT/api/version")
			[ "$code" = 200 ] && ok=$((ok + 1))
		fi
		# Gaps around the idle time: requests land before, during and after exits.
		sleep "0.0$((RANDOM % 10))"
	done
	expect "exit race: $n requests across idle exits, all answered" "$ok" "$n"
	activations=$(wc -l <"$TMP/burst-race.activations" 2>/dev/null || echo 0)
	check "... across many idle exits ($activations activations)" [ "$activations" -ge 10 ]
	check "... each exit status 0" bash -c "! grep -v '^exit 0$' '$TMP/burst-race.activations'"
	expect "... one log line per request" "$(grep -cE '^(GET|POST) /api/' "$TMP/burst-race.log")" "$n"
	kill -TERM "$launcher"
	wait "$launcher"
}

# SIGTERM: stop accepting, finish what is in flight, exit 0.
burst_sigterm() {
	local pid rc client late
	start_server burst-term burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-term-state" EXECUTABLE_TIMEOUT_SEC=10
	pid=$SERVER_PID
	request GET /api/version
	burst_post sleep-echo '["2"]' "$TMP/burst-term.run" &
	client=$!
	wait_for 5 serving "$pid" 1
	kill -TERM "$pid"
	curl -s -o /dev/null -w '%{http_code}' --max-time 15 "http://127.0.0.1:$PORT/api/version" \
		>"$TMP/burst-term.late" 2>/dev/null &
	late=$!
	wait_for 30 eval "! kill -0 $pid 2>/dev/null || gone $pid" || kill -KILL "$pid"
	wait "$pid"
	rc=$?
	expect "SIGTERM: exit status 0" "$rc" 0
	# The child logs its request before it exits, and lso exits after its children.
	check "SIGTERM: lso exits only once the request in flight is done" \
		grep -q '^POST /api/execute/ 201 .*program="sleep-echo"' "$TMP/burst-term.log"
	wait "$client" "$late"
	expect "SIGTERM: the request in flight is answered" "$(cat "$TMP/burst-term.run.code")" 201
	check "... with its output" grep -q '"output":"slept 2\\n"' "$TMP/burst-term.run"
	check "SIGTERM: a connection after it is not accepted" \
		bash -c "[ \"\$(cat '$TMP/burst-term.late')\" != 200 ]"
}

# No connection's descriptor in another's child or in a program. The burst
# process holds the listening socket; a spare (a child forked before its
# connection) holds only that; a child that took a connection holds only it.
burst_fds() {
	local pid c listen conns=() bad=0 mine clients=()
	start_server burst-fds burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-fds-state" EXECUTABLE_TIMEOUT_SEC=10
	pid=$SERVER_PID
	request GET /api/version
	burst_post sleep-echo '["3"]' "$TMP/burst-fds.1" &
	clients+=($!)
	burst_post sleep-echo '["3"]' "$TMP/burst-fds.2" &
	clients+=($!)
	wait_for 5 serving "$pid" 2
	listen=$(socket_inodes "$pid")
	expect "the burst process holds one socket, the listening one" "$(wc -w <<<"$listen")" 1
	for c in $(burst_children "$pid"); do
		mine=$(socket_inodes "$c")
		if [ "$mine" = "$listen" ]; then continue; fi  # the spare
		if [ "$(wc -w <<<"$mine")" != 1 ]; then bad=$((bad + 1)); else conns+=("$mine"); fi
	done
	expect "two children serve a connection" "${#conns[@]}" 2
	expect "... each holds one socket, its own" "$bad" 0
	check "... not the same one" [ "${conns[0]:-x}" != "${conns[1]:-x}" ]
	sync show-fds
	# 0-2, and fd 4: the script itself, which its interpreter reads as /dev/fd/4.
	jqcheck "a program run beside two open connections inherits only 0-2 (and its own file)" \
		'[.result.output | split("\n")[] | select(length > 0) | split(" ")[0]] == ["0","1","2","4"] and
		(.result.output | test("\n4 /.*/show-fds\n$"))'
	wait "${clients[@]}"
	stop_burst "$pid" burst-fds
}

# 5,000 requests: every one answered, every child reaped, one log line each.
burst_many() {
	local pid out
	cc -O2 -pthread -o "$TMP/load" "$TOP/bench/load.c" || { fail "build bench/load.c"; return; }
	printf 'GET /api/version HTTP/1.1\r\nHost: lso\r\nConnection: close\r\n\r\n' >"$TMP/burst-many.req"
	start_server burst-many burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-many-state" LSO_IDLE_EXIT_SEC=5
	pid=$SERVER_PID
	out=$("$TMP/load" -t 30 127.0.0.1 "$PORT" "$TMP/burst-many.req" 5000 16 2>&1)
	check "5000 requests, all answered ($out)" grep -q 'count=5000 failures=0 ' <<<"$out"
	check "no zombies after 5000 requests" wait_for 5 eval "[ -z \"\$(burst_zombies $pid)\" ]"
	check "no child serving after 5000 requests" wait_for 5 eval "! serving $pid 1"
	expect "... one child left, the spare waiting for the next connection" "$(burst_children "$pid" | wc -l)" 1
	expect "one log line per request" "$(grep -c '^GET /api/version 200 ' "$TMP/burst-many.log")" 5000
	# Every child accounted for: it still ends once idle.
	if wait_for 30 eval "! kill -0 $pid 2>/dev/null || gone $pid"; then pass; else
		fail "after 5000 requests it still exits once idle"; kill -KILL "$pid"; fi
	wait "$pid"
	expect "... with status 0" "$?" 0
}

# Auth switched on without a key: a burst lso refuses to start (exit 78,
# the log names the setting) and answers nothing, as upstream refuses to start.
burst_auth_refused() {
	local pid rc
	start_server burst-noauth burst "${common[@]}" LSO_STATE_DIR="$TMP/burst-noauth-state" \
		LSO_OAUTH2_ACTIVE=true
	pid=$SERVER_PID
	request GET /api/version
	expect "burst, auth on without a key: no HTTP answer at all" "$CODE" 000
	if wait_for 10 eval "! kill -0 $pid 2>/dev/null || gone $pid"; then
		wait "$pid"
		rc=$?
		expect "burst, auth on without a key: lso exits 78 (EX_CONFIG)" "$rc" 78
	else
		fail "burst, auth on without a key: lso exits" "still running 10 s after a connection"
		kill -KILL "$pid"
	fi
	check "burst, auth on without a key: the log names LSO_OAUTH2_ACTIVE" \
		grep -q "LSO_OAUTH2_ACTIVE is on but there is no API key" "$TMP/burst-noauth.log"
}

suite_burst() {
	burst_auth_refused
	burst_bound
	burst_idle
	burst_race
	burst_sigterm
	burst_fds
	burst_many
}
