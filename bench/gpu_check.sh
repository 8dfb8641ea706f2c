#!/usr/bin/env bash
# The GPU numbers for README "Training speed", in one short run (about 6-8 minutes on an
# H100/H200-class GPU): first the CUDA-only kernel checks (flash-attention, liger-kernel:
# each runs only if installed), then bench/train_throughput.py --device cuda on a
# random-initialised ~1B Llama built offline (no download), ours vs plain Trainer vs TRL,
# LoRA and 4-bit NF4 QLoRA. Output goes to $OUT (or bench-gpu-results/) as gpu_check.log.
#
#   bench/gpu_check.sh                   # from the repository root, with .venv installed
#   PEAK_TFLOPS=989 bench/gpu_check.sh   # a GPU missing from training/engine/train/peak.py
#
# It needs the project installed with a CUDA build of torch 2.13 (the lab's install pins
# the CPU wheel): e.g. pip install torch==2.13.0 --index-url <the CUDA wheel index>, then
# pip install -e '.[test,bench]'; PY=<that python> bench/gpu_check.sh.
# Optional speed-ups it picks up when installed (the lab does not depend on them):
#   .venv/bin/pip install flash-attn --no-build-isolation   # varlen attention for packed rows
#   .venv/bin/pip install liger-kernel                      # fused linear cross-entropy
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEST=${OUT:-bench-gpu-results}
mkdir -p "$DEST"
LOG="$DEST/gpu_check.log"
export SLMLAB_MODEL_STORE=${SLMLAB_MODEL_STORE:-$DEST/models}
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch, transformers, peft, trl; print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'peft', \
peft.__version__, 'trl', trl.__version__)"
  "$PY" -c "import importlib.util as u; print({m: bool(u.find_spec(m)) for m in \
('flash_attn', 'liger_kernel', 'bitsandbytes')})"
  echo "== CUDA kernel checks"
  timeout 120 "$PY" -m pytest tests/engine/test_cuda_paths.py -q -rs -p no:cacheprovider || true
  echo "== throughput, --device cuda (random ~1B Llama)"
  timeout 420 "$PY" bench/train_throughput.py --device cuda --modes none,4bit --rounds 1 \
    --steps 12 --batch-size 16 --max-seq-len 1024 --rows 400 --work "$DEST/work" \
    ${PEAK_TFLOPS:+--peak-tflops "$PEAK_TFLOPS"}
  date -u
} 2>&1 | tee "$LOG"
rm -rf "$DEST/work" "$DEST/models"
