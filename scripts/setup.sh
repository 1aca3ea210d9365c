#!/usr/bin/env bash
# Sets s2bnn up on a fresh Debian/Ubuntu machine: the apt packages it builds and tests with, then
# `npm ci`, which builds the native addon (scripts/build.js) and the TypeScript (dist/).
#   libtorch-dev         libtorch 1.13 (CPU) to build against; skip it by setting LIBTORCH or
#                        having a python3 with a pip-installed torch
#   python3-torch        the Python reference the parity tests and benchmark baselines run
#   python3-torchvision  torchvision's ResNets, the reference for the teacher models
#   libopenblas0-pthread a fast BLAS for libtorch (Debian's default is the reference BLAS)
#   libjpeg62-turbo-dev  libjpeg-turbo's libjpeg API, which decodes ImageFolder JPEGs (crop-aware)
#   libpng-dev           libpng, which decodes ImageFolder PNGs
#   python3-pil          PIL, the reference decoder the ImageFolder tests compare against
#   cmake g++ make       the native build
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libtorch-dev python3-torch python3-torchvision libopenblas0-pthread libjpeg62-turbo-dev libpng-dev python3-pil cmake g++ make)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_get=(apt-get)
  elif command -v sudo >/dev/null 2>&1; then
    apt_get=(sudo apt-get)
  else
    echo "s2bnn setup: please install these Debian packages first: ${missing[*]}" >&2
    exit 1
  fi
  echo "s2bnn setup: installing ${missing[*]}"
  "${apt_get[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq "${missing[@]}"
fi

npm ci
