#!/usr/bin/env bash
# The main job: set up .venv, then open the web interface on the default model (mobilenet_v2).
# Extra arguments go to `imagemachines serve` (e.g. ./run.sh inception_v3 --port 8080).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv
exec imagemachines serve "$@"
