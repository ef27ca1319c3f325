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
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || CXX=clang++
OUT=build-fuzz
TARGETS=(request response chunked)
SOURCES=(net/http/parser.cpp)
FLAGS=(-std=c++20 -O1 -g -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer)

build() {
  mkdir -p "$OUT"
  for t in "${TARGETS[@]}"; do
    if [[ ! -x $OUT/fuzz_$t || fuzz/fuzz_$t.cpp -nt $OUT/fuzz_$t || net/http/parser.cpp -nt $OUT/fuzz_$t ||
          net/http/parser.hpp -nt $OUT/fuzz_$t || net/http/message.hpp -nt $OUT/fuzz_$t ]]; then
      echo "fuzz: building fuzz_$t"
      "$CXX" "${FLAGS[@]}" -o "$OUT/fuzz_$t" "fuzz/fuzz_$t.cpp" "${SOURCES[@]}"
    fi
  done
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
    for t in $(pick "${3:-}"); do
      mkdir -p "$OUT/corpus/$t"
      if [[ $cmd == run ]]; then limit=(-max_total_time="$n"); else limit=(-runs="$n"); fi
      echo "fuzz: fuzz_$t ${limit[*]}"
      # Replays the seeds and the corpus of earlier runs, then mutates.
      "$OUT/fuzz_$t" "${limit[@]}" -max_len=4096 -print_final_stats=1 -artifact_prefix="$OUT/" \
        "$OUT/corpus/$t" "fuzz/corpus/$t"
    done
    ;;
  *)
    echo "usage: scripts/fuzz.sh build | replay [TARGET] | run SECONDS [TARGET] | runs N [TARGET]" >&2
    exit 2
    ;;
esac
