#!/usr/bin/env bash
# The checks that need a GPU (the Triton path on CUDA, and its speed), as one short run.
# Usage: bash tools/gpu_check.sh [OUT]   (OUT defaults to $OUT, else ./gpu-check)
# It needs a python with a CUDA build of torch and triton (PYTHON=..., default python3);
# it does not install anything, so it fails fast and says what is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
python="${PYTHON:-python3}"
mkdir -p "$out"
{
  echo "## machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not found"
  "$python" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| device', torch.cuda.is_available())" 2>&1
  "$python" -c "import triton; print('triton', triton.__version__)" 2>&1
} | tee "$out/environment.txt"
# the Triton kernels first, where a failure is cheapest to see; then correctness and speed
timeout 480 "$python" tools/gpu_check.py "$out" 2>&1 | tee "$out/gpu_check.log"
exit "${PIPESTATUS[0]}"
