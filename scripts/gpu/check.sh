#!/usr/bin/env bash
# The GPU check, one script end to end (about 10 minutes at most, the build included), for a
# machine with an NVIDIA GPU, a CUDA PyTorch in its first python3, nvcc, CMake and ninja, and
# neither Node.js nor a network: Node.js and node_modules come in .gpu/bundle/ (made beforehand by
# `bash scripts/gpu/bundle.sh` on a machine with npm). Steps, each under its own time limit:
#   1. unpack the bundle; record the GPU, the driver and torch
#   2. build s2bnn from source against that torch (the CUDA build; JPEG/PNG optional)
#   3. the CUDA tests (test/cuda, test/cuda-build.test.ts), with skipping turned into failure
#   4. bench-step --device cuda: the native training step against the PyTorch step on this GPU
#   5. bench-bconv --device cuda: the packed binary convolution against cuDNN's float32 conv
#   6. NCCL: the version libtorch's ProcessGroupNCCL links (a one-GPU job once `s2bnn launch` exists)
# It writes everything to $OUT (or .gpu/report/): gpu-report.json (the summary), each step's log
# and figures. It does not stop at a failed step; the report says which failed.
# S2BNN_GPU_BUILD_LIMIT (seconds, default 330) lets a rehearsal on a small CPU machine build.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
out=${OUT:-$repo/.gpu/report}
mkdir -p "$out"
steps="$out/steps.jsonl"
: > "$steps"
check_started=$(date +%s)

# step NAME LIMIT_SECONDS COMMAND...: runs it with its output in $out/NAME.log and records
# {name, status, seconds}.
step() {
  local name=$1 limit=$2
  shift 2
  local started=$(date +%s)
  echo "== s2bnn gpu check: $name (limit ${limit} s)"
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  local status=$?
  local seconds=$(( $(date +%s) - started ))
  echo "{\"name\":\"$name\",\"status\":$status,\"seconds\":$seconds}" >> "$steps"
  echo "   status $status after ${seconds} s"
  tail -n 5 "$out/$name.log" | sed 's/^/   | /'
  return $status
}

unpack() {
  mkdir -p .gpu/node
  tar -C .gpu/node -xJf .gpu/bundle/node.tar.xz
  [ -d node_modules ] || tar -xJf .gpu/bundle/node_modules.tar.xz
  [ -d dist ] || tar -xJf .gpu/bundle/dist.tar.xz
  node --version
}

machine() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  nproc
}

if [ ! -f .gpu/bundle/node.tar.xz ]; then
  echo "s2bnn gpu check: .gpu/bundle/ is missing: run 'bash scripts/gpu/bundle.sh' on a machine with npm first" >&2
  exit 2
fi
export PATH="$repo/.gpu/node:$PATH"
export -f unpack machine  # `timeout` runs programs, not shell functions
step unpack 120 bash -c unpack
step machine 60 bash -c machine
# The first python3 is the research venv: the resolver builds against its torch and the
# benchmarks run their PyTorch baselines with it.
export S2BNN_PYTHON=${S2BNN_PYTHON:-$(command -v python3)}
S2BNN_IMAGE_CODECS=optional step build "${S2BNN_GPU_BUILD_LIMIT:-330}" node scripts/build.js --source &&
  step info 60 node dist/cli.js info --json
S2BNN_REQUIRE_CUDA=1 S2BNN_REQUIRE_CUDA_BUILD=1 step tests 150 \
  node node_modules/jest/bin/jest.js test/cuda test/cuda-build.test.ts --json --outputFile="$out/tests.json"
# The default cases (8 x 224 and 32 x 64, ResNet-50 teacher), then a GPU-sized batch of each recipe.
step bench-step 240 sh -c "node dist/cli.js bench-step --device cuda --steps 5 --json > '$out/bench-step.jsonl' &&
  node dist/cli.js bench-step --device cuda --recipe distill --batch-size 64 --size 224 --steps 5 --json >> '$out/bench-step.jsonl' &&
  node dist/cli.js bench-step --device cuda --recipe contrastive --batch-size 64 --size 224 --steps 5 --json >> '$out/bench-step.jsonl'"
step bench-bconv 90 sh -c "node dist/cli.js bench-bconv --device cuda --json > '$out/bench-bconv.jsonl' &&
  node dist/cli.js bench-bconv --device cuda --batch 32 --json > '$out/bench-bconv-batch32.jsonl'"

node scripts/gpu/report.js "$out" "$check_started"
