#!/usr/bin/env bash
# Device check for a machine with an accelerator (or the CPU): detection, bf16 autocast, a one-rank collective
# group (NCCL on CUDA), tiny generation in-process and on vLLM with and without a LoRA. Steps that cannot run here
# (vLLM not installed, say) are recorded as skipped with the reason, never faked.
#
#   bash scripts/device_check.sh [OUT_DIR] [--expect cuda] [--skip vllm]
#
# Writes OUT_DIR/device_check.json (the record) and OUT_DIR/device_check.log. OUT_DIR defaults to $OUT, else
# ${TMPDIR:-/tmp}/domainlm-device-check (outside the checkout). Record a run in the package's verified_on.json only from such a file:
#   python -m domainlm.kernels.backends.verified add OUT_DIR/device_check.json
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${OUT:-${TMPDIR:-/tmp}/domainlm-device-check}"
if [[ $# -gt 0 && "$1" != --* ]]; then out_dir="$1"; shift; fi
mkdir -p "$out_dir"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
python="${PYTHON:-python3}"
echo "[device_check] $(date -u +%FT%TZ) host=$(hostname) python=$("$python" -V 2>&1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$python" -m domainlm.pipeline.device_check --out "$out_dir/device_check.json" "$@" 2>&1 \
  | tee "$out_dir/device_check.log"
