#!/usr/bin/env bash
# Installs every Debian 12 package kiln needs to build, test and fuzz.
# Used by README's two commands and by .ci/run, so there is one list.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  build-essential libc6-dev libgcc-12-dev cmake ninja-build ccache pkgconf git \
  llvm-19-dev llvm-19-tools liblld-19-dev clang-19 libclang-rt-19-dev \
  zlib1g-dev libzstd-dev libedit-dev libxml2-dev libxml2-utils libffi-dev libncurses-dev \
  libonnx-dev libprotobuf-dev protobuf-compiler \
  catch2 libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev libsqlite3-dev libpq-dev nlohmann-json3-dev zlib1g-dev \
  postgresql \
  dataset-fashion-mnist \
  python3 python3-numpy python3-onnx python3-torch python3-torchvision
