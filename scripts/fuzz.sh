#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of corio's network parsers with
# Debian's clang (meson cannot mix compilers in one project, so the parser
# sources are compiled here directly).
#
#   scripts/fuzz.sh build                 # builds build-fuzz/fuzz_{request,response,chunked}
#   scripts/fuzz.sh replay                # runs each target over its checked-in corpus once
#   scripts/fuzz.sh run SECONDS [TARGET]  # replays, then fuzzes each target SECONDS seconds
#   scripts/fuzz.sh runs N [TARGET]       # replays, then fuzzes each target for N executions
#
# New inputs found while fuzzing go to build-fuzz/corpus/<target> (the
# checked-in seeds in fuzz/corpus/<target> stay untouched; copy interesting
# ones over by hand). A crash stops with libFuzzer's report and a non-zero
# exit; the crashing input is written to build-fuzz/.
#
# Targets are built, and fuzzed, up to CORIO_FUZZ_JOBS at once (default: the
# number of CPUs), each on a core of its own: on CI's two cores the three
# 60 s runs take two minutes, not three. Each target's output is printed in
# one piece when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || CXX=clang++
OUT=build-fuzz
TARGETS=(request response chunked)
SOURCES=(net/http/parser.cpp)
FLAGS=(-std=c++20 -O1 -g -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer)

JOBS=${CORIO_FUZZ_JOBS:-$(nproc)}
((JOBS >= 1)) || JOBS=1

# parallel NAME... -- CMD: runs `CMD NAME` for each NAME, at most JOBS at a
# time, each with its output in a file printed (in NAME order) once all are
# done; fails if any failed.
parallel() {
  local names=() n
  while [[ $1 != -- ]]; do names+=("$1"); shift; done
  shift
  local dir rc=0 running=0 pids=()
  dir=$(mktemp -d)
  for n in "${names[@]}"; do
    if ((running >= JOBS)); then
      wait -n || true  # statuses are collected below, per PID
      running=$((running - 1))
    fi
    "$@" "$n" >"$dir/$n.log" 2>&1 &
    pids+=($!)
    running=$((running + 1))
  done
  local i
  for i in "${!names[@]}"; do
    local st=0
    wait "${pids[$i]}" || st=$?
    cat "$dir/${names[$i]}.log"
    if ((st != 0)); then
      rc=1
      echo "fuzz: ${names[$i]} FAILED (exit status $st)"
    fi
  done
  rm -rf "$dir"
  return $rc
}

build_one() {  # build_one TARGET
  local t=$1
  echo "fuzz: building fuzz_$t"
  "$CXX" "${FLAGS[@]}" -o "$OUT/fuzz_$t" "fuzz/fuzz_$t.cpp" "${SOURCES[@]}"
}

build() {
  mkdir -p "$OUT"
  local stale=() t
  for t in "${TARGETS[@]}"; do
    if [[ ! -x $OUT/fuzz_$t || fuzz/fuzz_$t.cpp -nt $OUT/fuzz_$t || net/http/parser.cpp -nt $OUT/fuzz_$t ||
          net/http/parser.hpp -nt $OUT/fuzz_$t || net/http/message.hpp -nt $OUT/fuzz_$t ]]; then
      stale+=("$t")
    fi
  done
  ((${#stale[@]} == 0)) || parallel "${stale[@]}" -- build_one
}

pick() {  # the targets to run: all, or the one named
  if [[ -n ${1:-} ]]; then echo "$1"; else echo "${TARGETS[@]}"; fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

cmd=${1:-run}
case $cmd in
  build)
    build
    ;;
  replay)
    build
    for t in $(pick "${2:-}"); do
      echo "fuzz: replaying fuzz/corpus/$t"
      "$OUT/fuzz_$t" -runs=0 "fuzz/corpus/$t"
    done
    ;;
  run|runs)
    n=${2:?"usage: scripts/fuzz.sh $cmd ${cmd/run/SECONDS}${cmd/runs/N} [TARGET]"}
    build
    if [[ $cmd == run ]]; then limit=(-max_total_time="$n"); else limit=(-runs="$n"); fi
    fuzz_one() {  # fuzz_one TARGET
      local t=$1
      mkdir -p "$OUT/corpus/$t"
      echo "fuzz: fuzz_$t ${limit[*]}"
      # Replays the seeds and the corpus of earlier runs, then mutates.
      "$OUT/fuzz_$t" "${limit[@]}" -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
        "$OUT/corpus/$t" "fuzz/corpus/$t"
    }
    # shellcheck disable=SC2046
    parallel $(pick "${3:-}") -- fuzz_one
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | replay [TARGET] | run SECONDS [TARGET] | runs N [TARGET]" >&2
    exit 2
    ;;
esac
