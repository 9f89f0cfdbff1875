#!/usr/bin/env bash
# The tests: set up .venv with the test extras, install Chromium for the browser tests when possible,
# then run ruff and pytest. Extra arguments go to pytest (e.g. ./test.sh tests/vis -x).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv test
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Debian's chromium for the browser tests …"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium is missing (sudo apt-get install chromium); browser tests will be skipped." >&2
  fi
fi
ruff check src tests benchmarks
exec python -m pytest "$@"
