#!/usr/bin/env bash
# One step of the install test (tests/install/CMakeLists.txt wires them up as
# CTest fixtures):
#   install        cmake --install into a fresh prefix; no build-tree paths in
#                  the installed package files
#   models         compile the demo model and ensemble with the installed kiln
#   cmake_package  build examples/embed with find_package(kiln), and its C
#                  program alone against the static runtime (static_c/); run them
#   pkg_config     build classify.c with pkg-config (shared and static), run it
# Environment: KILN_SOURCE_DIR, KILN_BUILD_DIR, KILN_INSTALL_WORK (scratch
# folder), CMAKE, CC.
set -euo pipefail

work=$KILN_INSTALL_WORK
prefix=$work/prefix
models=$work/models
examples=$KILN_SOURCE_DIR/examples/embed
fashion_mnist=$KILN_SOURCE_DIR/examples/fashion_mnist
# The examples compile without warnings.
warnings=(-Wall -Wextra -Wpedantic -Werror)
# Test image 0 is an ankle boot, which the demo model and ensemble recognize.
expected='^image 0: class 9 \(Ankle boot\), probability (0\.[5-9]|1\.)'

# Runs a classify program on image 0 with each model and checks its prediction.
classify() {
  local program=$1 model output
  for model in cnn.so ensemble.so ensemble.json; do
    output=$("$program" "$models/$model" 0) || { echo "FAIL: $program $model 0 exited with $?" >&2; exit 1; }
    echo "$output"
    grep -Eq "$expected" <<<"$output" || { echo "FAIL: $program $model 0 did not print /$expected/" >&2; exit 1; }
  done
}

# Fails unless `program` loads libkiln_runtime.so from the prefix (or, with
# "none", not at all).
check_runtime_from() {
  local program=$1 where=$2 found
  found=$(ldd "$program" | awk '/libkiln_runtime/ {print $3}')
  case $where in
    none) [[ -z $found ]] ;;
    prefix) [[ $(realpath "$found") == $(realpath "$prefix/lib")/* ]] ;;
  esac || { echo "FAIL: $program loads libkiln_runtime from '${found}', expected: $where" >&2; exit 1; }
}

case $1 in
install)
  rm -rf "$prefix"
  "$CMAKE" --install "$KILN_BUILD_DIR" --prefix "$prefix"
  if grep -rlF -e "$KILN_BUILD_DIR" -e "$KILN_SOURCE_DIR" "$prefix/lib/cmake" "$prefix/lib/pkgconfig" "$prefix/include"; then
    echo "FAIL: the installed files above name the source or build tree" >&2
    exit 1
  fi
  ;;
models)
  rm -rf "$models" && mkdir -p "$models"
  kiln=$prefix/bin/kiln
  "$kiln" compile "$fashion_mnist/cnn.onnx" -o "$models/cnn.so" --labels "$fashion_mnist/labels.txt" --quiet
  # The shipped ensemble compiled into one artifact (labels from its manifest)...
  "$kiln" compile --ensemble "$fashion_mnist/ensemble/ensemble.json" -o "$models/ensemble.so" --quiet
  # ...and as compiled members that the runtime combines (kiln_ensemble_open),
  # equally weighted.
  members=()
  for onnx in "$fashion_mnist"/ensemble/member*.onnx; do
    member=$models/$(basename "$onnx" .onnx).so
    "$kiln" compile "$onnx" -o "$member" --quiet
    members+=(--member "$member")
  done
  "$kiln" ensemble create -o "$models/ensemble.json" "${members[@]}" --labels "$fashion_mnist/labels.txt"
  ;;
cmake_package)
  for project in "$examples" "$KILN_SOURCE_DIR/tests/install/static_c"; do
    build=$work/$(basename "$project")-build
    rm -rf "$build"
    "$CMAKE" -S "$project" -B "$build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="${warnings[*]}" -DCMAKE_CXX_FLAGS="${warnings[*]}"
    "$CMAKE" --build "$build" --parallel 2
  done
  check_runtime_from "$work/embed-build/classify_c" prefix
  check_runtime_from "$work/static_c-build/classify_c_static" none
  for program in embed-build/classify_c embed-build/classify_cpp static_c-build/classify_c_static; do
    classify "$work/$program"
  done
  ;;
pkg_config)
  build=$work/pkg-config-build
  rm -rf "$build" && mkdir -p "$build/static-only"
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  sources=("$examples/classify.c" "$examples/fashion_mnist.c")
  # The shared library lies outside the loader's paths: record it in the RUNPATH.
  # shellcheck disable=SC2046 # pkg-config prints several words
  "$CC" -std=c99 "${warnings[@]}" -o "$build/classify_c" "${sources[@]}" $(pkg-config --cflags --libs kiln-runtime zlib) \
    -Wl,-rpath,"$(pkg-config --variable=libdir kiln-runtime)"
  check_runtime_from "$build/classify_c" prefix
  classify "$build/classify_c"
  # Static: a folder holding only the archive, searched first, makes
  # -lkiln_runtime pick it; --static adds the C++ runtime it needs.
  ln -s "$prefix/lib/libkiln_runtime.a" "$build/static-only/"
  # shellcheck disable=SC2046
  "$CC" -std=c99 "${warnings[@]}" -o "$build/classify_c_static" "${sources[@]}" -L"$build/static-only" \
    $(pkg-config --static --cflags --libs kiln-runtime zlib)
  check_runtime_from "$build/classify_c_static" none
  classify "$build/classify_c_static"
  ;;
*)
  echo "usage: check_install.sh install|models|cmake_package|pkg_config" >&2
  exit 2
  ;;
esac
