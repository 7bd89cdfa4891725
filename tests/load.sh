#!/usr/bin/env bash
# tests/load.sh [LSO]: a load and leak check of lso (default ./lso, built
# beforehand: this script does not run make). Not part of `make test`.
#
# Starts `systemd-socket-activate -a --inetd` with lso on a free 127.0.0.1 port
# and a callback receiver (tests/receiver.py), then sends LOAD_SYNC_N (5000)
# sync requests at concurrency LOAD_CONC (32) with bench/load.c, then
# LOAD_ASYNC_N (500) async jobs with a callback, waits for every callback, and
# reports: failed requests (must be 0), callbacks received (exactly one per job),
# duplicates (0), wrong results (0), and afterwards: processes of the run left
# (0), zombies (0), the launcher's descriptors (unchanged) and stray files in
# the state directory (only <id>.json, <id>.lock and an empty <id>.next per
# job, the slot files).
# Prints the figures; exits 1 when any is off, 2 when it cannot set up.
#
# The launcher runs under `wrap reap` (bench/wrap.c), a child subreaper: an
# async job double-forks and is orphaned. This machine's PID 1 (not systemd)
# reaps orphans only lazily: they stay zombies of PID 1 for a second or two,
# mixed up with those of anything else running. Under the subreaper they are
# reaped at once and counted as this run's. LOAD_REAPER=0 runs without it
# (then zombies of PID 1 named lso or hello born during the run are counted).
#
# bench/load.c and bench/wrap.c are compiled into the temp dir ($CC, default cc).
# Everything listens on 127.0.0.1 only; all is stopped and the temp dir removed
# on exit (KEEP_TMP=1 keeps it).
set -u
cd "$(dirname "$0")/.." || exit 2
LSO=$(realpath "${1:-./lso}")
SYNC_N=${LOAD_SYNC_N:-5000}
ASYNC_N=${LOAD_ASYNC_N:-500}
CONC=${LOAD_CONC:-32}
REAPER=${LOAD_REAPER:-1}
CALLBACK_WAIT=${LOAD_CALLBACK_WAIT:-180}
CC=${CC:-cc}

say() { echo "load: $*" >&2; }
die() { say "$*"; exit 2; }

[ -x "$LSO" ] || die "$LSO is not built: run make first"
command -v systemd-socket-activate >/dev/null || die "systemd-socket-activate not found"

T=$(mktemp -d /tmp/lso-load.XXXXXX)
RECEIVER_PID="" TOP_PID="" SA=""

