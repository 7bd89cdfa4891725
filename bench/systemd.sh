#!/usr/bin/env bash
# bench/systemd.sh: lso as deployed, under a real systemd. See bench/README.md.
#
# Boots a box (tests/systemd/box: systemd as PID 1 in systemd-nspawn, over this machine's
# / with a tmpfs overlay, loopback only), installs lso there with `make install` as a
# packager does, and measures, interleaved round by round in one run:
#   floor@       a bare Accept=yes floor: bench/floor.c per connection, no sandbox
#   lso@         lso.socket + lso@.service as shipped (one instance per connection)
#   lso-burst    lso-burst.socket + lso-burst.service as shipped (burst mode)
#   webhook      adnanh/webhook (Debian's package) as a resident unit
#   resident     the resident floor (bench/resident.c): accepts itself, forks only the program
# every one running the same `hello` program per request, a sync run for lso. Per subject:
# sequential p50/p99 (one connection at a time) and req/s at 1, 8 and 32 connections
# (bench/load.c, inside the box), the box's CPU time per request at 8 connections (its
# services' cgroup: the subject, PID 1 and journald; not the load client), then the ratios
# within the run and the idle check
# (after LSO_IDLE_EXIT_SEC as shipped: lso processes left, their resident memory).
# lso.socket and lso-burst.socket share an address, as shipped; the bench switches
# between them (systemctl start, which stops the other) before each lso subject's turn,
# then warms it up.
#
# With BENCH_SANDBOX=1 it also measures what each option of lso@.service's sandbox costs
# per connection: lso in an Accept=yes unit with that option alone, against the same unit
# with none and with all of them (sequential p50), interleaved.
#
# Knobs (environment): BENCH_ROUNDS (8), BENCH_N (40 sequential requests per subject and
# round), BENCH_CONC ("1 8 32"), BENCH_WARMUP (5), BENCH_TIMEOUT (30 s per request),
# BENCH_SANDBOX (0), BENCH_SANDBOX_N (40), LSO_BOX_NAME (lso-bench-systemd), CC.
# Root only. Leaves nothing running: the box is powered off at the end.
set -eu -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
BOX="$REPO/tests/systemd/box"
export LSO_BOX_NAME=${LSO_BOX_NAME:-lso-bench-systemd}
ROUNDS=${BENCH_ROUNDS:-8}
N=${BENCH_N:-40}
CONC=${BENCH_CONC:-"1 8 32"}
WARMUP=${BENCH_WARMUP:-5}
TIMEOUT=${BENCH_TIMEOUT:-30}
SANDBOX=${BENCH_SANDBOX:-0}
SANDBOX_N=${BENCH_SANDBOX_N:-40}
CC=${CC:-cc}

