#!/bin/sh
# Rewrites a CUDA source (native/src/cuda/*.cu) into C++ for the CPU emulator:
#   convert.sh IN.cu OUT.cpp
# The include of cuda/common.cuh gets emu.h and emu_wmma.h in front of it (the real common.cuh
# then compiles against the emulation; stubs/ stands in for the CUDA headers), <mma.h> goes, the
# extern __shared__ declarations become the emulator's per-block buffer, and
# kernel<<<grid, block, smem, stream>>>(args) launches become
# emu_launch(grid, block, smem, stream, kernel)(args). The rewrite is textual: it expects the
# declarations spelled as in native/src/cuda and the `<<<...>>>(` of a launch on one line.
set -eu
sed -e 's|#include "cuda/common.cuh"|#include "emu.h"\n#include "emu_wmma.h"\n#include "cuda/common.cuh"|' \
    -e 's|#include <mma.h>|#include <type_traits>|' \
    -e 's|extern __shared__ __align__(16) float smem\[\];|float* smem = (float*)emu_dyn_smem;|' \
    -e 's|extern __shared__ __align__(128) unsigned char tc_smem\[\];|unsigned char* tc_smem = (unsigned char*)emu_dyn_smem;|' \
    -e 's|extern __shared__ float4 dw_smem4\[\];|float4* dw_smem4 = (float4*)emu_dyn_smem;|' \
    -e 's|^\(\s*\)\(.*\)<<<\(.*\)>>>(|\1emu_launch(\3, \2)(|' "$1" > "$2"
# every shared declaration and launch must have been rewritten
if grep -n 'extern __shared__\|<<<' "$2"; then
  echo "convert.sh: unconverted CUDA syntax left in $2 (lines above)" >&2
  exit 1
fi
