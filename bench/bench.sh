#!/usr/bin/env bash
# bench/bench.sh: measure lso against a floor and against webhook. See bench/README.md.
#
# Run from anywhere (make bench runs it from the repo root after building ./lso).
# Knobs (environment): BENCH_ROUNDS, BENCH_N, BENCH_CONC, BENCH_TPUT_N, BENCH_RSS_N,
# BENCH_WARMUP, BENCH_TIMEOUT, BENCH_MAX_SECONDS, BENCH_LSO, BENCH_ALLOW_MISSING_LSO, CC.
# Everything it starts listens on 127.0.0.1 only and is killed on exit; its temp dir is removed.
set -eu -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

ROUNDS=${BENCH_ROUNDS:-40}        # interleaved rounds
N=${BENCH_N:-20}                  # sequential requests per subject per round
CONC=${BENCH_CONC:-"1 8 32"}      # concurrency levels for req/s
TPUT_N=${BENCH_TPUT_N:-}          # requests per throughput batch (default: max(N, 8*conc))
RSS_N=${BENCH_RSS_N:-5}           # requests in the peak-RSS pass
WARMUP=${BENCH_WARMUP:-5}         # unmeasured requests per subject before measuring
TIMEOUT=${BENCH_TIMEOUT:-5}       # seconds before one request counts as failed
MAX_SECONDS=${BENCH_MAX_SECONDS:-900}  # no new round starts after this
LSO=${BENCH_LSO:-$REPO/lso}
CC=${CC:-cc}

PENDING=0 # a progress line without its newline is on the terminal
say() {
	if [ "$PENDING" = 1 ]; then echo >&2; PENDING=0; fi
	echo "bench: $*" >&2
}
die() { say "$*"; exit 1; }
progress() {
	if [ -t 2 ]; then printf '\rbench: %s' "$*" >&2; PENDING=1; else echo "bench: $*" >&2; fi
}

isnum() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in ROUNDS N RSS_N WARMUP TIMEOUT MAX_SECONDS; do
	isnum "${!v}" || die "BENCH_$v must be a positive integer (got '${!v}')"
done
[ -z "$TPUT_N" ] || isnum "$TPUT_N" || die "BENCH_TPUT_N must be a positive integer"
for c in $CONC; do isnum "$c" || die "BENCH_CONC must hold positive integers (got '$CONC')"; done
[ -n "${CONC// /}" ] || die "BENCH_CONC is empty"

command -v systemd-socket-activate >/dev/null ||
	die "systemd-socket-activate not found (Debian package: systemd)"

WITH_LSO=1
if [ ! -x "$LSO" ]; then
	if [ "${BENCH_ALLOW_MISSING_LSO:-0}" = 1 ]; then
		say "$LSO is missing: skipping the lso subjects (BENCH_ALLOW_MISSING_LSO=1)"
		WITH_LSO=0
	else
		die "$LSO is missing: run 'make' first (or set BENCH_ALLOW_MISSING_LSO=1 to bench the rest)"
	fi
fi

