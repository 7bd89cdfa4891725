#!/usr/bin/env bash
# tests/launchers.sh [LSO]: lso (default ./lso) under the launchers of
# examples/launchers/, each started from its example file with only the
# paths, the port and the limits swapped for test values:
#   tcpserver (ucspi-tcp) with its rules compiled by tcprules, -c 2;
#   xinetd in the foreground (-dontfork, a private pidfile), instances = 3,
#   per_source = 2.
# Each serves /api/version, a sync run and an async job whose callback
# arrives (tests/receiver.py); then the limits: slow sync runs
# (tests/programs/sleep-echo) hold the slots while a further connection is
# refused, closed without an answer, or left unanswered. The busybox examples
# are not run: Debian's busybox has neither tcpsvd nor inetd.
# Installs ucspi-tcp and xinetd with apt-get when missing (root). Ends with
# "N passed, M failed"; exits non-zero on any failure. About 10 s.
# KEEP_TMP=1 keeps the launchers' configurations and logs.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
LSO=$(realpath "${1:-./lso}")
PROGRAMS=$TOP/tests/programs
EX=$TOP/examples/launchers
HOLD=3                          # seconds a slow run holds its slot
TMP=$(mktemp -d /tmp/lso-launchers.XXXXXX)
passed=0 failed=0 skipped=0
pids=()

