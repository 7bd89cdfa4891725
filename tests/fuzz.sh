#!/usr/bin/env bash
# tests/fuzz.sh SECONDS: run each libFuzzer harness (tests/fuzz-http,
# tests/fuzz-request; built by make, not here) for SECONDS of wall time.
#
# Per harness: first every committed reproducer (tests/fuzz-corpus/<h>/crash-*)
# is replayed; one that still fails is a failure of this run. Then the harness
# fuzzes a scratch copy of the committed seeds (the repository is never
# written), with the dictionary, -timeout=5 and -rss_limit_mb=1024; a crash,
# leak, timeout or OOM is a failure and its reproducer path is printed. The
# invariant codes of reproducers that still fail are passed to the harness in
# LSO_FUZZ_IGNORE, so a known finding fails the run once and does not stop
# the search for new ones (set LSO_FUZZ_IGNORE yourself to add codes).
#
# Prints executions, exec/s, cov/ft and corpus size per harness; exits 1 on
# any failure, 2 on usage errors. KEEP_TMP=1 keeps the scratch directory.
set -u
cd "$(dirname "$0")/.." || exit 2

seconds=${1:-}
case $seconds in
'' | *[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;;
esac
harnesses=${FUZZ_HARNESSES:-"http request"}
dict=tests/fuzz-corpus/http.dict
for h in $harnesses; do
	if [ ! -x "tests/fuzz-$h" ]; then
		echo "tests/fuzz-$h is missing: run make tests/fuzz-$h first (make fuzz does)" >&2
		exit 2
	fi
done

TMP=$(mktemp -d /tmp/lso-fuzz.XXXXXX) || exit 2
failed=0
cleanup() {
	if [ "$failed" != 0 ] || [ -n "${KEEP_TMP:-}" ]; then
		echo "scratch directory kept: $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# UBSan only reports by default (the Makefile does not pass -fno-sanitize-recover).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# Longest input per harness: the HTTP reader needs > 64 KiB for 431.
max_len_of() {
	case $1 in
	http) echo 70000 ;;
	*) echo 16384 ;;
	esac
}

fail() {
	failed=1
	echo "FAIL: $*"
}

# Private copies of the binaries: a make clean during a long run cannot pull them away.
for h in $harnesses; do
	cp "tests/fuzz-$h" "$TMP/fuzz-$h" || exit 2
done

for h in $harnesses; do
	bin=$TMP/fuzz-$h
	seeds=tests/fuzz-corpus/$h
	dir=$TMP/$h
	mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/replay"
	ignore=${LSO_FUZZ_IGNORE:-}

	# 1. The committed reproducers.
	for repro in "$seeds"/crash-*; do
		[ -e "$repro" ] || continue
		log=$dir/replay/$(basename "$repro").log
		if TMPDIR=$dir "$bin" -runs=1 "$repro" >"$log" 2>&1; then
			echo "$h: reproducer $(basename "$repro"): passes now"
			continue
		fi
		code=$(sed -n 's/.*invariant broken \[\([a-z0-9-]*\)\].*/\1/p' "$log" | head -n 1)
		reason=$(grep -m 1 -E 'invariant broken|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$log")
		fail "$h: reproducer $repro still fails: ${reason:-see $log}"
		[ -n "$code" ] && ignore=${ignore:+$ignore,}$code
	done

	# 2. Fuzzing a scratch copy of the seeds.
	for seed in "$seeds"/*; do
		case $(basename "$seed") in crash-*) continue ;; esac
		cp "$seed" "$dir/corpus/"
	done
	[ -n "$ignore" ] && echo "$h: fuzzing past known findings: LSO_FUZZ_IGNORE=$ignore"
	echo "$h: fuzzing for ${seconds}s ($(ls "$dir/corpus" | wc -l) seeds)"
	LSO_FUZZ_IGNORE=$ignore TMPDIR=$dir "$bin" "$dir/corpus" -dict="$dict" \
		-max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
		-max_len="$(max_len_of "$h")" -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/" >"$dir/fuzz.log" 2>&1
	rc=$?

	# The last status line ("#N DONE cov: .. ft: .. corp: ..") and the final stats.
	last=$(grep -E '^#[0-9]+' "$dir/fuzz.log" | tail -n 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz.log")
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corpus=$(ls "$dir/corpus" | wc -l)
	echo "$h: execs ${execs:-?} exec/s ${rate:-?} cov ${cov:-?} ft ${ft:-?} corpus $corpus files"
	echo "$h: last libFuzzer line: ${last:-none}"

	found=$(ls "$dir/artifacts" 2>/dev/null)
	if [ "$rc" != 0 ] || [ -n "$found" ]; then
		reason=$(grep -m 1 -E 'invariant broken|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|ALARM|out-of-memory' "$dir/fuzz.log")
		fail "$h: libFuzzer exited $rc: ${reason:-see $dir/fuzz.log}"
		for a in $found; do
			echo "  reproducer: $dir/artifacts/$a (replay: tests/fuzz-$h $dir/artifacts/$a)"
		done
		echo "  log: $dir/fuzz.log"
	fi
done

if [ "$failed" != 0 ]; then
	echo "fuzz: FAILED"
	exit 1
fi
echo "fuzz: ok"
