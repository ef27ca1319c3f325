#!/usr/bin/env bash
# Installs every Debian 12 package that corio's build, tests, benchmarks and
# examples need. Idempotent: packages already present are left alone, and
# nothing is fetched when all of them are installed.
set -euo pipefail

PKGS=(
  # build
  g++ meson ninja-build pkg-config cmake
  # core library
  liburing-dev libssl-dev
  # examples (parallel_work: deflate; crawler: HTML5 parsing, its state file)
  zlib1g-dev libgumbo-dev libsqlite3-dev
  # tests (the TLS tests make certificates with openssl and talk to curl;
  # nginx-light is the HTTP client's real peer)
  doctest-dev python3 procps openssl curl nginx-light
  # (the HTTP-date test builds a German locale with localedef)
  locales
  # benchmark peers and the README's charts (bench/run.py, bench/tls_bench.sh,
  # bench/http_client and bench/crawler: aiohttp; bench/report.py: gnuplot)
  python3-uvloop python3-aiohttp wrk gnuplot-nox
  # sanitizers / fuzzing
  clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # nginx-light is a test peer, started by the tests on their own ports: its
  # packaged service must not start (and hold port 80) at install time. A
  # policy-rc.d that refuses is Debian's way; one already present is kept.
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    added_policy=1
  fi
  rc=0
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  if ((added_policy)); then $SUDO rm -f "$policy"; fi
  if ((rc != 0)); then
    echo "setup: apt-get install failed ($rc)" >&2
    exit "$rc"
  fi
fi
echo "setup: all packages present"