say() { echo "bench-systemd: $*" >&2; }
die() { say "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it boots a container)"
for v in ROUNDS N WARMUP TIMEOUT SANDBOX_N; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$v must be a positive integer"
done
[ -x "$REPO/lso" ] || die "$REPO/lso is missing: run make first"

T=$(mktemp -d /tmp/lso-bench-systemd.XXXXXX)
box_up=0
cleanup() {
	[ "$box_up" = 0 ] || "$BOX" down >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# webhook on this machine before the box boots: the box's root is an overlay of ours.
if ! command -v webhook >/dev/null && command -v apt-get >/dev/null; then
	say "installing Debian's webhook package"
	{ apt-get install -y -q webhook || { apt-get update -q && apt-get install -y -q webhook; }; } \
		>"$T/apt.log" 2>&1 || true
fi
command -v webhook >/dev/null || die "webhook is not installed (apt-get install webhook)"

bx() { "$BOX" exec "$@"; }

# ---------------------------------------------------------------- build, boot, install
mkdir -p "$T/bin"
$CC -O2 -Wall -Wextra -o "$T/bin/floor" bench/floor.c
$CC -O2 -Wall -Wextra -pthread -o "$T/bin/resident" bench/resident.c
$CC -O2 -Wall -Wextra -pthread -o "$T/bin/load" bench/load.c
printf '#!/bin/sh\necho hello\n' >"$T/bin/hello"
chmod 755 "$T/bin/hello"
make -C "$REPO" install DESTDIR="$T/stage" PREFIX=/usr/local >"$T/install.log" 2>&1 ||
	die "make install failed: $(tail -n 5 "$T/install.log")"

"$BOX" down >/dev/null 2>&1 || true
box_up=1
"$BOX" up || die "cannot boot the box"
(cd "$T/stage" && tar -cf - -- *) |
	bx tar -xf - --keep-directory-symlink --no-overwrite-dir --no-same-owner -C /
tar -C "$T" -cf - bin | bx sh -c 'mkdir -p /srv/bench && tar -xf - -C /srv/bench'
bx sh -c 'mkdir -p /srv/bench/root && cp /srv/bench/bin/hello /srv/bench/root/hello'
bx sh -c 'cat >/etc/lso/lso.env' <<'EOF'
EXECUTABLES_ROOT_DIR=/srv/bench/root
EOF

# Ports: lso's as shipped, the others beside it.
P_LSO=44444 P_FLOOR=44451 P_WEBHOOK=44452 P_RESIDENT=44453
unit() { bx sh -c "cat >/etc/systemd/system/$1"; }
unit bench-floor.socket <<EOF
[Socket]
ListenStream=127.0.0.1:$P_FLOOR
Accept=yes
MaxConnections=64
NoDelay=true
TriggerLimitIntervalSec=0
EOF
unit bench-floor@.service <<'EOF'
[Service]
ExecStart=/srv/bench/bin/floor /srv/bench/root/hello
StandardInput=socket
StandardOutput=socket
StandardError=journal
EOF
bx sh -c 'cat >/srv/bench/hooks.json' <<'EOF'
[{"id": "hello", "execute-command": "/srv/bench/root/hello", "command-working-directory": "/srv/bench/root",
  "include-command-output-in-response": true}]
EOF
unit bench-webhook.service <<EOF
[Service]
ExecStart=/usr/bin/webhook -hooks /srv/bench/hooks.json -ip 127.0.0.1 -port $P_WEBHOOK -http-methods POST
EOF
unit bench-resident.socket <<EOF
[Socket]
ListenStream=127.0.0.1:$P_RESIDENT
Accept=no
NoDelay=true
EOF
unit bench-resident.service <<'EOF'
[Service]
ExecStart=/srv/bench/bin/resident /srv/bench/root/hello
EOF
bx systemctl daemon-reload
bx systemctl start lso.socket bench-floor.socket bench-webhook.service bench-resident.socket
for _ in $(seq 100); do
	bx sh -c "exec 3<>/dev/tcp/127.0.0.1/$P_WEBHOOK" 2>/dev/null && break
	sleep 0.1
done

# ---------------------------------------------------------------- requests
SUBJ=(floor lsoat burst webhook resident)
declare -A LABEL PORTOF
LABEL=([floor]="bare Accept=yes floor" [lsoat]="lso@.service as shipped" [burst]="lso-burst.service as shipped"
	[webhook]="webhook, resident unit" [resident]="resident floor")
PORTOF=([floor]=$P_FLOOR [lsoat]=$P_LSO [burst]=$P_LSO [webhook]=$P_WEBHOOK [resident]=$P_RESIDENT)
SYNC='{"executable_name":"hello","args":[],"is_async":false}'
post() { # path port
	printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$1" "$2" "${#SYNC}" "$SYNC"
}
for id in "${SUBJ[@]}"; do
	case $id in
	webhook) post /hooks/hello "${PORTOF[$id]}" ;;
	*) post /api/execute/ "${PORTOF[$id]}" ;;
	esac | bx sh -c "cat >/srv/bench/req.$id"
	: >"$T/lat.$id"
	: >"$T/runs.$id"
done

# Before an lso subject's turn, its socket (the two share 127.0.0.1:44444).
switch_to() {
	case $1 in
	lsoat) bx systemctl start lso.socket ;;
	burst) bx systemctl start lso-burst.socket ;;
	esac
}

# The CPU time the box's services used, in µs (the box's cgroup as seen from here; the load
# client runs in the box's namespaces but not in its cgroup, so it is not counted): all of
# them, and systemd's own part (PID 1 and journald), which grows with units and log lines.
CG=
for d in "/sys/fs/cgroup/unified/lso-box-$LSO_BOX_NAME/payload" "/sys/fs/cgroup/lso-box-$LSO_BOX_NAME/payload"; do
	[ -r "$d/cpu.stat" ] && CG=$d && break
done
[ -n "$CG" ] || die "cannot find the box's cgroup (cpu.stat) under /sys/fs/cgroup"
usec() { awk '/^usage_usec/ { print $2 }' "$CG/${1-}cpu.stat" 2>/dev/null || echo 0; }
cpu_now() { echo "$(usec) $(( $(usec init.scope/) + $(usec system.slice/systemd-journald.service/) ))"; }

