#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut 3, each module against its own test files (not part of CI).
#
#   scripts/mutation.sh                      # every module below, one after the other
#   scripts/mutation.sh serve/scheduler ...  # only these (paths under src/imagemachines, without .py)
#   scripts/mutation.sh --survivors vis/engine  # after writing tests: rerun only the mutants an earlier run of
#                                            # this module did not kill, against the current tests (src unchanged)
#
# Each module gets a scratch copy of src/ and tests/ under mutants/<module>/ (git-ignored) with a pyproject.toml
# whose [tool.mutmut] section names that module and its tests; mutmut copies it once more into mutants/ there.
# Results: mutants/<module>/results.txt (one line per mutant that was not killed) and a summary line per module
# in mutants/summary.txt. Inspect a survivor with `cd mutants/<module> && mutmut show NAME`.
# MUTMUT_JOBS (default 1) sets mutmut's --max-children; PYTHON the interpreter (default .venv/bin/python).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[[ $PYTHON == /* ]] || PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")  # the runs cd elsewhere
MUTMUT=$(dirname "$PYTHON")/mutmut
JOBS=${MUTMUT_JOBS:-1}

declare -A TESTS=(
  [serve/scheduler]="tests/serve/test_scheduler.py tests/serve/test_api.py"
  [wga/download]="tests/wga/test_wga_fetch.py tests/wga/test_wga_download.py tests/wga/test_wga_hardening.py tests/wga/test_wga_offline.py"
  [wga/fetch]="tests/wga/test_wga_fetch.py tests/wga/test_wga_download.py tests/wga/test_wga_hardening.py tests/wga/test_wga_resume.py"
  [vis/engine]="tests/vis/test_render.py tests/vis/test_errors.py tests/vis/test_display.py"
  [vis/classic]="tests/vis/test_classic.py"
  [models/fuse]="tests/vis/test_taps.py"
  [models/taps]="tests/vis/test_taps.py"
  [train/loop]="tests/train/test_loop.py"
  [index/accumulate]="tests/index/test_accumulate.py tests/index/test_api.py tests/index/test_incremental.py"
  [index/merge]="tests/index/test_accumulate.py tests/index/test_api.py tests/index/test_incremental.py"
  [index/passes]="tests/index/test_accumulate.py tests/index/test_api.py tests/index/test_incremental.py tests/index/test_metadata_errors.py"
)
# tests left out of a module's run because they take long and kill nothing that faster tests don't
declare -A SKIP=(
  [serve/scheduler]="test_memory_stays_flat_over_many_requests"
)
ORDER=(serve/scheduler wga/fetch wga/download models/fuse models/taps vis/classic vis/engine train/loop
       index/accumulate index/merge index/passes)
survivors=0
if [[ ${1:-} == --survivors ]]; then survivors=1; shift; fi
modules=("$@")
[[ ${#modules[@]} -gt 0 ]] || modules=("${ORDER[@]}")

toml_list() { local out="" f; for f in "$@"; do [[ -e "$ROOT/$f" ]] && out+="\"$f\", "; done; echo "[${out%, }]"; }

write_config() {  # $1 module, $2 its scratch dir: the [tool.mutmut] section and the fastest-first conftest
  local mod=$1 work=$2 tests skip t
  # shellcheck disable=SC2086
  tests=$(toml_list ${TESTS[$mod]})
  skip=""
  for t in ${SKIP[$mod]:-}; do skip+=" and not $t"; done
  {
    cat "$ROOT/pyproject.toml"
    cat <<TOML

[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/imagemachines/$mod.py"]
pytest_add_cli_args_test_selection = $tests
pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not slow and not browser and not weights", "-k", "not __none__$skip", "-x", "-q"]
process_isolation = "forkserver"
use_git_change_detection = false
also_copy = ["conftest.py"]
TOML
  } > "$work/pyproject.toml"
  # Run each mutant's fastest tests first (by the durations mutmut measured), so that with -x a killed mutant
  # costs its quickest killing test rather than whatever pytest happens to collect first.
  cat > "$work/conftest.py" <<'PY'
import json
from pathlib import Path


def pytest_collection_modifyitems(items):
    stats = Path("mutmut-stats.json")
    if stats.is_file():
        duration = json.loads(stats.read_text()).get("duration_by_test", {})
        items.sort(key=lambda item: duration.get(item.nodeid, 0.0))
PY
}

mkdir -p "$ROOT/mutants"
for mod in "${modules[@]}"; do
  [[ -n "${TESTS[$mod]:-}" ]] || { echo "unknown module $mod; known: ${ORDER[*]}" >&2; exit 2; }
  work="$ROOT/mutants/${mod//\//-}"
  if (( survivors )); then
    [[ -s "$work/results.txt" ]] || { echo "no earlier run of $mod to rerun" >&2; continue; }
    if ! cmp -s "$ROOT/src/imagemachines/$mod.py" "$work/src/imagemachines/$mod.py"; then
      echo "$mod.py changed since its run: rerun it whole" >&2; continue; fi
    rm -rf "$work/tests" && cp -r "$ROOT/tests" "$work/tests"  # mutmut finds the new tests and maps them
    write_config "$mod" "$work"  # the module's test files as listed now
    names=$(awk -F: '/: /{gsub(/ /, "", $1); print $1}' "$work/results.txt")
    echo "== $mod: rerunning $(echo "$names" | wc -w) mutants not killed before"
    start=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$work" && env -u PYTHONPATH "$MUTMUT" run --max-children "$JOBS" $names > rerun.log 2>&1) || {
      echo "mutmut failed for $mod; see $work/rerun.log" >&2; tail -20 "$work/rerun.log" >&2; continue; }
  else
  rm -rf "$work"
  mkdir -p "$work"
  (cd "$ROOT" && tar --exclude=__pycache__ -cf - src tests) | tar -xf - -C "$work"
  write_config "$mod" "$work"
  echo "== $mod against ${TESTS[$mod]}"
  start=$(date +%s)
  (cd "$work" && env -u PYTHONPATH "$MUTMUT" run --max-children "$JOBS" > run.log 2>&1) || {
    echo "mutmut failed for $mod; see $work/run.log" >&2; tail -20 "$work/run.log" >&2; continue; }
  fi
  (cd "$work" && env -u PYTHONPATH "$MUTMUT" results --all true > all.txt 2>&1 || true)
  # After --survivors, mutmut reports the mutants killed in the first run as "not checked": what is still
  # alive is every mutant neither killed, timed out nor (in a rerun) killed before.
  grep ': ' "$work/all.txt" | grep -v ': killed$\|: timeout$\|: not checked$' > "$work/results.txt" || true
  total=$(grep -c ': ' "$work/all.txt" || true)
  killed=$(grep -c ': killed$' "$work/all.txt" || true)
  timeout=$(grep -c ': timeout$' "$work/all.txt" || true)
  alive=$(grep -c ': ' "$work/results.txt" || true)
  if (( survivors )); then
    line="$mod (survivors rerun): caught $(( total - alive )) / $total; still alive: $alive"
  else
    line="$mod (run): killed $killed + $timeout timeouts / $total; not killed: $alive"
  fi
  line+=" ($(( $(date +%s) - start )) s)"
  echo "$line" | tee -a "$ROOT/mutants/summary.txt"
done
