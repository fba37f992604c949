#!/bin/sh
# Run the libFuzzer targets built by `make fuzz`: each one SECONDS long, on a
# scratch corpus under build/fuzz/work/ seeded (read only) from the checked-in
# tests/fuzz/corpus/.  Prints each target's executions and the coverage of its
# final "DONE" line; exits non-zero if any target found a crash, leak, UBSan
# report, timeout or broken invariant (the input is kept in
# build/fuzz/artifacts/TARGET/, the log in build/fuzz/TARGET.log).
#
#   scripts/fuzz.sh SECONDS TARGET...      (make fuzz FUZZ_SECONDS=N)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/build/fuzz"
secs=$1
shift

# UBSan reports abort (the build has -fno-sanitize-recover=all); say where
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

fail=0
printf '  %-14s %12s %9s %8s %8s %s\n' target execs exec/s cov ft corpus
for t in "$@"; do
	# the window-size variant shares the HTTP seeds
	seeds="$ROOT/tests/fuzz/corpus/${t%_win7}"
	work="$OUT/work/$t"
	art="$OUT/artifacts/$t/"
	log="$OUT/$t.log"
	rm -rf "$work"
	mkdir -p "$work" "$art"
	"$OUT/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	done_line=$(grep -a 'DONE ' "$log" | tail -n 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(echo "$done_line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$done_line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$done_line" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	printf '  %-14s %12s %9s %8s %8s %s\n' "$t" "${execs:-?}" "${rate:-?}" \
		"${cov:-?}" "${ft:-?}" "${corp:-?}"
	if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
		echo "fuzz: $t failed (exit $rc); log: $log, input: $art" >&2
		grep -a -m 20 -E 'ERROR|runtime error|invariant broken|SUMMARY|Test unit written' \
			"$log" >&2
		fail=1
	fi
done
exit $fail
