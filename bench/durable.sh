#!/usr/bin/env bash
# bench/durable.sh: what the syncs cost an async job's 201. POSTs of an async
# job (no callback), one connection each, one at a time (bench/load.c), with
# LSO_SYNC_RECORDS=true (the default: the first record's fdatasync and one
# fsync of jobs/ before the 201) and =false, the state directory on this
# machine's disk (a directory under /var/tmp) and on a tmpfs (mounted here:
# root). Interleaved rounds, so drift hits every subject alike. Prints a
# Markdown table: p50 and p99 of time-to-201 in ms, per subject.
#   BENCH_ROUNDS (10), BENCH_N (20 requests a subject a round), BENCH_LSO (./lso)
set -eu -o pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${BENCH_ROUNDS:-10}
N=${BENCH_N:-20}
LSO=${BENCH_LSO:-$PWD/lso}
[ -x "$LSO" ] || { echo "bench/durable.sh: $LSO is missing: run make first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/durable.sh: needs root (it mounts a tmpfs)" >&2; exit 1; }
B=$(mktemp -d /var/tmp/lso-bench-durable.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	mountpoint -q "$B/tmpfs" && umount -l "$B/tmpfs"
	rm -rf "$B"
}
trap cleanup EXIT
cc -O2 -Wall -Wextra -pthread -o "$B/load" bench/load.c
mkdir -p "$B/root" "$B/disk" "$B/tmpfs"
mount -t tmpfs -o size=256m tmpfs "$B/tmpfs"
printf '#!/bin/sh\necho hello\n' >"$B/root/hello"
chmod +x "$B/root/hello"
body='{"executable_name":"hello","args":[]}'
printf 'POST /api/execute/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
	"${#body}" "$body" >"$B/req"

declare -A PORT
subjects="disk-sync disk-nosync tmpfs-sync tmpfs-nosync"
for s in $subjects; do
	fs=${s%-*}
	sync=true
	[ "${s#*-}" = nosync ] && sync=false
	PORT[$s]=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	systemd-socket-activate -a --inetd -E PATH=/usr/bin:/bin -E "EXECUTABLES_ROOT_DIR=$B/root" \
		-E "LSO_STATE_DIR=$B/$fs/state-$s" -E "LSO_SYNC_RECORDS=$sync" -E LSO_MAX_QUEUED=65536 \
		-l "127.0.0.1:${PORT[$s]}" "$LSO" >"$B/$s.log" 2>&1 &
	pids+=($!)
done
sleep 0.5
for s in $subjects; do "$B/load" 127.0.0.1 "${PORT[$s]}" "$B/req" 5 1 >/dev/null; done  # warm up
# runners_gone: the jobs of the last batch have ended (their syncs would weigh on the next).
runners_gone() { ! pgrep -f "^$LSO\$" >/dev/null; }
order=($subjects)
for r in $(seq "$ROUNDS"); do
	for i in "${!order[@]}"; do
		s=${order[$(((i + r) % ${#order[@]}))]}  # each round starts with the next subject
		"$B/load" -o "$B/$s.lat" 127.0.0.1 "${PORT[$s]}" "$B/req" "$N" 1 >"$B/$s.out"
		grep -q 'failures=0' "$B/$s.out" || { echo "bench/durable.sh: $s: $(cat "$B/$s.out")" >&2; exit 1; }
		for _ in $(seq 100); do runners_gone && break; sleep 0.05; done
	done
	printf '\rbench/durable.sh: round %d of %d' "$r" "$ROUNDS" >&2
done
echo >&2
# pct FILE P: the P-th percentile (nearest rank) of the µs in FILE, in ms.
pct() { sort -n "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.2f", v[i] / 1000}'; }
echo "| state directory | LSO_SYNC_RECORDS | p50 ms | p99 ms | requests |"
echo "|---|---|---|---|---|"
for s in $subjects; do
	fs=${s%-*}
	sync=true
	[ "${s#*-}" = nosync ] && sync=false
	echo "| $fs | $sync | $(pct "$B/$s.lat" 50) | $(pct "$B/$s.lat" 99) | $(wc -l <"$B/$s.lat") |"
done
echo "disk: $(df -T /var/tmp | awk 'NR == 2 {print $2 " on " $1}'), kernel $(uname -r)"
