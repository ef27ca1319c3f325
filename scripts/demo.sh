#!/usr/bin/env bash
# Builds corio (release) and runs the main demo on local data.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f build-release/build.ninja ]]; then
  meson configure build-release -Dbuildtype=release >/dev/null
else
  meson setup build-release -Dbuildtype=release >/dev/null
fi
ninja -C build-release examples/demo >/dev/null
exec build-release/examples/demo "$@"
