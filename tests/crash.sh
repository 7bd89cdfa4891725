#!/usr/bin/env bash
# tests/crash.sh [LSO]: power cuts at every step of an async job's life
# (root). The state directory is on tests/crashfs, a file system in memory
# that forgets every write not yet synced when the power goes. A first run
# counts the steps of one job (a create, a write, a sync, a rename... of its
# files); then, for each step N, a fresh file system cuts at step N: lso and
# everything it started are SIGKILLed at once (cgroup.kill), the file system
# goes back to what its disk holds, and lso --recover runs, as at boot. Then:
# every record is readable, and a job the client got a 201 for is settled,
# with its result or as lost, every callback it got agreeing with its record
# (a callback is never contradicted), the last one delivered.
# Then strace: the syncs come before the 201's write and before the callback's connect.
# CRASH_SYNC=false runs it all with LSO_SYNC_RECORDS=false (to see it fail).
# Ends with "N passed, M failed".
set -u
cd "$(dirname "$0")/.." || exit 1
LSO=$(realpath "${1:-./lso}")
TOP=$(pwd)
TMP=$(mktemp -d /tmp/lso-crash.XXXXXX)
passed=0 failed=0 skipped=0
pids=()
. tests/lib.sh
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $1${2:+: $2}"; }
SYNC=${CRASH_SYNC:-true}

cleanup() {
	local m
	for m in "$TMP"/cut-*/mnt; do mountpoint -q "$m" 2>/dev/null && fusermount3 -u -z "$m"; done
	[ -n "${CG:-}" ] && [ -d "$CG" ] && { echo 1 >"$CG/cgroup.kill"; sleep 0.2; rmdir "$CG"; }
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] && echo "kept $TMP" >&2 || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ]; then
	echo "tests/crash.sh: needs root (FUSE mounts, cgroups)" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
CGROOT=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
if [ -z "$CGROOT" ] || [ ! -e /dev/fuse ]; then
	echo "tests/crash.sh: needs a cgroup2 mount and /dev/fuse" >&2
	echo "0 passed, 1 failed"
	exit 1
fi
make -s tests/crashfs || exit 1

python3 tests/receiver.py "$TMP/receiver.port" "$TMP/callbacks" &
pids+=($!)
wait_for 5 test -s "$TMP/receiver.port"
RECEIVER="http://127.0.0.1:$(cat "$TMP/receiver.port")"

env_of() {
	echo "PATH=/usr/local/bin:/usr/bin:/bin EXECUTABLES_ROOT_DIR=$TOP/tests/programs" \
		"LSO_STATE_DIR=$1 REQUEST_TIMEOUT_SEC=2 LSO_SYNC_RECORDS=$SYNC"
}

# callbacks_for JOB: its callbacks as received, one JSON line each.
callbacks_for() { jq -c --arg j "$1" 'select(.body.job_id == $j)' "$TMP/callbacks" 2>/dev/null; }

# cg_procs: how many live processes the server's cgroup holds (zombies wait for init).
cg_procs() {
	local pid n=0
	for pid in $(cat "$CG/cgroup.procs"); do
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] || n=$((n + 1))
	done
	echo "$n"
}

# start_lso STATE: lso in a cgroup of its own (socket-activated, inetd mode); sets PORT.
start_lso() {
	local kv args=()
	CG="$CGROOT/lso-crash-$$-$RANDOM"
	mkdir "$CG"
	PORT=$(free_port)
	for kv in $(env_of "$1"); do args+=(-E "$kv"); done
	bash -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$CG" \
		systemd-socket-activate -a --inetd "${args[@]}" -l "127.0.0.1:$PORT" "$LSO" \
		>"$WORK/lso.log" 2>&1 &
	wait_for 10 grep -q "Listening on" "$WORK/lso.log"
}

cg_empty() { [ "$(cg_procs)" = 0 ]; }

# stop_lso [REBOOT]: SIGKILL to every process of the server at once, as a
# power cut. REBOOT: then the file system's reboot, which lets the processes
# waiting on it (killed, but they wait for its answer) die.
stop_lso() {
	echo 1 >"$CG/cgroup.kill"
	[ -z "${1:-}" ] || kill -USR1 "$FS_PID"
	wait_for 20 cg_empty || fail "stop lso: its processes are gone"
	wait_for 5 rmdir "$CG"  # once init reaped the zombies
	CG=
}

