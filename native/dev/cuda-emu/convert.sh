#!/bin/sh
# Rewrites a CUDA source (native/src/cuda/attention.cu) into C++ for the CPU emulator:
#   convert.sh IN.cu OUT.cpp
# common.cuh and <mma.h> are replaced by emu.h / emu_wmma.h, the extern __shared__ declarations
# by the emulator's per-block buffer, and kernel<<<grid, block, smem, stream>>>(args) launches
# by emu_launch(grid, block, smem, stream, kernel)(args). The rewrite is textual: it expects the
# declarations spelled as in attention.cu and one launch per line start.
set -eu
sed -e 's|#include "cuda/common.cuh"|#include "emu.h"\n#include "emu_wmma.h"|' \
    -e 's|#include <mma.h>|#include <type_traits>|' \
    -e 's|extern __shared__ __align__(16) float smem\[\];|float* smem = (float*)emu_dyn_smem;|' \
    -e 's|extern __shared__ __align__(128) unsigned char tc_smem\[\];|unsigned char* tc_smem = (unsigned char*)emu_dyn_smem;|' \
    -e 's|^\(\s*\)\(.*\)<<<\(.*\)>>>(|\1emu_launch(\3, \2)(|' "$1" > "$2"
# every shared declaration and launch must have been rewritten
if grep -n 'extern __shared__\|<<<' "$2"; then
  echo "convert.sh: unconverted CUDA syntax left in $2 (lines above)" >&2
  exit 1
fi