# load ID N CONC RECORD: one batch; RECORD=2 keeps the latencies, 1 the batch, 0 nothing.
FAILURES=0
load() {
	local id=$1 n=$2 c=$3 rec=$4 out lat=() cpu0 cpu1
	[ "$rec" = 2 ] && lat=(-o "/srv/bench/lat.$id")
	read -r -a cpu0 < <(cpu_now)
	out=$(bx /srv/bench/bin/load -t "$TIMEOUT" "${lat[@]}" 127.0.0.1 "${PORTOF[$id]}" \
		"/srv/bench/req.$id" "$n" "$c" 2>"$T/load.err") || out="count=$n failures=$n wall_s=0"
	read -r -a cpu1 < <(cpu_now)
	[ -s "$T/load.err" ] && say "${LABEL[$id]} @$c: $(cat "$T/load.err")"
	[[ $out =~ failures=([0-9]+).*wall_s=([0-9.]+) ]] || die "cannot parse: $out"
	[ "$rec" = 0 ] || echo "$c $n ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}" \
		"$((cpu1[0] - cpu0[0])) $((cpu1[1] - cpu0[1]))" >>"$T/runs.$id"
	[ "$rec" = 0 ] || FAILURES=$((FAILURES + BASH_REMATCH[1]))
}

tput_n() { local n=$((8 * $1)); [ "$n" -ge "$N" ] || n=$N; echo "$n"; }

