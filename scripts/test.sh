#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it:
#   1. the normal build (debugoptimized) and every test, on both backends,
#      then the integration, net and http suites again with fault injection on
#      (CORIO_FAULT_SEED=1, 2, 3);
#   2. the same tests but the load suite under AddressSanitizer +
#      UndefinedBehaviorSanitizer (LeakSanitizer included; the examples'
#      integration tests too);
#   3. the thread-bridge suite under ThreadSanitizer;
#   4. the HTTP parsers' fuzzers: corpus replay, then 60 s each.
# Prints one closing line "N passed, N failed" over the four passes.
set -euo pipefail
cd "$(dirname "$0")/.."

setup() {  # setup DIR [TARGETS -- ] OPTIONS...: configure (or reconfigure) and build; output shown on failure
  local dir=$1
  shift
  local targets=()
  if [[ " $* " == *" -- "* ]]; then
    while [[ $1 != -- ]]; do targets+=("$1"); shift; done
    shift
  fi
  local log
  log=$(mktemp)
  if ! {
    if [[ -f $dir/build.ninja ]]; then
      meson configure "$dir" "$@"
    else
      meson setup "$dir" "$@"
    fi && if ((${#targets[@]})); then
      ninja -C "$dir" $(targets_of "$dir" "${targets[@]}")
    else
      ninja -C "$dir"
    fi
  } >"$log" 2>&1; then
    cat "$log"
    rm -f "$log"
    echo "build of $dir failed"
    exit 1
  fi
  rm -f "$log"
}

targets_of() {  # targets_of DIR SUITE...: the ninja targets of those suites' test programs
  local dir=$1
  shift
  meson introspect "$dir" --tests | python3 -c '
import json, os, sys
d, suites = os.path.abspath(sys.argv[1]), set(sys.argv[2:])
tests = json.load(sys.stdin)
print(" ".join(sorted({os.path.relpath(t["cmd"][0], d) for t in tests
                       if suites & {s.split(":")[-1] for s in t["suite"]}})))' "$dir" "$@"
}

passed=0
failed=0
run_pass() {  # run_pass NAME DIR [meson test args...]
  local name=$1 dir=$2
  shift 2
  echo "== $name"
  local rc=0
  meson test -C "$dir" --print-errorlogs --no-rebuild "$@" || rc=$?
  local counts
  counts=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"): ok += 1
    else: bad += 1
print(ok, bad)
PY
)
  passed=$((passed + ${counts% *}))
  failed=$((failed + ${counts#* }))
  if ((rc != 0 && ${counts#* } == 0)); then failed=$((failed + 1)); fi
}

echo "== building (normal, asan+ubsan, tsan)"
setup build -Dbuildtype=debugoptimized -Dbench=false -Dfault_injection=true
# The sanitizer trees build at -O1 with line tables only (-g1): stack traces
# still name file and line, and the ASan tree compiles in about 40 % of the
# time -O2 -g takes (it was half of CI's 30 minutes).
# The ASan tree builds the examples too: their integration tests (the
# crawler, the example servers, the load suite) run there like every other
# test (without them those tests skip, and a use-after-free in the crawler
# once got past CI that way).
sanitized=(-Doptimization=1 -Ddebug=false -Dcpp_args=-g1 -Dbench=false)
setup build-asan "${sanitized[@]}" -Dexamples=true -Db_sanitize=address,undefined -Db_lundef=false -Dfault_injection=true
# TSan checks the thread bridge only: build just those test programs.
setup build-tsan bridge -- "${sanitized[@]}" -Dexamples=false -Db_sanitize=thread

run_pass "tests (normal build, io_uring and epoll)" build
# The same build again with the fault-injection layer on (loop/fault_backend.hpp):
# transient faults (EINTR, EAGAIN, short I/O, ENOBUFS, EMFILE, delays, cancel
# races) must change no outcome. A failure names its seed: rerun one test
# with CORIO_FAULT_SEED=N to replay it.
for seed in 1 2 3; do
  CORIO_FAULT_SEED=$seed CORIO_SOCKET_TORTURE_OPS=3000 \
    run_pass "integration, net and http tests with fault injection (CORIO_FAULT_SEED=$seed)" build \
    --suite integration --suite net --suite http
done
ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  run_pass "tests under ASan+UBSan" build-asan --no-suite load --timeout-multiplier 3
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_pass "bridge tests under TSan" build-tsan --suite bridge --timeout-multiplier 3

# The HTTP parsers' libFuzzer targets (clang): replay the checked-in corpus,
# then fuzz each target for a while (60 s; CORIO_FUZZ_SECONDS to change).
echo "== fuzzers (corpus replay, then ${CORIO_FUZZ_SECONDS:-60} s per target)"
fuzz_log=$(mktemp)
if scripts/fuzz.sh run "${CORIO_FUZZ_SECONDS:-60}" >"$fuzz_log" 2>&1; then
  passed=$((passed + 1))
  grep -E "^fuzz:|Done [0-9]+ runs" "$fuzz_log" | tail -6 || true
else
  failed=$((failed + 1))
  tail -60 "$fuzz_log"
  echo "fuzzers: FAILED"
fi
rm -f "$fuzz_log"

echo "corio tests: $passed passed, $failed failed"
echo "$passed passed, $failed failed"
((failed == 0))
