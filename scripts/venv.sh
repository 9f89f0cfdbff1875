#!/usr/bin/env bash
# Create (or update) .venv at the repo root with imagemachines installed; sourced by run.sh and test.sh.
# Usage: source scripts/venv.sh [EXTRAS]     e.g. EXTRAS=test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "imagemachines needs Python 3.11 or newer; set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV …"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
# Reinstall only when pyproject.toml or the extras changed (a stamp keeps the hash).
STAMP="$VENV/.imagemachines-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-${EXTRAS}"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  SPEC="$ROOT"
  [ -n "$EXTRAS" ] && SPEC="$ROOT[$EXTRAS]"
  echo "Installing imagemachines${EXTRAS:+ with $EXTRAS extras} into .venv (first time: PyTorch is large) …"
  "$VENV/bin/python" -m pip install --quiet --editable "$SPEC"
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
