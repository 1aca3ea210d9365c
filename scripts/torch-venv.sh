#!/usr/bin/env bash
# A Python virtual environment holding a pip PyTorch with its torchvision and pillow: the libtorch
# a research repo builds s2bnn against, and the Python the parity tests and baselines then run.
#   bash scripts/torch-venv.sh DIR [TORCH_REQUIREMENT]      (default: torch==2.13.0+cpu)
# e.g. torch==2.14.1 for the CUDA 13.0 build with its nvidia-* libraries; then build and test:
#   S2BNN_PYTHON=DIR/bin/python npm run build:native
#   S2BNN_PYTHON=DIR/bin/python npm test
# torch is installed without `triton` and `cuda-bindings`: Python-side compilers and bindings
# that libtorch never loads (and that a local wheel mirror may not hold). Everything else torch
# requires (the nvidia-* CUDA libraries among them) is installed as pip would.
set -euo pipefail
dir=${1:?usage: bash scripts/torch-venv.sh DIR [TORCH_REQUIREMENT]}
requirement=${2:-torch==2.13.0+cpu}

python3 -m venv "$dir"
python="$dir/bin/python"
# --retries 0: where only a local wheel index answers, an unreachable default index fails fast.
pip=("$python" -m pip install --quiet --disable-pip-version-check --retries 0)
"${pip[@]}" --no-deps "$requirement"
mapfile -t requires < <("$python" - <<'EOF'
import importlib.metadata as metadata
for requirement in metadata.requires("torch") or []:
    name = requirement.split(";")[0].strip()
    if "extra ==" in requirement or name.split("[")[0].split("<")[0].split(">")[0].split("=")[0].split("~")[0].strip() in ("triton", "cuda-bindings"):
        continue
    print(requirement)
EOF
)
"${pip[@]}" "${requires[@]}" pillow numpy
# torchvision 0.N pairs with torch 2.(N-15); without its own dependencies so torch stays as is.
minor=$("$python" -c 'import torch; print(int(torch.__version__.split(".")[1]))')
"${pip[@]}" --no-deps "torchvision==0.$((minor + 15)).*"
# (torchvision itself is imported through scripts/python/torchvision_compat.py: the local wheel
# is a CUDA build that a CPU torch cannot import directly.)
"$python" -c 'import torch; print(f"s2bnn: torch {torch.__version__} (CUDA {torch.version.cuda}) in {torch.__file__}")'