say "$ROUNDS rounds of ${SUBJ[*]}"
start=$SECONDS
for r in $(seq 0 $((ROUNDS - 1))); do
	for i in $(seq 0 $((${#SUBJ[@]} - 1))); do
		id=${SUBJ[$(((r + i) % ${#SUBJ[@]}))]}
		switch_to "$id"
		load "$id" "$WARMUP" 1 0
		load "$id" "$N" 1 2
		for c in $CONC; do
			[ "$c" = 1 ] || load "$id" "$(tput_n "$c")" "$c" 1
		done
	done
	say "round $((r + 1))/$ROUNDS done ($((SECONDS - start)) s)"
done
measured=$((SECONDS - start))
for id in "${SUBJ[@]}"; do bx cat "/srv/bench/lat.$id" >"$T/lat.$id"; done

# ---------------------------------------------------------------- idle check
idle_sec=$(bx sh -c '. /etc/lso/lso.env; echo "${LSO_IDLE_EXIT_SEC:-30}"')
switch_to burst
load burst 1 1 0
before=$(bx pgrep -c -x lso || true)
t0=$SECONDS
while [ "$(bx systemctl show -p ActiveState --value lso-burst.service)" = active ] &&
	[ $((SECONDS - t0)) -lt $((${idle_sec%.*} + 30)) ]; do sleep 0.5; done
idle_after=$((SECONDS - t0))
sleep 1
left=$(bx pgrep -c -x lso || true)
left_kib=$(bx sh -c 'for p in $(pgrep -x lso); do awk "/^VmRSS:/ {print \$2}" /proc/$p/status; done' |
	awk '{s += $1} END {print s + 0}')
rss_of() { bx sh -c "awk '/^VmRSS:/ {print \$2}' /proc/\$(systemctl show -p MainPID --value $1)/status"; }
webhook_kib=$(rss_of bench-webhook.service)
resident_kib=$(rss_of bench-resident.service)

# ---------------------------------------------------------------- sandbox options (optional)
# Each option of lso@.service's [Service] sandbox alone, in an Accept=yes unit running lso.
SANDBOX_OPTS=()
if [ "$SANDBOX" = 1 ]; then
	mapfile -t SANDBOX_OPTS < <(sed -n '/^# Hardening/,$p' "$REPO/lso@.service" | grep -E '^[A-Z][A-Za-z]+=' | grep -v '^UMask=')
	opt_unit() { # NAME PORT OPTION-LINES
		unit "bench-opt-$1.socket" <<-EOF
			[Socket]
			ListenStream=127.0.0.1:$2
			Accept=yes
			TriggerLimitIntervalSec=0
		EOF
		unit "bench-opt-$1@.service" <<-EOF
			[Service]
			ExecStart=/usr/local/bin/lso
			StandardInput=socket
			StandardOutput=socket
			StandardError=journal
			EnvironmentFile=-/etc/lso/lso.env
			StateDirectory=lso
			$3
		EOF
	}
	opt_unit none 44460 ""
	opt_unit all 44461 "$(printf '%s\n' "${SANDBOX_OPTS[@]}")"
	for k in "${!SANDBOX_OPTS[@]}"; do opt_unit "$k" $((44470 + k)) "${SANDBOX_OPTS[$k]}"; done
	bx systemctl daemon-reload
	OPT_IDS=(none all "${!SANDBOX_OPTS[@]}")
	for o in "${OPT_IDS[@]}"; do
		case $o in none) p=44460 ;; all) p=44461 ;; *) p=$((44470 + o)) ;; esac
		PORTOF[opt$o]=$p
		LABEL[opt$o]=opt$o
		bx systemctl start "bench-opt-$o.socket"
		post /api/execute/ "$p" | bx sh -c "cat >/srv/bench/req.opt$o"
		: >"$T/lat.opt$o"
		load "opt$o" "$WARMUP" 1 0
	done
	for r in $(seq 0 $((ROUNDS - 1))); do
		for i in $(seq 0 $((${#OPT_IDS[@]} - 1))); do
			o=${OPT_IDS[$(((r + i) % ${#OPT_IDS[@]}))]}
			load "opt$o" "$((SANDBOX_N / ROUNDS + 1))" 1 2
		done
	done
	for o in "${OPT_IDS[@]}"; do bx cat "/srv/bench/lat.opt$o" >"$T/lat.opt$o"; done
fi

# ---------------------------------------------------------------- report
pct() { # latfile p -> ms
	sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		k = int(p * NR); if (k < p * NR) k++; if (k < 1) k = 1; printf "%.2f", v[k] / 1000 }'
}
rps() { # id conc
	awk -v c="$2" '$1 == c {ok += $2 - $3; w += $4} END { if (w > 0) printf "%.0f", ok / w; else print "nan" }' "$T/runs.$1"
}
cpu_per_req() { # id conc -> "total (systemd's part)" µs of the box's CPU per request
	awk -v c="$2" '$1 == c {n += $2; t += $5; s += $6} END {
		if (n > 0) printf "%.0f (%.0f)", t / n, s / n; else print "nan" }' "$T/runs.$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
declare -A P50 P99
for id in "${SUBJ[@]}"; do P50[$id]=$(pct "$T/lat.$id" 0.50); P99[$id]=$(pct "$T/lat.$id" 0.99); done

echo
echo "## lso under a real systemd"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr), $(bx systemctl --version | head -n 1);" \
	"$ROUNDS interleaved rounds, each: $WARMUP warm-up requests, $N sequential, then batches of" \
	"$(for c in $CONC; do [ "$c" = 1 ] || printf '%s@%s ' "$(tput_n "$c")" "$c"; done)per subject;" \
	"${measured}s measured; a sync run of a \`hello\` shell script per request, a new TCP connection each."
echo
hdr="| subject | p50 ms | p99 ms |"
sep="|---|---:|---:|"
for c in $CONC; do hdr+=" req/s @$c |"; sep+="---:|"; done
echo "$hdr p50 ×webhook | req/s @8 ×webhook | CPU µs/req @8 (systemd's) |"
echo "$sep---:|---:|---:|"
for id in "${SUBJ[@]}"; do
	row="| ${LABEL[$id]} | ${P50[$id]} | ${P99[$id]} |"
	for c in $CONC; do row+=" $(rps "$id" "$c") |"; done
	row+=" $(ratio "${P50[$id]}" "${P50[webhook]}") | $(ratio "$(rps "$id" 8)" "$(rps webhook 8)") |"
	row+=" $(cpu_per_req "$id" 8) |"
	echo "$row"
done
echo
echo "lso-burst p50 / webhook p50: $(ratio "${P50[burst]}" "${P50[webhook]}") (target <= 1.0);" \
	"lso-burst req/s @8 / webhook: $(ratio "$(rps burst 8)" "$(rps webhook 8)") (target >= 1.0)."
echo "lso@ p50 / bare Accept=yes floor p50: $(ratio "${P50[lsoat]}" "${P50[floor]}");" \
	"lso-burst p50 / resident floor p50: $(ratio "${P50[burst]}" "${P50[resident]}")."
echo "Idle check: lso-burst.service ended ${idle_after} s after its last request (LSO_IDLE_EXIT_SEC=$idle_sec);" \
	"lso processes before: $before, after: $left, their resident memory: ${left_kib} KiB." \
	"Resident for comparison: webhook ${webhook_kib} KiB, resident floor ${resident_kib} KiB."
echo "Failures: $FAILURES."
if [ "$SANDBOX" = 1 ]; then
	echo
	echo "### lso@.service's sandbox, option by option (Accept=yes, lso, sequential p50 over $ROUNDS interleaved rounds)"
	echo
	echo "| option | p50 ms | over none, ms |"
	echo "|---|---:|---:|"
	none=$(pct "$T/lat.optnone" 0.50)
	echo "| none | $none | — |"
	for o in all "${!SANDBOX_OPTS[@]}"; do
		p=$(pct "$T/lat.opt$o" 0.50)
		name=$([ "$o" = all ] && echo "all of them (lso@.service)" || echo "\`${SANDBOX_OPTS[$o]}\`")
		echo "| $name | $p | $(awk -v a="$p" -v b="$none" 'BEGIN { printf "%+.2f", a - b }') |"
	done
fi
[ "$FAILURES" = 0 ] && [ "$left" = 0 ]
