#!/usr/bin/env bash
# The GPU check of issue 14 (the custom LSTM on GPUs): speed and accuracy table of cuDNN, the
# torch-op path and the Triton path, repeatability, memory, a fullgraph compile, the
# cuda-marked tests and training runs at three precisions. At most ~10 minutes on one GPU.
# After `make install TORCH=torch`, from the repository root:
#   bash scripts/gpu_check.sh            (BIN=... for another venv; extra arguments go to
#                                         scripts/gpu_check.py, e.g. --only table)
# Exits non-zero on any failure (2: no CUDA device).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
exec "$BIN/python" scripts/gpu_check.py "$@"
