#!/usr/bin/env bash
# Runs every test of `make test` and ends with one summary line:
#   1. unit tests, fuzz-corpus replays, the SIP, presence and XCAP integration tests (real sipp,
#      baresip, daemons stopped with SIGTERM so that leaks are reported) built with
#      ASan+UBSan;
#   2. everything (unit, fuzz replays, integration) in the normal build.
set -uo pipefail
BUILD=${BUILD:-build}
BUILD_ASAN=${BUILD_ASAN:-build-asan}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0 failed=0
run_ctest() { # dir, label args...
	local dir=$1 out
	shift
	echo "== ctest in $dir $*"
	out=$(cd "$dir" && ctest --output-on-failure --timeout 600 "$@" 2>&1)
	echo "$out" | grep -vE '^(UpdateCTestConfiguration|Test project|Constructing|Checking test|Updating test)' 
	local line
	line=$(echo "$out" | grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' | tail -1)
	if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
		failed=$((failed + BASH_REMATCH[1]))
		passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
	else
		echo "ctest in $dir gave no summary" >&2
		failed=$((failed + 1))
	fi
}

run_ctest "$BUILD_ASAN" -L 'unit|fuzz' -j 2
run_ctest "$BUILD_ASAN" -R '^integration\.(sip_|edge_|provisioning|registrar_|presence|im_offline|xcap)'
run_ctest "$BUILD"
echo
echo "make test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
