#!/usr/bin/env bash
# tests/scale.sh [LSO]: three lso hosts behind HAProxy (examples/haproxy/
# haproxy.cfg), each in a network namespace of its own with its own address,
# state and files, started by systemd-socket-activate (burst mode); HAProxy in
# another namespace with a certificate made here; curl over TLS and the
# callback receiver in a third. Auth is on throughout. Shows: 300 sync and 300
# async requests spread over the three with no error and every callback once;
# new work to the host with the fewest connections; every job read and
# canceled through HAProxy; files downloaded through it; a host killed (its
# jobs 503, new work elsewhere at once) and back (its lost jobs' callbacks
# sent by lso --recover); the key required at the edge; no cleartext HTTP; an
# HAProxy reload under load. Root (ip netns). Every wait is bounded;
# namespaces and processes go on any exit.
# Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
SCALE_TOP=$(pwd)
LSO=$(realpath "${1:-./lso}")
passed=0 failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $1${2:+: $2}" >&2; }
# abort WHAT [WHY]: a step the rest needs failed: the count, and out.
abort() { fail "$1" "${2:-}"; echo "$passed passed, $failed failed"; exit 1; }
expect() { if [ "$2" = "$3" ]; then pass; else fail "$1" "expected '$3', got '$2'"; fi; }

if [ "$(id -u)" != 0 ]; then
	abort "tests/scale.sh needs root (network namespaces)"
fi
SCALE_DIR=$(mktemp -d /tmp/lso-scale.XXXXXX)
SCALE_KEY=scale-key-$RANDOM$RANDOM
. tests/scale-lib.sh
# SCALE_KEEP=1: the directory (logs, bodies, callbacks) is left for a look.
finish() {
	scale_cleanup
	[ -n "${SCALE_KEEP:-}" ] && echo "kept $SCALE_DIR" >&2 || rm -rf "$SCALE_DIR"
}
trap finish EXIT
trap 'exit 130' INT TERM

EDGE=https://$SCALE_EDGE
# c ARGS...: curl in the client namespace over TLS to the edge, checking its
# certificate against the test's CA, with the key.
c() {
	scale_in client curl -sS --max-time 60 --cacert "$SCALE_DIR/ca.pem" \
		-H "Authorization: Bearer $SCALE_KEY" "$@"
}
# status ARGS...: only the HTTP status of c ARGS.
status() { c -o /dev/null -w '%{http_code}' "$@"; }
# tag_of ID: the host that made a job, by its id's first two hex digits.
tag_of() { echo "${1:0:2}"; }
# submit BODY: POST /api/execute/ through the edge; prints the job id, or nothing.
submit() {
	c -H 'Content-Type: application/json' -d "$1" "$EDGE/api/execute/" | jq -r '.job_id // empty'
}

# --- the programs the hosts run ---
mkdir -p "$SCALE_DIR/programs"
cat >"$SCALE_DIR/programs/hello" <<'EOF'
#!/bin/sh
echo "hello from $LSO_HOST_TAG"
EOF
cat >"$SCALE_DIR/programs/sleeper" <<'EOF'
#!/bin/sh
exec sleep "${1:-60}"
EOF
# Writes two files into the job's folder, as a playbook would into job_files_dir.
cat >"$SCALE_DIR/programs/write-files" <<'EOF'
#!/bin/sh
dir=$JOB_FILES_ROOT_DIR/$LSO_JOB_ID
mkdir -p "$dir/sub" && echo "report of $LSO_JOB_ID" >"$dir/report.txt" &&
	head -c 100000 /dev/urandom >"$dir/sub/blob.bin" && echo written
