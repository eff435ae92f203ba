#!/usr/bin/env bash
# make fuzz: runs every libFuzzer target for FUZZ_SECONDS on a scratch copy of its
# corpus (new inputs stay out of git; copy interesting ones by hand). A finding
# leaves crash-* in tests/fuzz/ and fails the run.
set -uo pipefail
BUILD_FUZZ=${BUILD_FUZZ:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for f in "$BUILD_FUZZ"/fuzz/fuzz_*; do
	n=$(basename "$f"); n=${n#fuzz_}
	work=$(mktemp -d)
	cp -r "$here/corpus/$n/." "$work/"
	echo "== fuzz $n for ${FUZZ_SECONDS}s"
	if ! "$f" -max_total_time="$FUZZ_SECONDS" -artifact_prefix="$here/crash-$n-" \
		-print_final_stats=1 "$work" 2>&1 | grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==ERROR|SUMMARY)'; then
		:
	fi
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
	rm -rf "$work"
done
exit $rc
