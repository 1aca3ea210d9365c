#!/usr/bin/env bash
# A Python virtual environment holding a pip PyTorch with its torchvision and pillow: the libtorch
# a research repo builds s2bnn against, and the Python the parity tests and baselines then run.
#   bash scripts/torch-venv.sh DIR [TORCH_REQUIREMENT]      (default: torch==2.13.0+cpu)
# then build and test against it:
#   S2BNN_PYTHON=DIR/bin/python npm run build:native
#   S2BNN_PYTHON=DIR/bin/python npm test
set -euo pipefail
dir=${1:?usage: bash scripts/torch-venv.sh DIR [TORCH_REQUIREMENT]}
requirement=${2:-torch==2.13.0+cpu}

python3 -m venv "$dir"
# --retries 0: where only a local wheel index answers, an unreachable default index fails fast.
"$dir/bin/python" -m pip install --quiet --disable-pip-version-check --retries 0 \
  "$requirement" torchvision pillow numpy
"$dir/bin/python" -c 'import torch; print(f"s2bnn: torch {torch.__version__} in {torch.__file__}")'
