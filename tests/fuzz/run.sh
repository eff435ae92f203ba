#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target for FUZZ_SECONDS on a scratch copy of its
# corpus (new inputs stay out of git; copy interesting ones by hand), one line per
# target (seconds, execs, exec/s, final cov/ft, corpus, result) and a table at the end.
# A finding leaves crash-*/leak-*/timeout-* in tests/fuzz/, prints the sanitizer's
# summary and fails the run. FUZZ_TARGETS="uri sdp" runs only those.
set -uo pipefail
BUILD_FUZZ=${BUILD_FUZZ:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-}
here=$(cd "$(dirname "$0")" && pwd)
rc=0
rows=()

# "<value>" of "key: value" in the last libFuzzer status line ("#123 NEW cov: 4 ft: 9
# corp: 5/80b ..." or the final "#456 DONE ..."), "-" when there is none.
status_field() {
	grep -E '^#[0-9]+' "$1" | tail -n 1 | sed -n "s/.* $2: \([^ ]*\).*/\1/p" | grep . || echo -
}
stat_field() {
	sed -n "s/^stat::$2: *//p" "$1" | tail -n 1 | grep . || echo -
}

shopt -s nullglob
targets=("$BUILD_FUZZ"/fuzz/fuzz_*)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets in $BUILD_FUZZ/fuzz (build with -DSKEIN_FUZZ=ON, clang)" >&2
	exit 1
fi
for f in "${targets[@]}"; do
	n=$(basename "$f")
	n=${n#fuzz_}
	if [ -n "$FUZZ_TARGETS" ] && [[ " $FUZZ_TARGETS " != *" $n "* ]]; then
		continue
	fi
	work=$(mktemp -d)
	log=$(mktemp)
	[ -d "$here/corpus/$n" ] && cp -r "$here/corpus/$n/." "$work/"
	start=$SECONDS
	# -max_total_time bounds the run; timeout is the backstop should one input hang
	# past libFuzzer's own -timeout (then libFuzzer reports it as a finding anyway).
	timeout -k 10 $((FUZZ_SECONDS + 120)) "$f" -max_total_time="$FUZZ_SECONDS" \
		-artifact_prefix="$here/crash-$n-" -print_final_stats=1 "$work" >"$log" 2>&1
	st=$?
	secs=$((SECONDS - start))
	execs=$(stat_field "$log" number_of_executed_units)
	eps=$(stat_field "$log" average_exec_per_sec)
	cov=$(status_field "$log" cov)
	ft=$(status_field "$log" ft)
	corp=$(status_field "$log" corp)
	if [ "$st" -eq 0 ]; then
		result=ok
	else
		rc=1
		art=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
		result="FINDING (exit $st${art:+, $art})"
		grep -E '^==[0-9]+== ?ERROR|^SUMMARY|^(READ|WRITE) of size|^    #[0-9] ' "$log" |
			head -n 20 | sed "s/^/  $n: /"
	fi
	echo "fuzz $n: ${secs}s, $execs execs, $eps exec/s, cov $cov, ft $ft, corpus $corp: $result"
	rows+=("$(printf '%-10s %6s %12s %9s %6s %7s  %s' "$n" "$secs" "$execs" "$eps" "$cov" "$ft" "$result")")
	rm -rf "$work" "$log"
done
if [ ${#rows[@]} -eq 0 ]; then
	echo "fuzz: no target matches FUZZ_TARGETS=\"$FUZZ_TARGETS\"" >&2
	exit 1
fi
echo
printf '%-10s %6s %12s %9s %6s %7s  %s\n' target seconds execs exec/s cov ft result
printf '%s\n' "${rows[@]}"
exit $rc