# mount_crashfs CUT_AT: a fresh crashfs at $WORK/mnt.
mount_crashfs() {
	mkdir -p "$WORK/mnt"
	tests/crashfs "$WORK/fs.log" "$1" "$WORK/mnt" 2>"$WORK/fs.err" &
	FS_PID=$!
	wait_for 5 mountpoint -q "$WORK/mnt"
}

umount_crashfs() {
	fusermount3 -u "$WORK/mnt" || { fail "unmount crashfs"; fusermount3 -u -z "$WORK/mnt"; }
	wait_for 30 eval "! kill -0 $FS_PID 2>/dev/null" || { fail "crashfs exits once unmounted"; kill -KILL "$FS_PID"; }
	wait "$FS_PID"
}

# submit: an async job with a callback, by curl in the background (it may never get an answer).
submit() {
	curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 20 -H 'Content-Type: application/json' \
		--data-binary "{\"executable_name\":\"echo-args\",\"args\":[\"crash test\"],\"callback\":\"$RECEIVER/ok/$1\"}" \
		"http://127.0.0.1:$PORT/api/execute/" >"$WORK/code" 2>/dev/null &
	CURL_PID=$!
}

# settled_or_cut: the power went, or the job is done (its processes are gone, the client answered).
is_cut() { grep -q '^cut ' "$WORK/fs.log"; }
job_done() { ! kill -0 "$CURL_PID" 2>/dev/null && [ "$(cg_procs)" = 1 ]; }
settled_or_cut() { is_cut || job_done; }

