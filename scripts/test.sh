#!/usr/bin/env bash
# The full test suite as CI runs it (slow tests included). Usage: make test  (or bash scripts/test.sh [pytest args])
set -euo pipefail
cd "$(dirname "$0")/.."
export DOMAINLM_PROGRESS=${DOMAINLM_PROGRESS:-off} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec ${PYTHON:-python3} -m pytest -q --durations=15 "$@"
