#!/usr/bin/env bash
# bench/scale.sh [LSO]: requests a second through HAProxy with 1, 2 and 3 lso
# hosts (examples/haproxy/haproxy.cfg, the namespaces of tests/scale.sh), and
# what HAProxy itself costs a request. Root (ip netns, cgroups).
#
# These machines have 2 cores, so three hosts "one core each" cannot be had:
# each host's lso (and what it runs) is held instead to BENCH_SCALE_QUOTA per
# cent of one core by a CPU cgroup (CFS quota), 3 x 30 % by default, leaving
# the rest to HAProxy and the load client. A sync hello a request, a new
# connection each, BENCH_SCALE_CONC at once (bench/load.c) for
# BENCH_SCALE_SECONDS, the median of BENCH_SCALE_ROUNDS; cleartext to HAProxy
# (bench/load.c speaks no TLS; a bind :80 added for it), and over TLS with
# curl --parallel (BENCH_SCALE_TLS_N requests, a handshake each; curl's own
# cost bounds that rate). HAProxy's cost: the CPU time of its worker over the
# requests it served (clock ticks: 10 ms), and the p50 at one connection
# through it against the same host direct.
set -u
cd "$(dirname "$0")/.." || exit 1
SCALE_TOP=$(pwd)
LSO=$(realpath "${1:-./lso}")
QUOTA=${BENCH_SCALE_QUOTA:-30}
DURATION=${BENCH_SCALE_SECONDS:-5}
CONC=${BENCH_SCALE_CONC:-8}
ROUNDS=${BENCH_SCALE_ROUNDS:-3}
TLS_N=${BENCH_SCALE_TLS_N:-600}
P50_N=${BENCH_SCALE_P50_N:-200}
die() { echo "bench/scale.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, cgroups)"
SCALE_DIR=$(mktemp -d /tmp/lso-bench-scale.XXXXXX)
SCALE_KEY=
. tests/scale-lib.sh
trap 'scale_cleanup; rm -rf "$SCALE_DIR"' EXIT
trap 'exit 130' INT TERM

cc -O2 -Wall -Wextra -pthread -o "$SCALE_DIR/load" bench/load.c || die "cannot build bench/load.c"
mkdir -p "$SCALE_DIR/programs"
cp examples/hello "$SCALE_DIR/programs/hello"
body='{"executable_name": "hello", "is_async": false}'
printf 'POST /api/execute/ HTTP/1.1\r\nHost: lso\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
	"${#body}" "$body" >"$SCALE_DIR/req"

scale_network 3 || die "cannot make the namespaces"
scale_cert || die "openssl failed"
for i in 1 2 3; do
	scale_cpu_limit "h$i" "$QUOTA" || die "no CPU cgroup (/sys/fs/cgroup/cpu) to hold host $i to $QUOTA %"
	scale_start_host "$i" "$SCALE_TASKS" || die "host $i did not start"
done

field() { [[ $1 =~ $2=([0-9.]+) ]] && echo "${BASH_REMATCH[1]}"; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# rps ADDRESS PORT: the median req/s of ROUNDS runs; failures go to stderr.
rps() {
	local out
	for _ in $(seq "$ROUNDS"); do
		out=$(scale_in client "$SCALE_DIR/load" -t 30 -d "$DURATION" "$1" "$2" "$SCALE_DIR/req" 1000000 "$CONC")
		[ "$(field "$out" failures)" = 0 ] || echo "WARNING: $1:$2: $out" >&2
		field "$out" rps
	done | median
}
# p50 ADDRESS PORT: the median latency of P50_N requests one at a time.
p50() {
	local out
	out=$(scale_in client "$SCALE_DIR/load" -t 30 "$1" "$2" "$SCALE_DIR/req" "$P50_N" 1)
	[ "$(field "$out" failures)" = 0 ] || echo "WARNING: $1:$2: $out" >&2
	field "$out" p50_ms
}
# worker_ticks: the CPU time of HAProxy's worker so far, in clock ticks.
worker_ticks() {
	local w
	w=$(pgrep -P "$SCALE_HAPROXY_PID" | head -n 1)
	awk '{print $14 + $15}' "/proc/$w/stat"
}
# tls_rps: TLS_N requests by curl --parallel (CONC at once, a connection each: httpclose).
tls_rps() {
	local cfg=$SCALE_DIR/tls.curl start end ok
	: >"$cfg"
	for i in $(seq "$TLS_N"); do
		[ "$i" -gt 1 ] && echo next >>"$cfg"
		printf 'url = "https://%s/api/execute/"\noutput = "/dev/null"\nsilent\nshow-error\ncacert = "%s"\nheader = "Content-Type: application/json"\ndata = "%s"\nwrite-out = "%%{http_code}\\n"\n' \
			"$SCALE_EDGE" "$SCALE_DIR/ca.pem" "${body//\"/\\\"}" >>"$cfg"
	done
	start=$(date +%s.%N)
	ok=$(scale_in client curl --no-progress-meter --parallel --parallel-max "$CONC" -K "$cfg" | grep -c '^201$')
	end=$(date +%s.%N)
	[ "$ok" = "$TLS_N" ] || echo "WARNING: TLS: $ok of $TLS_N were 201" >&2
	awk -v n="$ok" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", n / (e - s)}'
}
# cpu_per TICKS REQUESTS: CPU time a request, in microseconds.
cpu_per() {
	awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f µs", n ? t / hz * 1e6 / n : 0}'
}
stop_haproxy() {
	kill "$SCALE_HAPROXY_PID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$SCALE_HAPROXY_PID" 2>/dev/null || return 0; sleep 0.05; done
}

echo "bench/scale.sh: $(nproc) cores, each host held to $QUOTA % of one; $CONC connections," \
	"${DURATION} s x $ROUNDS rounds (median); $(date -u '+%Y-%m-%d %H:%M UTC')"
direct_rps=$(rps "$(scale_host_address 1)" "$SCALE_PORT")
# The quota held: host 1's cgroup was throttled.
throttled=$(awk '$1 == "nr_throttled" {print $2}' "${SCALE_CGROUPS[0]}/cpu.stat")
[ "${throttled:-0}" -gt 0 ] || echo "WARNING: host 1 never throttled: is its quota in force?" >&2
direct_p50=$(p50 "$(scale_host_address 1)" "$SCALE_PORT")
echo
echo "| hosts | req/s, HTTP to HAProxy | HAProxy CPU a request | req/s, TLS (curl) | HAProxy CPU a request, TLS |"
echo "|---:|---:|---:|---:|---:|"
for n in 1 2 3; do
	scale_haproxy_cfg "$n" || die "haproxy.cfg"
	sed -i "s|^	bind :443 ssl .*|&\n	bind :80|" "$SCALE_DIR/haproxy.cfg"
	scale_start_haproxy "$n" || die "HAProxy with $n hosts: $(tail -n 3 "$SCALE_DIR/haproxy.log")"
	[ "$n" = 1 ] && via_p50=$(p50 "$SCALE_EDGE" 80)
	t0=$(worker_ticks)
	s0=$(scale_show_stat | awk -F, '$1 == "lso" && $2 == "FRONTEND" {print $8}')
	http=$(rps "$SCALE_EDGE" 80)
	s1=$(scale_show_stat | awk -F, '$1 == "lso" && $2 == "FRONTEND" {print $8}')
	t1=$(worker_ticks)
	tls=$(tls_rps)
	s2=$(scale_show_stat | awk -F, '$1 == "lso" && $2 == "FRONTEND" {print $8}')
	t2=$(worker_ticks)
	echo "| $n | $http | $(cpu_per "$((t1 - t0))" "$((s1 - s0))") | $tls | $(cpu_per "$((t2 - t1))" "$((s2 - s1))") |"
	stop_haproxy
done
echo
echo "one host direct, no HAProxy: $direct_rps req/s at $CONC connections; p50 at one connection:" \
	"$direct_p50 ms direct, $via_p50 ms through HAProxy (HTTP)"
