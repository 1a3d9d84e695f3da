#!/bin/sh
# CPU emulator tests of the CUDA attention kernels (native/src/cuda/attention.cu, attention_mma.cu), for machines
# without a GPU. convert.sh rewrites attention.cu into C++ where every CUDA thread is an OS thread
# (emu.h: __syncthreads = block barrier, shuffles through per-warp buffers, NaN-filled shared
# memory of exact size; emu_wmma.h: bf16 and nvcuda::wmma m16n16k16 with a deliberately
# non-hardware fragment layout, so code that assumes a layout fails). attention_test.cpp runs the
# ops against fp64 references. The build runs under AddressSanitizer (out-of-bounds global/shared
# accesses) or ThreadSanitizer (shared-memory races: a missing __syncthreads shows up as a data
# race between the threads of a block, since barriers are their only synchronisation).
# ops/run.sh runs the other kernels (elementwise, RMSNorm, RoPE, SwiGLU, GEMM, the bf16 bridge)
# on the same emulator against the CPU backend's op tables.
#
#   native/dev/cuda-emu/run.sh                  # ASan: tc tc16 mma16 tcbwd tcbwd@166912 tcbwd16 mmabwd16 prefill16 decode16 decode16-kernel decode16-mma smallsmem@101376; TSan: tcbwd-small (three sizes) mma16-small mmabwd16-small
#   native/dev/cuda-emu/run.sh asan SET...      # SET = test set of attention_test.cpp [@SMEM_OPTIN[@SMS]]
#   native/dev/cuda-emu/run.sh tsan SET...
#   PUZZLE_CUDA_ATTN=simt native/dev/cuda-emu/run.sh asan all bwd80@166912   # the fp32 kernels
#
# Test sets: tc (tensor-core forward), tc16 (the same on bf16 storage), mma16 / mma16-small and
# mmabwd16 / mmabwd16-small (the mma.sync forward and backward of attention_mma.cu), tcbwd / tcbwd-small
# (tensor-core backward), tcbwd16 (the same on bf16 storage), prefill16 (the tensor-core forward
# over bf16 caches), decode16 (the split-KV decode on bf16 caches; decode16-kernel: its partitions
# merged by the combine kernel instead of the last partition; decode16-mma: the same shapes on the
# tensor-core decode, PUZZLE_CUDA_DECODE=mma), smallsmem (run @101376, the
# 99 KiB of sm_86 / sm_89: the kernels that do not fit decline and the fp32 ones fit), fwd, bwd,
# cached, all (= fwd bwd cached), bwd80, project, capture. @166912 makes the host code size tiles
# for an sm_80 part (opt-in shared memory of an A100) instead of sm_90 (232448, the default); a
# second @ sets the SM count (default 8; capture's allocation counts assume 132: capture@232448@132).
# Environment: EMU_SRC (the .cu to test, default attention.cu; e.g. a mutated copy), EMU_SRC_MMA
# (the same for attention_mma.cu), EMU_BUILD
# (build folder, default ${TMPDIR:-/tmp}/puzzle-cuda-emu), CXX (default g++; C++20).
# Slow by design (256 OS threads per block, sanitizers): a few minutes on 2 cores. Exit status is
# nonzero if any set fails. Nothing here is part of the build or the npm tests.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
src=${EMU_SRC:-$root/native/src/cuda/attention.cu}
build=${EMU_BUILD:-${TMPDIR:-/tmp}/puzzle-cuda-emu}
cxx=${CXX:-g++}
mkdir -p "$build"
"$here/convert.sh" "$src" "$build/attention_emu.cpp"
"$here/convert.sh" "${EMU_SRC_MMA:-$root/native/src/cuda/attention_mma.cu}" "$build/attention_mma_emu.cpp"

# build SANITIZER: $build/attention_test_SANITIZER
build_one() {
  case $1 in
    asan) flags="-fsanitize=address -fno-omit-frame-pointer" ;;
    tsan) flags="-fsanitize=thread" ;;
    *) echo "run.sh: unknown sanitizer $1" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  "$cxx" -std=c++20 -O1 -g $flags -I"$here" -I"$here/stubs" -I"$root/native/src" -I"$root/native/include" "$here/attention_test.cpp" "$build/attention_emu.cpp" "$build/attention_mma_emu.cpp" \
    -o "$build/attention_test_$1" -lpthread
}

# run SANITIZER SET...: every set, reporting all before failing
status=0
run_sets() {
  san=$1
  shift
  build_one "$san"
  for set in "$@"; do
    IFS=@ read -r name optin sms <<END
$set
END
    optin=${optin:-232448}
    sms=${sms:-8}
    echo "== $san $name (smem opt-in $optin, $sms SMs)${PUZZLE_CUDA_ATTN:+ PUZZLE_CUDA_ATTN=$PUZZLE_CUDA_ATTN}"
    # TSan: stop at the first report, so a race fails the set even if the numbers come out right
    if TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" "$build/attention_test_$san" "$name" "$optin" "$sms"; then :; else
      echo "== FAILED: $san $name@$optin@$sms"
      status=1
    fi
  done
}

if [ $# -eq 0 ]; then
  run_sets asan tc tc16 mma16 tcbwd tcbwd@166912 tcbwd16 mmabwd16 prefill16 decode16 decode16-kernel decode16-mma smallsmem@101376
  run_sets tsan tcbwd-small tcbwd-small@166912 tcbwd-small@101376 mma16-small mmabwd16-small
else
  san=$1
  shift
  run_sets "$san" "$@"
fi
[ $status -eq 0 ] && echo "== all sets passed" || echo "== some sets FAILED"
exit $status