# shellcheck disable=SC2317 # called from the trap
cleanup() {
	trap - EXIT INT TERM
	[ -n "$TOP_PID" ] && kill "$TOP_PID" 2>/dev/null
	[ -n "$SA" ] && [ "$SA" != "$TOP_PID" ] && kill "$SA" 2>/dev/null
	[ -n "$RECEIVER_PID" ] && kill "$RECEIVER_PID" 2>/dev/null
	wait 2>/dev/null
	if [ -n "${KEEP_TMP:-}" ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$CC" -O2 -Wall -Wextra -pthread -o "$T/load" bench/load.c || die "cannot build bench/load.c"
"$CC" -O2 -Wall -Wextra -o "$T/wrap" bench/wrap.c || die "cannot build bench/wrap.c"

ROOT=$T/root
STATE=$T/state
mkdir -p "$ROOT" "$STATE"
printf '#!/bin/sh\necho hello\n' >"$ROOT/hello"
chmod 755 "$ROOT/hello"

. tests/lib.sh

# --- the callback receiver ---
python3 tests/receiver.py "$T/receiver.port" "$T/callbacks" &
RECEIVER_PID=$!
for _ in $(seq 100); do [ -s "$T/receiver.port" ] && break; sleep 0.05; done
[ -s "$T/receiver.port" ] || die "the receiver did not start"
RPORT=$(cat "$T/receiver.port")
: >>"$T/callbacks"

# --- the launcher ---
PORT=$(free_port)
sa=(systemd-socket-activate -a --inetd -l "127.0.0.1:$PORT"
	-E PATH=/usr/local/bin:/usr/bin:/bin -E EXECUTABLES_ROOT_DIR="$ROOT" -E LSO_STATE_DIR="$STATE"
	-E EXECUTABLE_TIMEOUT_SEC=60 -E LSO_LOAD_RUN="$T" "$LSO")
if [ "$REAPER" = 1 ]; then
	"$T/wrap" reap "$T/sa.pid" "${sa[@]}" >"$T/launcher.log" 2>&1 &
	TOP_PID=$!
	for _ in $(seq 100); do [ -s "$T/sa.pid" ] && break; sleep 0.05; done
	SA=$(cat "$T/sa.pid" 2>/dev/null)
else
	"${sa[@]}" >"$T/launcher.log" 2>&1 &
	TOP_PID=$!
	SA=$TOP_PID
fi
for _ in $(seq 100); do grep -q "Listening on" "$T/launcher.log" 2>/dev/null && break; sleep 0.05; done
grep -q "Listening on" "$T/launcher.log" || die "the launcher did not start: $(cat "$T/launcher.log")"

post() { # body -> a whole HTTP request
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$PORT" "${#1}" "$1"
}
post '{"executable_name":"hello","args":[],"is_async":false}' >"$T/req.sync"
post "{\"executable_name\":\"hello\",\"args\":[],\"callback\":\"http://127.0.0.1:$RPORT/ok/load\"}" >"$T/req.async"

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
children() { cat /proc/"$1"/task/*/children 2>/dev/null | wc -w; }
# Processes of this run: lso and its programs carry LSO_LOAD_RUN=$T (zombies have no environ).
run_processes() {
	local f pid n=0
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = "$$" ] && continue
		tr '\0' '\n' 2>/dev/null <"$f" | grep -qx "LSO_LOAD_RUN=$T" || continue
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && continue
		n=$((n + 1))
	done
	echo "$n"
}
# Zombies of the run: children of the launcher or of its subreaper; without the
# subreaper (LOAD_REAPER=0), zombies of PID 1 named lso or hello born since the
# start (which may then include another run's, if one goes on at the same time).
zombies() {
	local f s name fields n=0
	for f in /proc/[0-9]*/stat; do
		read -r s 2>/dev/null <"$f" || continue
		case $s in *") Z "*) ;; *) continue ;; esac
		name=${s#*(}
		name=${name%)*}
		s=${s##*) }
		read -r -a fields <<<"$s"
		# fields: 0 state, 1 ppid, ..., 19 starttime
		if [ "${fields[1]}" = "$SA" ] || [ "${fields[1]}" = "$TOP_PID" ] ||
			{ [ "$REAPER" != 1 ] && [ "${fields[1]}" = 1 ] && [ "${fields[19]}" -ge "$START_TICKS" ] &&
				[[ $name == lso || $name == hello ]]; }; then
			n=$((n + 1))
		fi
	done
	echo "$n"
}
# settle: wait until the launcher (and its reaper) have no child left but each other.
settle() {
	for _ in $(seq "${1:-200}"); do
		local extra=0
		[ "$TOP_PID" != "$SA" ] && extra=1
		[ "$(children "$SA")" = 0 ] && [ "$(children "$TOP_PID")" -le "$extra" ] &&
			[ "$(run_processes)" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# --- warm up, then the baseline ---
START_TICKS=$(awk '{print $22}' /proc/self/stat)
"$T/load" -t 10 127.0.0.1 "$PORT" "$T/req.sync" 5 1 >/dev/null 2>&1
settle 50
FD_SA0=$(fd_count "$SA")
FD_TOP0=$(fd_count "$TOP_PID")

# batch KIND N: N requests of $T/req.KIND at concurrency $CONC; sets FAILED, RPS, WALL.
batch() {
	"$T/load" -t 20 127.0.0.1 "$PORT" "$T/req.$1" "$2" "$CONC" >"$T/$1.out" 2>"$T/$1.err"
	[[ $(cat "$T/$1.out") =~ failures=([0-9]+).*rps=([0-9.]+).*wall_s=([0-9.]+) ]] ||
		die "cannot read load's output: $(cat "$T/$1.out" "$T/$1.err")"
	FAILED=${BASH_REMATCH[1]} RPS=${BASH_REMATCH[2]} WALL=${BASH_REMATCH[3]}
	[ -s "$T/$1.err" ] && say "$1: $(cat "$T/$1.err")"
	return 0
}

# --- sync ---
say "$SYNC_N sync requests at concurrency $CONC"
batch sync "$SYNC_N"
SYNC_FAILED=$FAILED SYNC_RPS=$RPS SYNC_WALL=$WALL
settle 100

# --- async ---
say "$ASYNC_N async jobs with a callback at concurrency $CONC"
batch async "$ASYNC_N"
ASYNC_FAILED=$FAILED ASYNC_RPS=$RPS ASYNC_WALL=$WALL

say "waiting for $ASYNC_N callbacks (at most ${CALLBACK_WAIT} s)"
t0=$SECONDS
while [ "$(wc -l <"$T/callbacks")" -lt "$ASYNC_N" ] && [ $((SECONDS - t0)) -lt "$CALLBACK_WAIT" ]; do
	sleep 0.5
done
CALLBACK_S=$((SECONDS - t0))
settle 300 || say "processes of the run still there after 30 s"
sleep 2 # a duplicate would come now

# --- figures ---
ls "$STATE/jobs" 2>/dev/null | sed -n 's/\.json$//p' | sort >"$T/job-ids"
jq -r '.body.job_id' "$T/callbacks" | sort >"$T/callback-ids"
JOBS=$(wc -l <"$T/job-ids")
CALLBACKS=$(wc -l <"$T/callback-ids")
DISTINCT=$(sort -u "$T/callback-ids" | wc -l)
DUPLICATES=$((CALLBACKS - DISTINCT))
UNKNOWN=$(sort -u "$T/callback-ids" | comm -13 "$T/job-ids" - | wc -l)
MISSING=$(comm -23 "$T/job-ids" <(sort -u "$T/callback-ids") | wc -l)
WRONG_BODIES=$(jq -c 'select(.body.result != {"output":"hello\n","return_code":0,"status":"successful"} or .path != "/ok/load")' \
	"$T/callbacks" | wc -l)
NOT_DELIVERED=0
for id in $(cat "$T/job-ids"); do
	jq -e '.status == "successful" and .callback.delivered == true and .callback.attempts == 1' \
		"$STATE/jobs/$id.json" >/dev/null 2>&1 || NOT_DELIVERED=$((NOT_DELIVERED + 1))
done
STRAY=$( {
	ls -A "$STATE" | grep -vxE 'jobs|slots'
	ls -A "$STATE/jobs" | grep -vxE '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.(json|lock|next)'
	# a finished job's spare record is emptied
	find "$STATE/jobs" -name '*.next' -size +0c
	ls -A "$STATE/slots" | grep -vxE '[0-9]+|queue'
	# every record has its lock, every lock its record
	ls "$STATE/jobs" | sed -n 's/\.lock$//p' | sort | comm -3 - "$T/job-ids"
} 2>/dev/null | wc -l)
LEFT=$(run_processes)
ZOMBIES=$(zombies)
KIDS_SA=$(children "$SA")
KIDS_TOP=$(children "$TOP_PID")
[ "$TOP_PID" != "$SA" ] && KIDS_TOP=$((KIDS_TOP - 1))
FD_SA1=$(fd_count "$SA")
FD_TOP1=$(fd_count "$TOP_PID")
CRASHES=$(grep -cE 'died with (code [1-9]|signal)' "$T/launcher.log")

bad=0
row() { # label value want(regex for "ok")
	local mark=ok
	if ! [[ $2 =~ ^($3)$ ]]; then mark=OFF; bad=1; fi
	printf '  %-52s %12s  %s\n' "$1" "$2" "$mark"
}
echo "lso load: $(nproc) cores, $(uname -r), launcher under $([ "$REAPER" = 1 ] && echo 'a subreaper (wrap reap)' || echo 'nothing (LOAD_REAPER=0)')"
printf '  %-52s %12s\n' "sync requests sent (concurrency $CONC)" "$SYNC_N"
printf '  %-52s %12s\n' "sync wall time s / req/s" "$SYNC_WALL / $SYNC_RPS"
row "sync requests failed" "$SYNC_FAILED" 0
printf '  %-52s %12s\n' "async jobs sent (concurrency $CONC)" "$ASYNC_N"
printf '  %-52s %12s\n' "async wall time s / req/s" "$ASYNC_WALL / $ASYNC_RPS"
row "async requests failed" "$ASYNC_FAILED" 0
row "job records" "$JOBS" "$ASYNC_N"
row "callbacks received (all within ${CALLBACK_S} s)" "$CALLBACKS" "$ASYNC_N"
row "jobs with exactly one callback" "$((DISTINCT - UNKNOWN))" "$ASYNC_N"
row "duplicate callbacks" "$DUPLICATES" 0
row "callbacks for unknown jobs" "$UNKNOWN" 0
row "jobs without a callback" "$MISSING" 0
row "callbacks with a wrong body" "$WRONG_BODIES" 0
row "records not successful+delivered at 1st attempt" "$NOT_DELIVERED" 0
row "processes of the run left" "$LEFT" 0
row "zombies of the run" "$ZOMBIES" 0
row "children left under the launcher" "$KIDS_SA" 0
row "children left under the subreaper" "$KIDS_TOP" 0
row "launcher descriptors before -> after" "$FD_SA0 -> $FD_SA1" "$FD_SA0 -> $FD_SA0"
[ "$TOP_PID" != "$SA" ] && row "subreaper descriptors before -> after" "$FD_TOP0 -> $FD_TOP1" "$FD_TOP0 -> $FD_TOP0"
row "stray files in the state dir" "$STRAY" 0
row "lso exits with an error or a signal" "$CRASHES" 0
if [ "$bad" = 0 ]; then echo "load: all figures as expected"; else echo "load: some figures are OFF"; fi
exit "$bad"
