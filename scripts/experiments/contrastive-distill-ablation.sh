#!/usr/bin/env bash
# Why contrastive + distillation lands below enhanced MoCo v2 in the default small-scale
# reproduction (docs/training.md): each variant re-runs one student row of `s2bnn reproduce`
# (default preset, same seed, same teacher) with one setting changed, then linear evaluation.
# Usage: scripts/experiments/contrastive-distill-ablation.sh TEACHER_CKPT [OUT] [VARIANT...]
#   TEACHER_CKPT  the teacher of a default run: runs/reproduce-default/teacher/checkpoint.pth
#   VARIANT       names from the list below (default: all); about 6 minutes each on 2 cores.
set -euo pipefail
teacher=${1:?usage: $0 TEACHER_CKPT [OUT] [VARIANT...]}
out=${2:-runs/ablation-contrastive-distill}
shift $(( $# >= 2 ? 2 : 1 ))
cli="$(cd "$(dirname "$0")/../.." && pwd)/dist/cli.js"

declare -A variants=(
  [distill-only-through-moco]='--rows contrastive+distill --contrastive-weight 0'
  [contrastive+distill-wd-1e-4]='--rows contrastive+distill --wd 1e-4'
  [contrastive-wd-0]='--rows contrastive --wd 0'
  [contrastive+distill-distill-weight-4]='--rows contrastive+distill --distill-weight 4'
  [contrastive+distill-distill-T-0.1]='--rows contrastive+distill --distill-temperature 0.1'
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(distill-only-through-moco contrastive+distill-wd-1e-4 contrastive-wd-0 contrastive+distill-distill-weight-4 contrastive+distill-distill-T-0.1)

mkdir -p "$out"
for name in "${names[@]}"; do
  [ -n "${variants[$name]+set}" ] || { echo "unknown variant '$name' (expected one of: ${!variants[*]})" >&2; exit 2; }
  # shellcheck disable=SC2086 # the variant's flags are words
  node "$cli" reproduce --teacher "$teacher" --out "$out/$name" --json "$out/$name.json" ${variants[$name]}
done
node -e '
const fs = require("fs"); const path = require("path");
for (const name of process.argv.slice(2)) {
  const r = JSON.parse(fs.readFileSync(path.join(process.argv[1], name + ".json"), "utf8"));
  for (const row of r.rows) console.log(`| ${name} | ${row.recipe} | ${row.top1.toFixed(2)} | ${row.top5.toFixed(2)} |`);
}' "$out" "${names[@]}"