WEBHOOK=$(command -v webhook || true)
if [ -z "$WEBHOOK" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	say "installing Debian's webhook package"
	{ apt-get install -y -q webhook || { apt-get update -q && apt-get install -y -q webhook; }; } >/dev/null 2>&1 || true
	WEBHOOK=$(command -v webhook || true)
fi
[ -n "$WEBHOOK" ] || say "webhook not found (apt-get install webhook): skipping it"

# ---------------------------------------------------------------- temp dir, cleanup
T=$(mktemp -d "${TMPDIR:-/tmp}/lso-bench.XXXXXX")
BG=() # pids of what we started in the background

descendants() { # pid -> its descendants' pids, depth first
	local c
	# shellcheck disable=SC2013 # the children files hold space-separated pids
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}

stop_tree() { # pid: TERM it and all its descendants, KILL what is left after ~2 s
	local pid=$1 all i p
	all="$(descendants "$pid") $pid"
	for p in $all; do kill -TERM "$p" 2>/dev/null || true; done
	for i in $(seq 40); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
	wait "$pid" 2>/dev/null || true
	# forget it: once waited for, its pid may be reused by a process that is not ours
	local keep=()
	for p in "${BG[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	BG=("${keep[@]}")
}

# shellcheck disable=SC2317 # called from the trap
cleanup() {
	trap - EXIT INT TERM HUP
	local p
	for p in "${BG[@]}"; do stop_tree "$p"; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'say interrupted; exit 130' INT
trap 'say terminated; exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------- build
B=$T/build
mkdir -p "$B"
CFLAGS=(-O2 -Wall -Wextra)
$CC "${CFLAGS[@]}" -o "$B/floor" bench/floor.c || die "cannot build bench/floor.c"
$CC "${CFLAGS[@]}" -pthread -o "$B/load" bench/load.c || die "cannot build bench/load.c"
$CC "${CFLAGS[@]}" -o "$B/wrap" bench/wrap.c || die "cannot build bench/wrap.c"

# ---------------------------------------------------------------- programs root, state dir
ROOT=$T/root
STATE=$T/state
mkdir -p "$ROOT" "$STATE"
printf '#!/bin/sh\necho hello\n' >"$ROOT/hello"
chmod 755 "$ROOT/hello"

# ---------------------------------------------------------------- subjects
# id -> label, kind (sa | webhook), floor id, request
declare -A LABEL FLOOR_OF PORT SAPID REAPPID BROKEN SENT FAILED DEAD
SUBJ=(floor noexec)
LABEL[floor]=floor
LABEL[noexec]=floor-noexec
if [ $WITH_LSO = 1 ]; then
	SUBJ+=(lsosync lsoasync lsoversion)
	LABEL[lsosync]="lso sync"
	LABEL[lsoasync]="lso async"
	LABEL[lsoversion]="lso version"
	FLOOR_OF[lsosync]=floor
	FLOOR_OF[lsoasync]=noexec
	FLOOR_OF[lsoversion]=noexec
fi
if [ -n "$WEBHOOK" ]; then
	SUBJ+=(webhook)
	LABEL[webhook]=webhook
	FLOOR_OF[webhook]=floor
fi

sa_cmd() { # id -> the per-connection command, one word per line
	case $1 in
	floor) printf '%s\n' "$B/floor" "$ROOT/hello" ;;
	noexec) printf '%s\n' "$B/floor" -n ;;
	lso*) printf '%s\n' "$LSO" ;;
	esac
}

SYNC_BODY='{"executable_name":"hello","args":[],"is_async":false}'
ASYNC_BODY='{"executable_name":"hello","args":[]}'
post_req() { # path port body
	printf 'POST %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
		"$1" "$2" "${#3}" "$3"
}
write_req() { # id
	local id=$1 p=${PORT[$1]}
	case $id in
	floor | lsosync) post_req /api/execute/ "$p" "$SYNC_BODY" ;;
	noexec | lsoasync) post_req /api/execute/ "$p" "$ASYNC_BODY" ;;
	lsoversion) printf 'GET /api/version HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$p" ;;
	webhook) post_req /hooks/hello "$p" "$SYNC_BODY" ;;
	esac >"$T/req.$id"
}

