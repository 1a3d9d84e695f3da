#!/usr/bin/env bash
# The CUDA elementwise, normalisation, RoPE, SwiGLU, GEMM and bf16-attention-bridge kernels, run
# on the CPU under an emulator and compared with the CPU backend's op tables (fp32 and bf16).
# For machines without a GPU: it catches indexing, alignment, vector-packing and missing-barrier
# bugs before a GPU run does. Not a speed test, and not a substitute for benchmarks/gpu/check.sh.
#
# How: the emulator of the attention tests (../emu.h, ../emu_wmma.h, ../convert.sh: every CUDA
# thread an OS thread, real barriers, shuffles through per-warp buffers, nvcuda::wmma with a
# deliberately non-hardware fragment layout) runs the converted kernels; the test links the CPU
# engine for the reference tables. Built with ASan and UBSan. Needs the CPU engine built first
# (npx cmake-js compile --out build, or cmake -S . -B build-gpu).
#
#   native/dev/cuda-emu/ops/run.sh          (about 3 minutes on 2 cores, the compiles included)
#   native/dev/cuda-emu/ops/run.sh tsan     (ThreadSanitizer instead, on the mma.sync GEMM's cases
#                                            and the fused dot kernels': cp.async stages, shared
#                                            atomics, barriers)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(cd "$HERE/../../../.." && pwd)
SAN=address,undefined
WORK=${EMU_WORK:-/tmp/puzzle-cuda-emu-ops}
case ${1:-} in
  "") ;;
  tsan) SAN=thread WORK=${EMU_WORK:-/tmp/puzzle-cuda-emu-ops-tsan}; export OPS_ONLY=tsan ;;
  *) echo "usage: $0 [tsan]" >&2; exit 2 ;;
esac
CORE=$(ls "$W"/build/libpuzzle_core.a "$W"/build-gpu/libpuzzle_core.a 2>/dev/null | head -1 || true)
[ -n "$CORE" ] || { echo "build the CPU engine first (libpuzzle_core.a not found)"; exit 2; }
mkdir -p "$WORK/src" "$WORK/obj"
KERNELS="elementwise rmsnorm rope swiglu gemm gemm_mma attention_bf16 norm_linear"
EMU=$(cd "$HERE/.." && pwd)
for f in $KERNELS; do "$EMU/convert.sh" "$W/native/src/cuda/$f.cu" "$WORK/src/$f.cpp"; done
FLAGS="-std=c++20 -O1 -g -fsanitize=$SAN -fno-sanitize-recover=all -Wall -Wno-unknown-pragmas -Wno-unused-function ${EXTRA:-}"
INC="-I$EMU -I$EMU/stubs -I$W/native/src -I$W/native/include"
rm -f "$WORK"/obj/*.o  # a failed compile must not leave an older object to link
pids=""
for f in $KERNELS; do g++ $FLAGS $INC -c "$WORK/src/$f.cpp" -o "$WORK/obj/g_$f.o" & pids="$pids $!"; done
g++ $FLAGS $INC -c "$HERE/ops_test.cpp" -o "$WORK/obj/test.o" & pids="$pids $!"
for p in $pids; do wait "$p" || { echo "ops/run.sh: a compile failed (above)"; exit 1; }; done
g++ -fsanitize=$SAN "$WORK"/obj/*.o "$CORE" -o "$WORK/ops_test" -lpthread
"$WORK/ops_test"