# Our launchers, then whatever they started that still runs (the lso
# instances and detached jobs carry $TMP in their environment).
cleanup() {
	local pid p
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	for _ in $(seq 50); do
		p=$(grep -lsF "LSO_STATE_DIR=$TMP/" /proc/[0-9]*/environ 2>/dev/null | cut -d / -f 3)
		[ -z "$p" ] && break
		sleep 0.1
	done
	for pid in $p; do kill -KILL "$pid" 2>/dev/null; done
	[ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. tests/lib.sh

# request PORT METHOD PATH [curl args...]: sets CODE and RC (curl's exit
# status) and SECS; the body is in $TMP/body.
request() {
	local port=$1 method=$2 path=$3 out
	shift 3
	out=$(curl -sS -X "$method" -o "$TMP/body" -w '%{http_code} %{time_total}' --max-time 20 \
		"$@" "http://127.0.0.1:$port$path" 2>"$TMP/curl.err")
	RC=$?
	CODE=${out%% *}
	SECS=${out##* }
}
json() { # PORT JSON [curl args...]: POST /api/execute/
	local port=$1 body=$2
	shift 2
	request "$port" POST /api/execute/ -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# substitute FILE OUT 'FROM|TO'...: sed the example into OUT; each FROM must
# occur, so an example that changes shape fails here instead of going untested.
substitute() {
	local file=$1 out=$2 pair script=()
	shift 2
	for pair in "$@"; do
		if ! grep -qF -- "${pair%%|*}" "$file"; then
			fail "${file#"$TOP"/} still holds '${pair%%|*}'"
			return 1
		fi
		script+=(-e "s|${pair%%|*}|${pair#*|}|")
	done
	sed "${script[@]}" "$file" >"$out"
}

wait_listening() { # PORT
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/api/version" && return 0
		sleep 0.05
	done
	return 1
}

# hold PORT N [curl args...]: N slow sync runs in the background, each holding
# a connection for HOLD seconds; their "CODE RC" lines go to $TMP/held.
hold() {
	local port=$1 n=$2
	shift 2
	: >"$TMP/held"
	for _ in $(seq "$n"); do
		(
			out=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "$@" \
				-H 'Content-Type: application/json' \
				--data-binary "{\"executable_name\":\"sleep-echo\",\"args\":[\"$HOLD\"],\"is_async\":false}" \
				"http://127.0.0.1:$port/api/execute/")
			echo "$out $?" >>"$TMP/held"
		) &
	done
	sleep 0.5   # the launcher has started them
}
held_served() { # N: all N held runs answered 201
	wait_jobs
	[ "$(grep -c '^201 0$' "$TMP/held")" = "$1" ]
}
wait_jobs() { for _ in $(seq 100); do [ -z "$(jobs -rp | grep -vxF -f <(printf '%s\n' "${pids[@]}"))" ] && return; sleep 0.1; done; }

# The three requests every launcher must serve.
serve_checks() { # NAME PORT
	local name=$1 port=$2 job
	request "$port" GET /api/version
	expect "$name: GET /api/version" "$CODE" 200
	jqcheck "$name: version body" '.api == "2.0" and (.module | test("^[0-9]+\\.[0-9]+\\.[0-9]+$"))'
	json "$port" '{"executable_name":"echo-args","args":["a","b c"],"is_async":false}'
	expect "$name: sync run" "$CODE" 201
	jqcheck "$name: sync run output" '.result == {"output":"a\nb c\n","return_code":0,"status":"successful"}'
	json "$port" "{\"executable_name\":\"echo-args\",\"args\":[\"via $name\"],\"callback\":\"$RECEIVER/ok/$name\"}"
	expect "$name: async run accepted" "$CODE" 201
	job=$(jq -r .job_id "$TMP/body" 2>/dev/null)
	for _ in $(seq 100); do
		grep -qF "\"job_id\": \"$job\"" "$TMP/callbacks.log" 2>/dev/null && break
		sleep 0.05
	done
	if jq -e --arg j "$job" --arg p "/ok/$name" 'select(.body.job_id == $j) |
		.path == $p and .body.result == {"output":"via \($p | ltrimstr("/ok/"))\n","return_code":0,"status":"successful"}' \
		"$TMP/callbacks.log" 2>/dev/null | grep -q true; then
		pass "$name: async job's callback arrived"
	else
		fail "$name: async job's callback arrived" "job $job; log: $(tail -c 300 "$TMP/callbacks.log" 2>/dev/null)"
	fi
	request "$port" GET "/api/jobs/$job"
	jqcheck "$name: job record successful" '.status == "successful" and .callback.delivered == true'
}

apt_install ucspi-tcp xinetd || echo "note: could not install ucspi-tcp/xinetd" >&2
[ -x "$LSO" ] || { echo "tests/launchers.sh: no lso at $LSO (make first)" >&2; exit 2; }

# The callback receiver.
python3 "$TOP/tests/receiver.py" "$TMP/rport" "$TMP/callbacks.log" >"$TMP/receiver.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$TMP/rport" ] && break; sleep 0.05; done
RECEIVER="http://127.0.0.1:$(cat "$TMP/rport")"

# --- tcpserver ---

echo "== tcpserver (ucspi-tcp)"
if command -v tcpserver >/dev/null && command -v tcprules >/dev/null; then
	TPORT=$(free_port)
	# The rules as shipped, with the commented example source made live on 127.0.0.3.
	substitute "$EX/tcpserver/rules" "$TMP/tcp.rules" '#192.0.2.10:|127.0.0.3:' &&
		tcprules "$TMP/tcp.cdb" "$TMP/tcp.tmp" <"$TMP/tcp.rules" &&
		pass "tcprules compiles examples/launchers/tcpserver/rules"
	substitute "$EX/tcpserver/run" "$TMP/tcp-run" \
		"/usr/local/bin/lso|$LSO" "/etc/lso/tcp.cdb|$TMP/tcp.cdb" \
		"EXECUTABLES_ROOT_DIR=/srv/lso|EXECUTABLES_ROOT_DIR=$PROGRAMS" \
		"LSO_STATE_DIR=/var/lib/lso|LSO_STATE_DIR=$TMP/tcp-state" \
		"-c 64|-c 2" " 44444 | $TPORT "
	sh "$TMP/tcp-run" >"$TMP/tcpserver.log" 2>&1 &
	pids+=($!)
	if wait_listening "$TPORT"; then
		pass "tcpserver listening (examples/launchers/tcpserver/run)"
		serve_checks tcpserver "$TPORT"

		# -c 2: two slow runs hold both slots; a third connection is not
		# accepted (it waits in the backlog), so it gets no answer meanwhile.
		hold "$TPORT" 2
		request "$TPORT" GET /api/version --max-time 1.5
		if [ "$CODE" = 000 ] && [ "$RC" = 28 ]; then
			pass "tcpserver -c 2: a third connection gets no answer while 2 slow runs hold the slots"
		else
			fail "tcpserver -c 2: a third connection waits" "got $CODE (curl $RC) in $SECS s"
		fi
		if held_served 2; then pass "tcpserver: the 2 slow runs answered 201"
		else fail "tcpserver: the 2 slow runs answered 201" "$(tr '\n' ';' <"$TMP/held")"; fi
		request "$TPORT" GET /api/version
		expect "tcpserver: served again once the slots are free" "$CODE" 200

		# The rules: 127.0.0.2 is denied, closed before lso starts.
		request "$TPORT" GET /api/version --interface 127.0.0.2
		if [ "$CODE" = 000 ] && { [ "$RC" = 52 ] || [ "$RC" = 56 ] || [ "$RC" = 7 ]; }; then
			pass "tcpserver rules: 127.0.0.2 (:deny) closed without an answer"
		else
			fail "tcpserver rules: 127.0.0.2 denied" "got $CODE (curl $RC)"
		fi
		# A per-source limit from the rules: 127.0.0.3 may send at most 4096 bytes.
		big=$(printf '%05000d' 0)
		json "$TPORT" "{\"executable_name\":\"echo-args\",\"args\":[\"$big\"],\"is_async\":false}" \
			--interface 127.0.0.3
		expect "tcpserver rules: 127.0.0.3's LSO_MAX_BODY_BYTES=4096 refuses a 5 KB body" "$CODE" 413
		json "$TPORT" "{\"executable_name\":\"echo-args\",\"args\":[\"$big\"],\"is_async\":false}"
		expect "tcpserver rules: 127.0.0.1 may send it" "$CODE" 201
	else
		fail "tcpserver listening" "$(tail -n 5 "$TMP/tcpserver.log")"
	fi
else
	skip "tcpserver" "ucspi-tcp is not installed"
fi

# --- xinetd ---

echo "== xinetd"
if command -v xinetd >/dev/null; then
	XPORT=$(free_port)
	substitute "$EX/xinetd/lso" "$TMP/xinetd-lso" \
		"= 44444|= $XPORT" "= /usr/local/bin/lso|= $LSO" \
		"EXECUTABLES_ROOT_DIR=/srv/lso|EXECUTABLES_ROOT_DIR=$PROGRAMS" \
		"LSO_STATE_DIR=/var/lib/lso|LSO_STATE_DIR=$TMP/xinetd-state" \
		"instances      = 64|instances      = 3" "per_source     = 32|per_source     = 2"
	printf 'defaults\n{\n    log_type = FILE %s\n}\n' "$TMP/xinetd-services.log" |
		cat - "$TMP/xinetd-lso" >"$TMP/xinetd.conf"
	xinetd -dontfork -f "$TMP/xinetd.conf" -pidfile "$TMP/xinetd.pid" \
		-filelog "$TMP/xinetd.log" >"$TMP/xinetd.out" 2>&1 &
	pids+=($!)
	if wait_listening "$XPORT"; then
		pass "xinetd listening (examples/launchers/xinetd/lso)"
		serve_checks xinetd "$XPORT"

		# per_source = 2: two slow runs from 127.0.0.1; a third from there is
		# closed at once, one from 127.0.0.2 is served.
		hold "$XPORT" 2
		request "$XPORT" GET /api/version --max-time 2
		if [ "$CODE" = 000 ] && [ "$RC" != 28 ]; then
			pass "xinetd per_source = 2: a third connection from 127.0.0.1 closed without an answer (curl $RC)"
		else
			fail "xinetd per_source = 2: a third connection from 127.0.0.1 refused" "got $CODE (curl $RC) in $SECS s"
		fi
		request "$XPORT" GET /api/version --interface 127.0.0.2
		expect "xinetd per_source: 127.0.0.2 still served" "$CODE" 200

		# instances = 3: a third slow run from 127.0.0.2; then nobody is served.
		curl -s -o /dev/null --max-time 20 --interface 127.0.0.2 -H 'Content-Type: application/json' \
			--data-binary "{\"executable_name\":\"sleep-echo\",\"args\":[\"$((HOLD - 1))\"],\"is_async\":false}" \
			"http://127.0.0.1:$XPORT/api/execute/" &
		sleep 0.5
		request "$XPORT" GET /api/version --interface 127.0.0.3 --max-time 1.5
		if [ "$CODE" = 000 ]; then
			pass "xinetd instances = 3: a fourth connection (127.0.0.3) gets no answer (curl $RC)"
		else
			fail "xinetd instances = 3: a fourth connection refused" "got $CODE (curl $RC) in $SECS s"
		fi
		if held_served 2; then pass "xinetd: the slow runs answered 201"
		else fail "xinetd: the slow runs answered 201" "$(tr '\n' ';' <"$TMP/held")"; fi
		for _ in $(seq 40); do
			request "$XPORT" GET /api/version --max-time 2
			[ "$CODE" = 200 ] && break
			sleep 0.1
		done
		expect "xinetd: served again once the runs ended" "$CODE" 200
		for why in per_source_limit service_limit; do
			if grep -q "FAIL: lso $why from=127.0.0" "$TMP/xinetd-services.log" 2>/dev/null; then
				pass "xinetd logged the refusal: $why"
			else
				fail "xinetd logged the refusal: $why" "$(tail -n 5 "$TMP/xinetd-services.log" 2>/dev/null)"
			fi
		done
	else
		fail "xinetd listening" "$(tail -n 5 "$TMP/xinetd.log" "$TMP/xinetd.out" 2>/dev/null)"
	fi
else
	skip "xinetd" "xinetd is not installed"
fi

# --- the examples agree with README ---

echo "== examples and README"
readme_xinetd() { sed -n '/^service lso/,/^}/p' README.md | sed -n "s/^ *$1 *= *//p"; }
example_xinetd() { sed -n "s/^ *$1 *= *//p" "$EX/xinetd/lso"; }
for attr in port bind instances per_source socket_type wait; do
	expect "xinetd $attr: README and examples/launchers/xinetd/lso" \
		"$(example_xinetd "$attr")" "$(readme_xinetd "$attr")"
done
tcpsvd_flags() { grep -o 'tcpsvd -c [0-9]* -C [0-9]* [0-9.]* [0-9]*' "$1" | head -n 1; }
expect "busybox tcpsvd limits: README and examples/launchers/busybox/tcpsvd" \
	"$(tcpsvd_flags "$EX/busybox/tcpsvd")" "$(tcpsvd_flags README.md)"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