# ---------------------------------------------------------------- ports and processes
port_listening() { # port: is something listening on it (any address)?
	local hex
	hex=$(printf '%04X' "$1")
	grep -Eq "^ *[0-9]+: [0-9A-F]+:$hex [0-9A-F]+:[0-9A-F]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
USED_PORTS=" "
pick_port() {
	local i p
	for i in $(seq 200); do
		p=$((20000 + RANDOM % 12000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		port_listening "$p" && continue
		USED_PORTS+="$p "
		echo "$p"
		return 0
	done
	return 1
}
wait_listen() { # port pid
	local i
	for i in $(seq 100); do
		port_listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# The async subject measures a submission, not the queue's bound: 8 clients submit
# faster than the slots run the jobs, and past LSO_MAX_QUEUED's default (64) they
# would time 503s. The bound at its highest keeps every submission a 201.
QUEUE_MAX=65536

# start_sa id pidfile-suffix cmd...: systemd-socket-activate under a reaper, on a fresh port.
# Sets STARTED_PORT, STARTED_REAP, STARTED_SA.
start_sa() {
	local id=$1 tag=$2 port w _
	shift 2
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$(pick_port) || return 1
		rm -f "$T/pid.$id.$tag"
		"$B/wrap" reap "$T/pid.$id.$tag" systemd-socket-activate -a --inetd -l "127.0.0.1:$port" \
			-E "EXECUTABLES_ROOT_DIR=$ROOT" -E "LSO_STATE_DIR=$STATE" -E "LSO_MAX_QUEUED=$QUEUE_MAX" "$@" \
			</dev/null >/dev/null 2>&1 &
		w=$!
		BG+=("$w")
		if wait_listen "$port" "$w" && [ -s "$T/pid.$id.$tag" ]; then
			STARTED_PORT=$port
			STARTED_REAP=$w
			STARTED_SA=$(<"$T/pid.$id.$tag")
			return 0
		fi
		stop_tree "$w"
	done
	return 1
}

start_webhook() {
	local port w _
	cat >"$T/hooks.json" <<EOF
[{"id": "hello", "execute-command": "$ROOT/hello", "command-working-directory": "$ROOT",
  "include-command-output-in-response": true}]
EOF
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$(pick_port) || return 1
		"$WEBHOOK" -hooks "$T/hooks.json" -ip 127.0.0.1 -port "$port" -http-methods POST \
			</dev/null >/dev/null 2>&1 &
		w=$!
		BG+=("$w")
		if wait_listen "$port" "$w"; then
			PORT[webhook]=$port
			SAPID[webhook]=$w
			return 0
		fi
		stop_tree "$w"
	done
	return 1
}

stat_fields() { # pid -> "utime stime cutime cstime" in clock ticks
	local s f
	s=$(<"/proc/$1/stat") || return 1
	s=${s##*) }
	read -r -a f <<<"$s"
	echo "${f[11]} ${f[12]} ${f[13]} ${f[14]}"
}
cpu_ticks() { # id -> ticks charged to the subject so far
	local u s cu cs
	read -r u s cu cs < <(stat_fields "${SAPID[$1]}")
	if [ "$1" = webhook ]; then echo $((u + s + cu + cs)); else echo $((cu + cs)); fi
}
job_ticks() { # id -> ticks of detached jobs reaped by the subject's reaper
	local u s cu cs
	[ -n "${REAPPID[$1]:-}" ] || { echo 0; return; }
	read -r u s cu cs < <(stat_fields "${REAPPID[$1]}")
	echo $((cu + cs))
}
vm_kib() { # pid field(VmRSS|VmHWM)
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}
settle() { # id: wait (≤ 5 s) until the subject's launcher and reaper have no child left
	local i k p
	for i in $(seq 100); do
		k=$(cat /proc/"${SAPID[$1]}"/task/*/children 2>/dev/null || true)
		if [ -n "${REAPPID[$1]:-}" ]; then
			for p in $(cat /proc/"${REAPPID[$1]}"/task/*/children 2>/dev/null || true); do
				[ "$p" = "${SAPID[$1]}" ] || k+=" $p"
			done
		fi
		if [ -z "${k// /}" ]; then return 0; fi
		sleep 0.05
	done
}

# ---------------------------------------------------------------- start everything
for id in "${SUBJ[@]}"; do
	if [ "$id" = webhook ]; then
		start_webhook || die "cannot start webhook"
	else
		mapfile -t cmd < <(sa_cmd "$id")
		start_sa "$id" main "${cmd[@]}" || die "cannot start ${LABEL[$id]}"
		PORT[$id]=$STARTED_PORT
		SAPID[$id]=$STARTED_SA
		REAPPID[$id]=$STARTED_REAP
	fi
	write_req "$id"
	: >"$T/lat.$id"
	: >"$T/runs.$id"
done

# run_load id n conc record(0|1|2): one batch of n requests at concurrency conc.
# record >= 1 appends "conc n failures wall" to runs.ID; record 2 also appends the latencies to lat.ID.
run_load() {
	local id=$1 n=$2 c=$3 rec=$4 out f w
	local lat=()
	if [ "$rec" = 2 ]; then lat=(-o "$T/lat.$id"); fi
	# not in $(...): a non-interactive bash may not act on ^C that kills a command substitution
	if "$B/load" -t "$TIMEOUT" "${lat[@]}" 127.0.0.1 "${PORT[$id]}" "$T/req.$id" "$n" "$c" \
		>"$T/load.out" 2>"$T/load.err"; then
		out=$(<"$T/load.out")
	else
		out="count=$n failures=$n wall_s=0"
	fi
	if [ -s "$T/load.err" ]; then say "${LABEL[$id]} @$c: $(<"$T/load.err")"; fi
	[[ $out =~ failures=([0-9]+).*wall_s=([0-9.]+) ]] || die "cannot parse load output: $out"
	f=${BASH_REMATCH[1]}
	w=${BASH_REMATCH[2]}
	SENT[$id]=$((${SENT[$id]:-0} + n))
	FAILED[$id]=$((${FAILED[$id]:-0} + f))
	if [ "$rec" != 0 ]; then echo "$c $n $f $w" >>"$T/runs.$id"; fi
	# a subject whose warm-up fails, or whose last 3 batches all failed whole, gets no more requests
	if [ "$f" = "$n" ]; then
		DEAD[$id]=$((${DEAD[$id]:-0} + 1))
		if [ -z "${BROKEN[$id]:-}" ] && { [ "$rec" = 0 ] || [ "${DEAD[$id]}" -ge 3 ]; }; then
			BROKEN[$id]=1
			say "${LABEL[$id]}: every request of ${DEAD[$id]} batch(es) in a row failed; not sending it more"
		fi
	else
		DEAD[$id]=0
	fi
	return 0
}

tput_n() { # conc -> batch size
	local c=$1 n
	if [ -n "$TPUT_N" ]; then echo "$TPUT_N"; return; fi
	n=$((8 * c))
	if [ "$n" -lt "$N" ]; then n=$N; fi
	echo "$n"
}

say "subjects: $(for id in "${SUBJ[@]}"; do printf '%s (:%s) ' "${LABEL[$id]}" "${PORT[$id]}"; done)"
for id in "${SUBJ[@]}"; do run_load "$id" "$WARMUP" 1 0; done
sleep 0.2
declare -A CPU0 JOB0
for id in "${SUBJ[@]}"; do
	CPU0[$id]=$(cpu_ticks "$id")
	JOB0[$id]=$(job_ticks "$id")
done

# ---------------------------------------------------------------- measured rounds, interleaved
start=$SECONDS
nsub=${#SUBJ[@]}
done_rounds=0
for r in $(seq 0 $((ROUNDS - 1))); do
	if [ $((SECONDS - start)) -ge "$MAX_SECONDS" ]; then
		say "BENCH_MAX_SECONDS=$MAX_SECONDS reached: stopping after $done_rounds rounds"
		break
	fi
	order=()
	for i in $(seq 0 $((nsub - 1))); do order+=("${SUBJ[$(((r + i) % nsub))]}"); done
	# sequential latency (also the req/s @1 sample)
	for id in "${order[@]}"; do
		[ -n "${BROKEN[$id]:-}" ] || run_load "$id" "$N" 1 2
	done
	for c in $CONC; do
		[ "$c" = 1 ] && continue
		n=$(tput_n "$c")
		for id in "${order[@]}"; do
			[ -n "${BROKEN[$id]:-}" ] || run_load "$id" "$n" "$c" 1
		done
	done
	done_rounds=$((r + 1))
	progress "round $done_rounds/$ROUNDS done ($((SECONDS - start)) s)"
done
if [ "$PENDING" = 1 ]; then echo >&2; PENDING=0; fi
measured_s=$((SECONDS - start))

TCK=$(getconf CLK_TCK)
declare -A CPUMS JOBMS IDLE PEAK
for id in "${SUBJ[@]}"; do settle "$id"; done
for id in "${SUBJ[@]}"; do
	reqs=$(awk '{s += $2} END {print s + 0}' "$T/runs.$id")
	d=$(($(cpu_ticks "$id") - CPU0[$id]))
	dj=$(($(job_ticks "$id") - JOB0[$id]))
	if [ "$reqs" -gt 0 ]; then
		CPUMS[$id]=$(awk -v d="$d" -v t="$TCK" -v n="$reqs" 'BEGIN {printf "%.3f", d * 1000 / t / n}')
		JOBMS[$id]=$(awk -v d="$dj" -v t="$TCK" -v n="$reqs" 'BEGIN {printf "%.3f", d * 1000 / t / n}')
	fi
done

# idle memory
LAUNCHER_KIB=0
for id in "${SUBJ[@]}"; do
	if [ "$id" = webhook ]; then
		sleep 1
		IDLE[$id]=$(vm_kib "${SAPID[$id]}" VmRSS)
		PEAK[$id]=$(vm_kib "${SAPID[$id]}" VmHWM)
	else
		IDLE[$id]=0
		k=$(vm_kib "${SAPID[$id]}" VmRSS)
		if [ "$k" -gt "$LAUNCHER_KIB" ]; then LAUNCHER_KIB=$k; fi
	fi
done

# stop the measured servers before the unmeasured peak-RSS pass
for id in "${SUBJ[@]}"; do
	if [ -n "${REAPPID[$id]:-}" ]; then stop_tree "${REAPPID[$id]}"; else stop_tree "${SAPID[$id]}"; fi
done

# ---------------------------------------------------------------- peak RSS pass (unmeasured)
RSS_NOTE=""
for id in "${SUBJ[@]}"; do
	[ "$id" = webhook ] && continue
	mapfile -t cmd < <(sa_cmd "$id")
	: >"$T/rss.$id"
	if start_sa "$id" rss "$B/wrap" rss "$T/rss.$id" "${cmd[@]}"; then
		PORT[$id]=$STARTED_PORT
		write_req "$id"
		"$B/load" -t "$TIMEOUT" 127.0.0.1 "$STARTED_PORT" "$T/req.$id" "$RSS_N" 1 >/dev/null || true
		for i in $(seq 40); do
			[ "$(wc -l <"$T/rss.$id")" -ge "$RSS_N" ] && break
			sleep 0.05
		done
		stop_tree "$STARTED_REAP"
	fi
	PEAK[$id]=$(awk '$1 > m {m = $1} END {print m + 0}' "$T/rss.$id")
	if grep -q rusage "$T/rss.$id"; then
		PEAK[$id]="${PEAK[$id]}*"
		RSS_NOTE="* ptrace refused: ru_maxrss of the process and the children it reaped."
	fi
done

# ---------------------------------------------------------------- report
declare -A P50 P99
for id in "${SUBJ[@]}"; do
	read -r "P50[$id]" "P99[$id]" < <(sort -n "$T/lat.$id" | awk '
		function rank(p,  k) { k = int(p * NR); if (k < p * NR) k++; if (k < 1) k = 1; return k }
		{ v[NR] = $1 }
		END { if (NR == 0) print "nan nan"; else print v[rank(0.50)], v[rank(0.99)] }')
done

fmt_ms() { awk -v v="$1" 'BEGIN { if (v == "nan") print "n/a"; else printf "%.2f", v / 1000 }'; }
ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
rps() { # id conc
	awk -v c="$2" '$1 == c {ok += $2 - $3; w += $4} END { if (w > 0) printf "%.0f", ok / w; else print "n/a" }' "$T/runs.$1"
}

echo
echo "## lso benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -sr); $done_rounds interleaved rounds of" \
	"$N sequential requests per subject, req/s batches of$(for c in $CONC; do [ "$c" = 1 ] || printf ' %s@%s' "$(tput_n "$c")" "$c"; done)" \
	"requests; ${measured_s}s measured; new TCP connection per request; latency = connect to EOF."
echo
hdr="| subject | p50 ms | p99 ms |"
sep="|---|---:|---:|"
for c in $CONC; do hdr+=" req/s @$c |"; sep+="---:|"; done
hdr+=" CPU ms/req | peak RSS KiB | idle RSS KiB | p50 ×floor | CPU ×floor | failures |"
sep+="---:|---:|---:|---:|---:|---:|"
echo "$hdr"
echo "$sep"
for id in "${SUBJ[@]}"; do
	row="| ${LABEL[$id]} | $(fmt_ms "${P50[$id]}") | $(fmt_ms "${P99[$id]}") |"
	for c in $CONC; do row+=" $(rps "$id" "$c") |"; done
	f=${FLOOR_OF[$id]:-}
	if [ -n "$f" ]; then
		rp=$(ratio "${P50[$id]}" "${P50[$f]}")
		rc=$(ratio "${CPUMS[$id]:-}" "${CPUMS[$f]:-}")
	else
		rp="—"
		rc="—"
	fi
	row+=" ${CPUMS[$id]:-n/a} | ${PEAK[$id]:-n/a} | ${IDLE[$id]} | $rp | $rc | ${FAILED[$id]:-0}/${SENT[$id]:-0} |"
	echo "$row"
done
echo
echo "Floors: lso sync and webhook against floor (runs the program); lso async and lso version against floor-noexec."
echo "Idle RSS 0: nothing of a socket-activated server stays resident; the launcher holding the socket" \
	"(systemd-socket-activate here, PID 1 in production) has ${LAUNCHER_KIB} KiB resident."
echo "CPU ms/req: the per-connection processes (the launcher's cutime+cstime); webhook: all of its process."
if [ $WITH_LSO = 1 ]; then
	echo "lso async: its detached job (reaped by the bench's subreaper) used ${JOBMS[lsoasync]:-n/a} ms/req more, not in the table."
fi
[ -n "$RSS_NOTE" ] && echo "$RSS_NOTE"
status=0
for id in "${SUBJ[@]}"; do
	if [ "${FAILED[$id]:-0}" != 0 ]; then
		echo "WARNING: ${LABEL[$id]}: ${FAILED[$id]} of ${SENT[$id]} requests failed (warm-up included)."
		case $id in floor | noexec) status=1 ;; esac
	fi
done
echo
if [ $WITH_LSO = 1 ]; then
	echo "lso/floor sync p50 ratio: $(ratio "${P50[lsosync]}" "${P50[floor]}")"
else
	echo "lso/floor sync p50 ratio: n/a"
fi
exit $status