EOF
chmod +x "$SCALE_DIR"/programs/*

# --- the network, the hosts, the edge, the receiver ---
scale_network 3 || abort "setup: the namespaces"
scale_cert || abort "setup: the certificate (openssl)"
for i in 1 2 3; do scale_start_host "$i" || abort "setup: host $i"; done
scale_haproxy_cfg 3 || abort "setup: haproxy.cfg for the test"
scale_start_haproxy 3 || abort "setup: HAProxy with three hosts up" "$(tail -n 5 "$SCALE_DIR/haproxy.log")"
pass
ip netns exec "$(scale_ns client)" python3 tests/receiver.py "$SCALE_DIR/receiver.port" "$SCALE_DIR/callbacks.log" \
	0 "$SCALE_CLIENT" &
disown
for _ in $(seq 100); do [ -s "$SCALE_DIR/receiver.port" ] && break; sleep 0.05; done
CALLBACK=http://$SCALE_CLIENT:$(cat "$SCALE_DIR/receiver.port")/ok

# curl_block URL METHOD OUTPUT [BODY]: one transfer of a curl config (-K),
# with everything c gives (--next starts each transfer afresh).
curl_block() {
	printf 'url = "%s"\nrequest = "%s"\noutput = "%s"\n' "$1" "$2" "$3"
	printf 'silent\nshow-error\nmax-time = 60\ncacert = "%s"\n' "$SCALE_DIR/ca.pem"
	printf 'header = "Authorization: Bearer %s"\nwrite-out = "%%{http_code}\\n"\n' "$SCALE_KEY"
	if [ -n "${4:-}" ]; then
		echo 'header = "Content-Type: application/json"'
		printf 'data = "%s"\n' "$(printf '%s' "$4" | sed 's/["\\]/\\&/g')"
	fi
}
# run_blocks NAME: the transfers of NAME.curl, 8 at once by one curl; their
# statuses in NAME.codes, one a line (in the order they ended).
run_blocks() {
	scale_in client curl --no-progress-meter --parallel --parallel-max 8 -K "$SCALE_DIR/$1.curl" >"$SCALE_DIR/$1.codes"
}
# parallel NAME N METHOD PATH [BODY]: N requests through the edge (@N@ in
# PATH and BODY: the request's number); bodies in NAME.1 .. NAME.N.
parallel() {
	local name=$1 n=$2 cfg=$SCALE_DIR/$1.curl i body=${5:-}
	: >"$cfg"
	for i in $(seq "$n"); do
		[ "$i" -gt 1 ] && echo next >>"$cfg"
		curl_block "$EDGE${4//@N@/$i}" "$3" "$SCALE_DIR/$name.$i" "${body//@N@/$i}" >>"$cfg"
	done
	run_blocks "$name"
}
# parallel_ids NAME METHOD PATH IDFILE: as parallel, a request for each id of
# IDFILE (@ID@ in PATH).
parallel_ids() {
	local name=$1 cfg=$SCALE_DIR/$1.curl i=0 id
	: >"$cfg"
	while read -r id; do
		i=$((i + 1))
		[ "$i" -gt 1 ] && echo next >>"$cfg"
		curl_block "$EDGE${3//@ID@/$id}" "$2" "$SCALE_DIR/$name.$i" >>"$cfg"
	done <"$4"
	run_blocks "$name"
}
# bodies NAME N: the N bodies, one JSON a line.
bodies() { for i in $(seq "$2"); do cat "$SCALE_DIR/$1.$i"; echo; done; }
# spread FILE: "01 N1 02 N2 03 N3", the job ids of FILE (one a line) by host.
spread() { for t in 01 02 03; do printf '%s %s ' "$t" "$(grep -c "^$t" "$1")"; done; }

echo "== 300 sync requests"
parallel sync 300 POST /api/execute/ '{"executable_name": "hello", "is_async": false}'
expect "sync: 300 answers, all 201" "$(grep -c '^201$' "$SCALE_DIR/sync.codes")" 300
bodies sync 300 | jq -r 'select(.result.return_code == 0 and (.result.output | startswith("hello from ")))
	| .job_id' >"$SCALE_DIR/sync.ids"
expect "sync: 300 results, return code 0" "$(wc -l <"$SCALE_DIR/sync.ids")" 300
# Each answer says which host ran it twice over: its id's tag and the program's output.
expect "sync: each ran where its id says" "$(bodies sync 300 |
	jq -r 'select(.job_id[0:2] != (.result.output | ltrimstr("hello from ") | rtrimstr("\n"))) | .job_id' | wc -l)" 0
sync_spread=$(spread "$SCALE_DIR/sync.ids")
echo "   sync by host: $sync_spread"
[[ $sync_spread =~ ^01\ [1-9][0-9]*\ 02\ [1-9][0-9]*\ 03\ [1-9][0-9]*\ $ ]] && pass ||
	fail "sync: all three hosts served" "$sync_spread"
expect "sync: 300 distinct ids" "$(sort -u "$SCALE_DIR/sync.ids" | wc -l)" 300

echo "== 300 async requests, their callbacks"
parallel async 300 POST /api/execute/ "{\"executable_name\": \"hello\", \"callback\": \"$CALLBACK/async\"}"
expect "async: 300 answers, all 201" "$(grep -c '^201$' "$SCALE_DIR/async.codes")" 300
bodies async 300 | jq -r 'select(.result == null) | .job_id' | sort >"$SCALE_DIR/async.ids"
expect "async: 300 ids" "$(sort -u "$SCALE_DIR/async.ids" | wc -l)" 300
async_spread=$(spread "$SCALE_DIR/async.ids")
echo "   async by host: $async_spread"
[[ $async_spread =~ ^01\ [1-9][0-9]*\ 02\ [1-9][0-9]*\ 03\ [1-9][0-9]*\ $ ]] && pass ||
	fail "async: all three hosts ran jobs" "$async_spread"
for _ in $(seq 1200); do
	[ "$(grep -c '"/ok/async"' "$SCALE_DIR/callbacks.log" 2>/dev/null)" -ge 300 ] && break
	sleep 0.1
done
async_callbacks() {
	grep '"/ok/async"' "$SCALE_DIR/callbacks.log" | jq -r 'select(.body.result.return_code == 0) | .body.job_id'
}
expect "async: the 300 jobs' callbacks, each once" "$(async_callbacks | sort | uniq -u | comm -12 - "$SCALE_DIR/async.ids" | wc -l)" 300

echo "== every job read through HAProxy, from its own host"
parallel_ids read GET /api/jobs/@ID@ "$SCALE_DIR/async.ids"
expect "read: 300 GETs, all 200" "$(grep -c '^200$' "$SCALE_DIR/read.codes")" 300
expect "read: each record its own job's, successful" "$(bodies read 300 |
	jq -r 'select(.status == "successful") | .job_id' | sort | comm -12 - "$SCALE_DIR/async.ids" | wc -l)" 300
# An id no host here made (tag 7f): some host answers 404, not HAProxy.
expect "read: an id of no host here gets lso's 404" \
	"$(c -w ' %{http_code}' "$EDGE/api/jobs/7f000000-0000-4000-8000-000000000000")" '{"detail":"Job not found."} 404'

echo "== new work to the host with the fewest connections (leastconn)"
# Two sync runs of 8 s hold a connection on two hosts; six quick requests one
# after another then all go to the third (round robin would send it two).
for i in 1 2; do
	c -o "$SCALE_DIR/held.$i" -H 'Content-Type: application/json' \
		-d '{"executable_name": "sleeper", "args": ["8"], "is_async": false}' "$EDGE/api/execute/" &
	held_pids[i]=$!
	for _ in $(seq 100); do
		[ "$(scale_show_stat | awk -F, '$1 == "lso_new" && $2 != "BACKEND" {n += $5} END {print n + 0}')" -ge "$i" ] && break
		sleep 0.1
	done
done
: >"$SCALE_DIR/least.ids"
for _ in $(seq 6); do submit '{"executable_name": "hello", "is_async": false}' >>"$SCALE_DIR/least.ids"; done
wait "${held_pids[1]}" "${held_pids[2]}"
held_tags=$(jq -r '.job_id[0:2]' "$SCALE_DIR/held.1" "$SCALE_DIR/held.2" | sort -u | tr '\n' ' ')
least_tags=$(cut -c1-2 "$SCALE_DIR/least.ids" | sort | uniq -c | awk '{print $1 "x" $2}' | tr '\n' ' ')
[[ $least_tags =~ ^6x(0[123])\ $ ]] && [[ $held_tags != *"${BASH_REMATCH[1]}"* ]] &&
	[ "$(echo "$held_tags" | wc -w)" = 2 ] && pass ||
	fail "leastconn: six quick requests all on the host not busy" "busy: $held_tags quick: $least_tags"

echo "== jobs canceled through HAProxy, on every host"
: >"$SCALE_DIR/cancel.ids"
for _ in $(seq 15); do
	id=$(submit "{\"executable_name\": \"sleeper\", \"args\": [\"60\"], \"callback\": \"$CALLBACK/cancel\"}")
	[ -n "$id" ] && echo "$id" >>"$SCALE_DIR/cancel.ids"
	[ "$(cut -c1-2 "$SCALE_DIR/cancel.ids" | sort -u | wc -l)" -ge 3 ] && break
done
expect "cancel: sleepers on the three hosts" "$(cut -c1-2 "$SCALE_DIR/cancel.ids" | sort -u | tr '\n' ' ')" "01 02 03 "
ncancel=$(wc -l <"$SCALE_DIR/cancel.ids")
# Running first (a queued job would cancel too, but this shows the program killed).
for id in $(cat "$SCALE_DIR/cancel.ids"); do
	for _ in $(seq 100); do
		[ "$(c "$EDGE/api/jobs/$id" | jq -r .status)" = running ] && break
		sleep 0.1
	done
done
codes=
for id in $(cat "$SCALE_DIR/cancel.ids"); do codes+="$(status -X DELETE "$EDGE/api/jobs/$id") "; done
expect "cancel: every DELETE 202" "$codes" "$(printf '202 %.0s' $(seq "$ncancel"))"
for _ in $(seq 300); do
	[ "$(grep -c '"/ok/cancel"' "$SCALE_DIR/callbacks.log")" -ge "$ncancel" ] && break
	sleep 0.1
done
expect "cancel: each job's callback says canceled" "$(grep '"/ok/cancel"' "$SCALE_DIR/callbacks.log" |
	jq -r 'select(.body.result.output | endswith("Execution canceled.")) | .body.job_id' | sort -u | wc -l)" "$ncancel"
codes=
for id in $(cat "$SCALE_DIR/cancel.ids"); do codes+="$(status -X DELETE "$EDGE/api/jobs/$id") "; done
expect "cancel: a second DELETE 409 (finished), from the job's host" "$codes" "$(printf '409 %.0s' $(seq "$ncancel"))"

echo "== files downloaded through HAProxy"
: >"$SCALE_DIR/files.ids"
for _ in $(seq 15); do
	id=$(c -H 'Content-Type: application/json' -d '{"executable_name": "write-files", "is_async": false}' \
		"$EDGE/api/execute/" | jq -r 'select(.result.output == "written\n") | .job_id')
	[ -n "$id" ] && echo "$id" >>"$SCALE_DIR/files.ids"
	[ "$(cut -c1-2 "$SCALE_DIR/files.ids" | sort -u | wc -l)" -ge 3 ] && break
done
expect "files: written on the three hosts" "$(cut -c1-2 "$SCALE_DIR/files.ids" | sort -u | tr '\n' ' ')" "01 02 03 "
for id in $(cat "$SCALE_DIR/files.ids"); do
	host_files=$SCALE_DIR/h$((10#$(tag_of "$id")))/files/$id
	expect "files: $id listed" "$(c "$EDGE/api/files/$id" | jq -c '.files | sort')" '["report.txt","sub/blob.bin"]'
	expect "files: $id report.txt" "$(c "$EDGE/api/files/$id/report.txt")" "report of $id"
	c -o "$SCALE_DIR/blob" "$EDGE/api/files/$id/sub/blob.bin"
	cmp -s "$SCALE_DIR/blob" "$host_files/sub/blob.bin" && pass || fail "files: $id sub/blob.bin, the same bytes"
	expect "files: $id deleted" "$(status -X DELETE "$EDGE/api/files/$id/delete")" 204
	[ ! -e "$host_files" ] && pass || fail "files: $id's folder gone from its host"
done

echo "== a host down, and back"
# A job on host 2 that is running when the host dies.
lost=
for _ in $(seq 15); do
	id=$(submit "{\"executable_name\": \"sleeper\", \"args\": [\"60\"], \"callback\": \"$CALLBACK/lost\"}")
	case $id in
	02*) lost=$id; break ;;
	?*) status -X DELETE "$EDGE/api/jobs/$id" >/dev/null ;;
	esac
done
[ -n "$lost" ] && pass || fail "down: a job landed on host 2"
for _ in $(seq 100); do
	[ "$(c "$EDGE/api/jobs/$lost" | jq -r .status)" = running ] && break
	sleep 0.1
done
done_before=$(c "$EDGE/api/jobs/$(grep -m1 ^02 "$SCALE_DIR/async.ids")" | jq -r .status)
scale_kill_ns h2 && pass || fail "down: host 2's processes all killed"
# At once, before HAProxy's checks notice: new work goes elsewhere, host 2's jobs are 503.
parallel down 30 POST /api/execute/ '{"executable_name": "hello", "is_async": false}'
expect "down: 30 new sync requests, all 201" "$(grep -c '^201$' "$SCALE_DIR/down.codes")" 30
expect "down: none on host 2" "$(bodies down 30 | jq -r '.job_id' | grep -c ^02)" 0
body=$(c -w ' %{http_code}' "$EDGE/api/jobs/$lost")
expect "down: host 2's running job, 503" "$body" '{"detail":"The host that owns this job is unavailable."} 503'
expect "down: host 2's finished job, 503" "$(status "$EDGE/api/jobs/$(grep -m1 ^02 "$SCALE_DIR/async.ids")")" 503
expect "down: host 2's files, 503" "$(status "$EDGE/api/files/$lost")" 503
expect "down: cancel on host 2, 503" "$(status -X DELETE "$EDGE/api/jobs/$lost")" 503
scale_wait_up 2 && pass || fail "down: HAProxy's checks see host 2 down"
expect "down: still 503 once HAProxy knows" "$(status "$EDGE/api/jobs/$lost")" 503
parallel down2 30 POST /api/execute/ "{\"executable_name\": \"hello\", \"callback\": \"$CALLBACK/down\"}"
expect "down: 30 async, all 201, none on host 2" \
	"$(grep -c '^201$' "$SCALE_DIR/down2.codes") $(bodies down2 30 | jq -r '.job_id' | grep -c ^02)" "30 0"
expect "down: no callback for the lost job yet" "$(grep -c "\"job_id\": \"$lost\"" "$SCALE_DIR/callbacks.log")" 0
# Back: the boot's lso --recover, then its socket.
scale_recover 2 && pass || fail "back: lso --recover on host 2" "$(cat "$SCALE_DIR/h2/recover.log")"
scale_start_host 2 || abort "back: host 2 started again"
scale_wait_up 3 && pass || fail "back: HAProxy's checks see host 2 up"
for _ in $(seq 300); do
	grep -q "\"job_id\": \"$lost\"" "$SCALE_DIR/callbacks.log" && break
	sleep 0.1
done
expect "back: the lost job's callback, once, failed" "$(grep '"/ok/lost"' "$SCALE_DIR/callbacks.log" |
	jq -r --arg id "$lost" 'select(.body.job_id == $id) | "\(.body.result.status) \(.body.result.return_code)"')" "failed -1"
expect "back: host 2's job reads lost" "$(c "$EDGE/api/jobs/$lost" | jq -r .status)" lost
expect "back: host 2's earlier job as before" "$(c "$EDGE/api/jobs/$(grep -m1 ^02 "$SCALE_DIR/async.ids")" | jq -r .status)" "$done_before"
parallel back 30 POST /api/execute/ '{"executable_name": "hello", "is_async": false}'
expect "back: 30 sync requests, all 201" "$(grep -c '^201$' "$SCALE_DIR/back.codes")" 30

echo "== the key at the edge"
nokey() { scale_in client curl -sS --max-time 30 --cacert "$SCALE_DIR/ca.pem" "$@"; }
expect "key: /api/version without it, 401" \
	"$(nokey -o /dev/null -w '%{http_code}' "$EDGE/api/version")" 401
expect "key: a job without it, 401 from its host" \
	"$(nokey -w ' %{http_code}' "$EDGE/api/jobs/$lost")" '{"detail":"Not authenticated"} 401'
expect "key: a wrong one, 401" "$(nokey -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' \
	-H 'Content-Type: application/json' -d '{"executable_name": "hello"}' "$EDGE/api/execute/")" 401
expect "key: with it, 200" "$(status "$EDGE/api/version")" 200

echo "== TLS only"
expect "tls: nothing listens for cleartext on port 80" \
	"$(scale_in client curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$SCALE_EDGE/api/version"; echo " $?")" "000 7"
expect "tls: cleartext HTTP on the TLS port gets no HTTP answer" \
	"$(scale_in client curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$SCALE_EDGE:443/api/version")" 000
expect "tls: TLS 1.2 accepted" "$(status --tlsv1.2 --tls-max 1.2 "$EDGE/api/version")" 200
expect "tls: TLS 1.3 accepted" "$(status --tlsv1.3 "$EDGE/api/version")" 200
# TLS 1.1 offered by a client that allows it (OpenSSL's security level 0): refused.
scale_in client openssl s_client -connect "$SCALE_EDGE:443" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
	</dev/null >"$SCALE_DIR/tls11.out" 2>&1
grep -q 'alert protocol version' "$SCALE_DIR/tls11.out" && grep -q '^New, (NONE), Cipher is (NONE)' "$SCALE_DIR/tls11.out" &&
	pass || fail "tls: TLS 1.1 refused" "$(head -n 3 "$SCALE_DIR/tls11.out")"
expect "tls: no HSTS header" "$(c -s -D - -o /dev/null "$EDGE/api/version" | grep -ci '^strict-transport-security')" 0

echo "== an HAProxy reload under load"
reload_keep=$(submit "{\"executable_name\": \"sleeper\", \"args\": [\"60\"]}")
worker_before=$(pgrep -P "$SCALE_HAPROXY_PID" | head -n 1)
parallel reload 200 POST /api/execute/ '{"executable_name": "hello", "is_async": false}' &
load_pid=$!
# The reload once 40 of them have begun (their output files exist).
for _ in $(seq 600); do
	[ "$(find "$SCALE_DIR" -maxdepth 1 -name 'reload.[0-9]*' | wc -l)" -ge 40 ] && break
	sleep 0.05
done
kill -USR2 "$SCALE_HAPROXY_PID"
wait "$load_pid"
expect "reload: 200 sync requests across it, all 201" "$(grep -c '^201$' "$SCALE_DIR/reload.codes")" 200
# The new worker's front end took some of them, the old one the rest.
new_sessions=$(scale_show_stat | awk -F, '$1 == "lso" && $2 == "FRONTEND" {print $8}')
[ "${new_sessions:-0}" -gt 0 ] && [ "$new_sessions" -lt 200 ] && pass ||
	fail "reload: the requests spanned it" "the new worker took ${new_sessions:-none} of 200"
for _ in $(seq 100); do
	worker_after=$(pgrep -P "$SCALE_HAPROXY_PID" | tail -n 1)
	[ -n "$worker_after" ] && [ "$worker_after" != "$worker_before" ] && break
	sleep 0.1
done
[ -n "$worker_after" ] && [ "$worker_after" != "$worker_before" ] && pass ||
	fail "reload: a new worker" "$worker_before -> $worker_after"
scale_wait_up 3 && pass || fail "reload: three hosts up after it"
expect "reload: a job from before it, read" "$(c "$EDGE/api/jobs/$reload_keep" | jq -r .status)" running
expect "reload: and canceled" "$(status -X DELETE "$EDGE/api/jobs/$reload_keep")" 202
parallel_ids reread GET /api/jobs/@ID@ "$SCALE_DIR/async.ids"
expect "reload: the 300 async jobs read again, all 200" "$(grep -c '^200$' "$SCALE_DIR/reread.codes")" 300

echo "== every callback once"
expect "callbacks: none twice" "$(jq -r .body.job_id "$SCALE_DIR/callbacks.log" | sort | uniq -d | wc -l)" 0
expect "callbacks: the async ones, 300" "$(async_callbacks | wc -l)" 300

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
