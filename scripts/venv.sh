#!/usr/bin/env bash
# Create (or update) .venv at the repo root with imagemachines installed; sourced by run.sh and test.sh.
# Usage:  source scripts/venv.sh; ensure_venv [EXTRAS]      e.g. `ensure_venv test`
# Sourcing reads none of the caller's arguments; ensure_venv puts .venv/bin first on PATH.
# A venv installed with more extras serves a call asking for fewer (after ./test.sh, ./run.sh reinstalls nothing).

# Comma-separated extras in $1 that are missing from the comma-separated list $2 (prints them; empty: none).
_imagemachines_missing_extras() {
  local want extra missing=""
  IFS=',' read -r -a want <<< "$1"
  for extra in "${want[@]}"; do
    [ -z "$extra" ] && continue
    case ",$2," in *",$extra,"*) ;; *) missing="$missing,$extra" ;; esac
  done
  echo "${missing#,}"
}

ensure_venv() {
  local extras="${1:-}"
  local root venv python stamp hash have spec
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/.venv"
  python="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "imagemachines needs Python 3.11 or newer; set PYTHON=/path/to/python3.11 and run again." >&2
      return 1
    fi
    echo "Creating $venv …"
    "$python" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install --quiet --upgrade pip || return 1
  fi
  # Reinstall only when pyproject.toml changed or extras are asked for that the venv lacks.
  # The stamp holds "<hash of pyproject.toml> <installed extras, comma-separated>".
  stamp="$venv/.imagemachines-installed"
  hash="$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
  have=""
  [ -f "$stamp" ] && have="$(cut -s -d' ' -f2 < "$stamp")"
  if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 < "$stamp")" = "$hash" ] \
     && [ -z "$(_imagemachines_missing_extras "$extras" "$have")" ]; then
    export PATH="$venv/bin:$PATH"
    return 0
  fi
  # Keep the extras the venv already has (test.sh then run.sh then test.sh installs once).
  extras="$(echo "$have,$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
  spec="$root"
  [ -n "$extras" ] && spec="$root[$extras]"
  echo "Installing imagemachines${extras:+ with the $extras extras} into .venv (first time: PyTorch is large) …"
  "$venv/bin/python" -m pip install --quiet --editable "$spec" || return 1
  echo "$hash $extras" > "$stamp"
  export PATH="$venv/bin:$PATH"
}
