#!/usr/bin/env bash
# Builds puzzle_cuda_profile (native/tools/cuda_profile.cpp, what `puzzle profile --device cuda`
# runs) against the CPU emulator, for machines without a GPU:
#   native/dev/cuda-emu/module/build-profiler.sh OUT
#   PUZZLE_CUDA_PROFILER=OUT puzzle profile --device cuda ...
# The kernels are the objects of the emulated module beside OUT (build.sh builds or checks
# $(dirname OUT)/puzzle_cuda_emu.so first, in the same EMU_WORK);
# the tool's CUDA events, stream capture and graph replays are emu_runtime.h's. Its timings are
# the emulator's (CPU time), so only the contract is checked with it, never a speed. Needs the
# CPU engine (build/libpuzzle_core.a, from `npm ci`). Environment as build.sh's.
set -euo pipefail
[ $# -eq 1 ] && [[ $1 != -* ]] || { echo "usage: $0 OUT" >&2; exit 2; }
OUT=$1
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
EMU=$(cd "$HERE/.." && pwd)
W=$(cd "$HERE/../../../.." && pwd)
WORK=${EMU_WORK:-/tmp/puzzle-cuda-emu-module}
CXX=${CXX:-g++}
CORE=$(ls "$W"/build/libpuzzle_core.a 2>/dev/null | head -1 || true)
[ -n "$CORE" ] || { echo "build-profiler.sh: needs the CPU engine (build/libpuzzle_core.a: run npm ci)" >&2; exit 2; }

# the module beside OUT (where the device tests keep theirs), and with it the kernels' objects
# in $WORK/obj: build.sh rebuilds nothing while that module is up to date
MODULE=$(dirname "$OUT")/puzzle_cuda_emu.so
EMU_WORK=$WORK bash "$HERE/build.sh" "$MODULE" >/dev/null

if [ ! -x "$OUT" ] || [ "$MODULE" -nt "$OUT" ] || [ "$CORE" -nt "$OUT" ] || [ "$W/native/tools/cuda_profile.cpp" -nt "$OUT" ] ||
  [ "$HERE/build-profiler.sh" -nt "$OUT" ]; then
  exec 9>"$WORK/.lock-profiler"
  if command -v flock >/dev/null; then flock 9; fi
  mkdir -p "$(dirname "$OUT")"
  # cuda_runtime.h is the empty stub: the runtime API comes from emu.h, included first
  "$CXX" -std=c++20 -O2 -fno-strict-aliasing -DEMU_DEVICE_POINTERS -DEMU_FIBERS -include "$EMU/emu.h" -include "$EMU/emu_wmma.h" \
    -I"$EMU" -I"$EMU/stubs" -I"$W/native/src" -I"$W/native/include" -c "$W/native/tools/cuda_profile.cpp" -o "$WORK/cuda_profile.o"
  "$CXX" -o "$OUT.tmp" "$WORK/cuda_profile.o" "$WORK"/obj/*.o "$CORE" -lpthread -ldl
  mv -f "$OUT.tmp" "$OUT"
  echo "build-profiler.sh: built $OUT (puzzle_cuda_profile under the CPU emulator)"
fi
