#!/usr/bin/env bash
# Proves that a packed s2bnn (npm pack, with prebuilt binaries from `npm run build:prebuilt --
# --all`) installs without a compiler and works: in a fresh folder, with cmake, ninja, make, the C
# and C++ compilers and nvcc hidden, `npm install ./s2bnn-X.tgz` against each libtorch given, then
# `s2bnn info --json` must say prebuilt, and a ReActNet-A forward and a training step must run.
# With --from-source it also times the same install built from source (tools visible).
#   bash scripts/package-check.sh PACKAGE.tgz [--venv DIR]... [--system] [--from-source]
# --venv DIR: a venv whose python3 (first on PATH) holds the torch to install against;
# --system: no venv, the system libtorch (Debian's libtorch-dev). Prints one JSON line per install.
set -euo pipefail
package=$(realpath "${1:?usage: bash scripts/package-check.sh PACKAGE.tgz [--venv DIR]... [--system] [--from-source]}")
shift
targets=()
from_source=0
while [ $# -gt 0 ]; do
  case $1 in
    --venv) targets+=("$(realpath "$2")"); shift 2 ;;
    --system) targets+=(system); shift ;;
    --from-source) from_source=1; shift ;;
    *) echo "package-check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(system)

work=$(mktemp -d /tmp/s2bnn-package-check-XXXXXX)
trap 'rm -rf "$work"' EXIT
hidden="$work/hidden-tools"
mkdir -p "$hidden"
for tool in cmake ninja make cc c++ gcc g++ clang clang++ nvcc; do
  printf '#!/bin/sh\necho "%s is hidden by package-check" >&2\nexit 127\n' "$tool" > "$hidden/$tool"
  chmod +x "$hidden/$tool"
done

smoke='
const s = require("s2bnn");
s.manualSeed(1);
const info = s.readBuildInfo();
const net = s.reactnetA({ stem: "small", inChannels: 1, width: 0.25 }).eval();
const logits = net.forward(s.randn([2, 1, 32, 32]));
const student = s.moco({ arch: "reactnet-a", width: 0.25, inChannels: 1, stem: "small", head: "mlp", mlpDim: 16 }, { dim: 16, queueSize: 32 });
const trainer = new s.Trainer({ model: student.train(), recipe: "contrastive", optimizer: { kind: "adam", lr: 1e-3 }, keyGroups: 2 });
trainer.step([s.randn([4, 1, 16, 16]), s.randn([4, 1, 16, 16])]).then((r) => {
  if (!Number.isFinite(r.loss)) throw new Error("non-finite loss");
  console.log(JSON.stringify({ binary: info.binary, prebuilt: info.prebuilt ?? null, libtorch: info.libtorchVersion, logits: logits.shape, loss: r.loss }));
});'

install_once() {  # TARGET MODE(prebuilt|source)
  local target=$1 mode=$2 dir="$work/$RANDOM"
  mkdir -p "$dir"
  local path_prefix=""
  [ "$target" = system ] || path_prefix="$target/bin:"
  if [ "$mode" = prebuilt ]; then path_prefix="$hidden:$path_prefix"; fi
  (
    cd "$dir"
    export PATH="$path_prefix$PATH"
    unset S2BNN_PYTHON LIBTORCH
    [ "$mode" = source ] && export S2BNN_BUILD_FROM_SOURCE=1
    echo '{"name":"s2bnn-package-check","private":true}' > package.json
    local started=$(date +%s%N)
    npm install --foreground-scripts --no-audit --no-fund --loglevel=error "$package" > install.log 2>&1 || { cat install.log >&2; exit 1; }
    local millis=$(( ($(date +%s%N) - started) / 1000000 ))
    grep -h "^s2bnn:" install.log | sed 's/^/  /' >&2 || true
    local result
    result=$(node -e "$smoke")
    local facts
    facts=$(npx --no-install s2bnn info --json)
    node -e '
      const [target, mode, millis, result, facts] = process.argv.slice(1);
      const r = JSON.parse(result), f = JSON.parse(facts);
      if (mode === "prebuilt" && (r.binary !== "prebuilt" || f.binary !== "prebuilt")) throw new Error(`expected a prebuilt install, got ${r.binary}`);
      console.log(JSON.stringify({ target, mode, installSeconds: Number((Number(millis) / 1000).toFixed(1)), ...r, info: f }));
    ' "$target" "$mode" "$millis" "$result" "$facts"
  )
}

echo "package-check: $(basename "$package") ($(du -h "$package" | cut -f1))" >&2
for target in "${targets[@]}"; do
  install_once "$target" prebuilt
  if [ $from_source -eq 1 ]; then install_once "$target" source; fi
done