# check_after LABEL: the checks after the reboot and lso --recover.
check_after() {
	local l=$1 state="$WORK/mnt/state" job="" f record n
	for f in "$state"/jobs/*.json; do
		[ -e "$f" ] || continue
		if [ ! -s "$f" ] || ! jq -e 'type == "object"' "$f" >/dev/null 2>&1; then  # jq 1.6 takes an empty file
			fail "$l: an unreadable record" "$(basename "$f"): $(head -c 200 "$f" | od -c | head -n 3)"
		elif ! jq -e '.status | IN("successful", "failed", "timeout", "canceled", "lost")' "$f" >/dev/null; then
			fail "$l: --recover left a job unsettled" "$(cat "$f")"
		fi
	done
	if [ "$(cat "$WORK/code" 2>/dev/null)" = 201 ]; then
		job=$(jq -r .job_id "$WORK/body")
		heard=$((heard + 1))
	fi
	[ -n "$job" ] || { pass; return; }
	record="$state/jobs/$job.json"
	if [ ! -s "$record" ]; then
		fail "$l: a job the client got a 201 for has no record"
		return
	fi
	if ! jq -e '.status == "successful" or .status == "lost"' "$record" >/dev/null; then
		fail "$l: not settled" "$(cat "$record")"
		return
	fi
	jq -e '.status == "lost"' "$record" >/dev/null && lost=$((lost + 1))
	n=$(callbacks_for "$job" | wc -l)
	callbacks=$((callbacks + n))
	[ "$n" -gt 1 ] && duplicates=$((duplicates + n - 1))
	if [ "$n" = 0 ]; then
		fail "$l: a job the client heard of got no callback" "$(cat "$record")"
		return
	fi
	if callbacks_for "$job" | jq -e --slurpfile r "$record" '.body.result != $r[0].result' >/dev/null; then
		fail "$l: a callback contradicts the record" "$(callbacks_for "$job" | jq -c .body.result | tr '\n' ' ') vs $(jq -c .result "$record")"
		return
	fi
	check "$l: the record says delivered" jq -e '.callback.delivered == true' "$record"
}

# run_cut N: one job, the power cut at its step N (0: never), then the reboot.
run_cut() {
	local n=$1 l="cut at step $1"
	WORK="$TMP/cut-$n"
	mkdir -p "$WORK"
	mount_crashfs "$n" || { fail "$l: mount crashfs" "$(cat "$WORK/fs.err")"; return; }
	start_lso "$WORK/mnt/state" || { fail "$l: lso starts" "$(cat "$WORK/lso.log")"; umount_crashfs; return; }
	submit "cut-$n"
	if ! wait_for 30 settled_or_cut; then
		fail "$l: neither cut nor done within 30 s"
	fi
	if is_cut; then
		cuts=$((cuts + 1))
		CUT_OP=$(grep "^step $n " "$WORK/fs.log" | cut -d ' ' -f 3-)
		stop_lso reboot  # the file system then forgets what was not synced
	else
		stop_lso
	fi
	wait "$CURL_PID" 2>/dev/null
	# lso-recover.service's job at boot.
	if ! env $(env_of "$WORK/mnt/state") timeout 60 "$LSO" --recover >>"$WORK/lso.log" 2>&1; then
		fail "$l: lso --recover" "$(tail -n 3 "$WORK/lso.log")"
	fi
	check_after "$l (${CUT_OP:-no cut})"
	CUT_OP=
	umount_crashfs
}

# CRASH_ONLY=cuts or CRASH_ONLY=strace runs that part alone (for development).
want() { [ -z "${CRASH_ONLY:-}" ] || [ "$CRASH_ONLY" = "$1" ]; }

if want cuts; then
echo "== power cuts at every step of an async job (LSO_SYNC_RECORDS=$SYNC)"
heard=0 lost=0 cuts=0 callbacks=0 duplicates=0
run_cut 0
steps=$(awk '$1 == "step" { n = $2 } END { print n }' "$TMP/cut-0/fs.log")
check "the job's steps are counted" test "${steps:-0}" -gt 10
for n in $(seq 1 "${steps:-0}"); do
	run_cut "$n"
done
echo "   $steps steps, $cuts cuts; the client got a 201 in $heard runs, $lost settled as lost;" \
	"$callbacks callbacks, $duplicates of them sent again by --recover"
fi

if want strace; then
echo "== the order of the system calls (strace)"
WORK="$TMP/strace"
mkdir -p "$WORK"
apt_install strace >/dev/null || fail "install strace"
STATE="$WORK/state"
kvs=()
for kv in $(env_of "$STATE"); do kvs+=(-E "$kv"); done
PORT=$(free_port)
systemd-socket-activate -a --inetd "${kvs[@]}" -l "127.0.0.1:$PORT" \
	strace -f -qq -s 256 -o "$WORK/trace" -e trace=openat,write,writev,pwrite64,fdatasync,fsync,renameat2,connect \
	"$LSO" >"$WORK/lso.log" 2>&1 &
pids+=($!)
wait_for 10 grep -q "Listening on" "$WORK/lso.log"
CG=
code=$(curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 20 -H 'Content-Type: application/json' \
	--data-binary "{\"executable_name\":\"echo-args\",\"args\":[\"traced\"],\"callback\":\"$RECEIVER/ok/traced\"}" \
	"http://127.0.0.1:$PORT/api/execute/")
expect "traced job: 201" "$code" 201
job=$(jq -r .job_id "$WORK/body")
check "traced job: its callback" wait_for 20 eval "callbacks_for $job | grep -q ."
check "traced job: recorded delivered" wait_for 10 jq -e '.callback.delivered' "$STATE/jobs/$job.json"
sleep 0.5
port=$(cat "$TMP/receiver.port")
# order FIRST THEN...: the lines matching each extended regex come in this
# order in the trace (each after the one before it); the line numbers, or fail.
order() {
	PATS="$*" awk 'BEGIN { n = split(ENVIRON["PATS"], p, " @@ "); i = 1 }
		i <= n && $0 ~ p[i] { at[i] = NR; i++ }
		END { if (i <= n) { print "missing after step " i - 1 ": " p[i]; exit 1 }
		      for (k = 1; k <= n; k++) printf "%d ", at[k]; print "" }' "$WORK/trace"
}
if out=$(order "openat\\(.*jobs/$job\\.json\", O_WRONLY\\|O_CREAT\\|O_EXCL" @@ "fdatasync\\(" @@ "fsync\\(" @@ \
	'writev?\(1, \[?\{?(iov_base=)?"HTTP/1.1 201'); then pass; else
	fail "the first record's fdatasync and the directory's fsync before the 201's write" "$out"; fi
if out=$(order 'pwrite64\(.*status[^a-z]+successful' @@ "fdatasync\\(" @@ "renameat2\\(.*jobs/$job\\.json" @@ \
	"fsync\\(" @@ "connect\\(.*htons\\($port\\)"); then pass; else
	fail "the result's fdatasync, exchange and directory fsync before the callback's connect" "$out"; fi
# The 201 goes out before any record after the first: the client does not wait for the runner.
if out=$(order 'writev?\(1, \[?\{?(iov_base=)?"HTTP/1.1 201' @@ 'pwrite64\(.*status[^a-z]+running'); then pass; else
	fail "the 201 before the runner's first record" "$out"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
