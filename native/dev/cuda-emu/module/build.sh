#!/usr/bin/env bash
# Builds the whole CUDA module (every native/src/cuda/*.cu, module.cu's C entry points included)
# under the CPU emulator as a shared object, for Node tests on machines without a GPU:
#   native/dev/cuda-emu/module/build.sh OUT.so [--smoke]
#   PUZZLE_CUDA_MODULE=OUT.so node ...    (native/src/cuda_loader.cpp dlopens it)
# Each .cu goes through ../convert.sh (see ../emu.h; here every CUDA thread is a fiber switched
# at barriers, EMU_FIBERS: a 2-layer forward 0.26 s against 19.5 s on OS threads; no sanitizers) and g++ -O2;
# no cuBLAS, so gemm.cu runs its own wmma kernels. The object is self-contained like the real
# module (linked with --no-undefined; only the puzzle_cuda_* entry points are exported). Nothing
# is rebuilt while OUT.so is newer than every source, emulator header and this script.
# --smoke then runs smoke.cpp against it (the module's ops against the CPU backend; needs
# build/libpuzzle_core.a). Environment: EMU_WORK (work folder, default
# /tmp/puzzle-cuda-emu-module), CXX (default g++), JOBS (parallel compiles, default 2),
# EMU_CXXFLAGS (more flags, e.g. -DEMU_PROFILE for per-kernel launch counts and times at exit;
# not tracked by the up-to-date check: use another OUT and EMU_WORK).
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] && [[ $1 != -* ]] || { echo "usage: $0 OUT.so [--smoke]" >&2; exit 2; }
OUT=$1
SMOKE=0
if [ $# -eq 2 ]; then
  [ "$2" = --smoke ] || { echo "usage: $0 OUT.so [--smoke]" >&2; exit 2; }
  SMOKE=1
fi
HERE=$(cd "$(dirname "$0")" && pwd)
EMU=$(cd "$HERE/.." && pwd)
W=$(cd "$HERE/../../../.." && pwd)
WORK=${EMU_WORK:-/tmp/puzzle-cuda-emu-module}
CXX=${CXX:-g++}
JOBS=${JOBS:-2}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

shopt -s nullglob
SRCS=("$W"/native/src/cuda/*.cu)
[ ${#SRCS[@]} -gt 0 ] || { echo "build.sh: no native/src/cuda/*.cu" >&2; exit 1; }

# up to date: OUT.so newer than every input (a new or removed .cu changes the folder's mtime)
stale() {
  [ -f "$OUT" ] || return 0
  local f
  for f in "$W"/native/src/cuda/* "$W"/native/src/cuda "$W"/native/include/puzzle/* "$EMU"/*.h "$EMU"/stubs/* \
    "$EMU"/convert.sh "$HERE"/build.sh; do
    [ "$f" -nt "$OUT" ] && return 0
  done
  return 1
}

# one build at a time per work folder (parallel test workers may all ask for the module)
mkdir -p "$WORK"
if command -v flock >/dev/null; then exec 9>"$WORK/.lock" && flock 9; fi

if stale; then
  mkdir -p "$WORK/src" "$WORK/obj"
  # a failed build leaves neither an older object to link nor an outdated module to load
  rm -f "$WORK"/src/*.cpp "$WORK"/obj/*.o "$OUT"
  # no strict aliasing: the kernels type-pun (bf16 pairs as unsigned), as nvcc allows
  # EMU_DEVICE_POINTERS: kernel arguments and copies are checked to be device memory (emu.h)
  FLAGS=(-std=c++20 -O2 -fPIC -fno-strict-aliasing -DEMU_DEVICE_POINTERS -DEMU_FIBERS ${EMU_CXXFLAGS:-}
    -I"$EMU" -I"$EMU/stubs" -I"$W/native/src" -I"$W/native/include")
  for s in "${SRCS[@]}"; do
    n=$(basename "$s" .cu)
    "$EMU/convert.sh" "$s" "$WORK/src/$n.cpp"
  done
  # compile JOBS at a time; any failure fails the build (after the running ones finish)
  pids=() names=() failed=0
  wait_one() {
    if ! wait "${pids[0]}"; then echo "build.sh: compiling ${names[0]} failed (above)" >&2; failed=1; fi
    pids=("${pids[@]:1}") names=("${names[@]:1}")
  }
  for s in "${SRCS[@]}"; do
    n=$(basename "$s" .cu)
    while [ ${#pids[@]} -ge "$JOBS" ]; do wait_one; done
    "$CXX" "${FLAGS[@]}" -c "$WORK/src/$n.cpp" -o "$WORK/obj/$n.o" &
    pids+=($!) names+=("$n.cu")
  done
  while [ ${#pids[@]} -gt 0 ]; do wait_one; done
  [ $failed -eq 0 ] || exit 1
  # export only the C entry points: the kernels' C++ symbols (and emu.h's globals) stay private,
  # so nothing in the host process (the addon, node) can interpose on them
  printf '{ global: puzzle_cuda_*; local: *; };\n' > "$WORK/exports.map"
  mkdir -p "$(dirname "$OUT")"
  "$CXX" -shared -o "$OUT.tmp" "$WORK"/obj/*.o -Wl,--no-undefined -Wl,--version-script="$WORK/exports.map" -lpthread
  mv -f "$OUT.tmp" "$OUT"
  echo "build.sh: built $OUT (${#SRCS[@]} CUDA sources under the CPU emulator)"
fi

if [ $SMOKE -eq 1 ]; then
  CORE=$(ls "$W"/build/libpuzzle_core.a "$W"/build-gpu/libpuzzle_core.a 2>/dev/null | head -1 || true)
  [ -n "$CORE" ] || { echo "build.sh: --smoke needs the CPU engine (libpuzzle_core.a not found)" >&2; exit 2; }
  if [ ! -x "$WORK/smoke" ] || [ "$HERE/smoke.cpp" -nt "$WORK/smoke" ] || [ "$CORE" -nt "$WORK/smoke" ]; then
    "$CXX" -std=c++20 -O1 -g -Wall -I"$W/native/include" "$HERE/smoke.cpp" "$CORE" -o "$WORK/smoke.tmp" -ldl -lpthread
    mv -f "$WORK/smoke.tmp" "$WORK/smoke"
  fi
  "$WORK/smoke" "$OUT"
fi
