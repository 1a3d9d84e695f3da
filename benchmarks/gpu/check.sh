#!/usr/bin/env bash
# The prepared GPU run (issue: CUDA backend). On a fresh GPU machine with no network:
#   1. builds the engine, the CUDA module and puzzle_cuda_check with plain CMake (no Node
#      needed), unless a build carried along in $PUZZLE_GPU_BUILD already runs there;
#   2. checks every CUDA op and block against the CPU engine;
#   3. runs the GPU benchmarks and, where python3 has PyTorch, the same shapes in PyTorch;
#   4. prints one table and writes it, with date, card, driver and commit, to
#      $OUT/gpu-check.md (commit it under benchmarks/results/).
# Usage: benchmarks/gpu/check.sh [--quick]      (about 4-6 minutes; --quick about 2)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/puzzle-gpu-check}
mkdir -p "$OUT"
QUICK=${1:-}
BUILD=${PUZZLE_GPU_BUILD:-build-gpu}
T0=$(date +%s)
say() { echo "[check.sh +$(( $(date +%s) - T0 ))s] $*"; }

SMI=$(nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader 2>&1 | head -1)
say "nvidia-smi: $SMI"

if [ -x "$BUILD/puzzle_cuda_check" ] && "$BUILD/puzzle_cuda_check" --version >/dev/null 2>&1; then
  say "using the carried build in $BUILD"
else
  say "building in $BUILD"
  GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
  cmake -S . -B "$BUILD" $GEN -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  grep -E "puzzle:" "$OUT/cmake.log"
  cmake --build "$BUILD" -j "$(nproc)" --target puzzle_cuda_check puzzle_cuda >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  say "built"
fi

say "CUDA against CPU, then benchmarks"
timeout 330 "$BUILD/puzzle_cuda_check" --json "$OUT/ours.json" $QUICK 2>&1 | tee "$OUT/check.log"
RC=${PIPESTATUS[0]}
say "puzzle_cuda_check exit $RC"

if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  say "PyTorch anchor"
  timeout 200 python3 benchmarks/gpu/torch_anchor.py --json "$OUT/torch.json" $QUICK 2>&1 | tee "$OUT/torch.log" | tail -25
else
  say "no PyTorch with CUDA here: table without the anchor"
fi

# The same checks through cuBLAS, where the toolkit or the nvidia-cublas wheel has it: a second
# build (plain CMake finds it), then correctness and the GEMM rates only.
if [ "${PUZZLE_GPU_CUBLAS:-1}" = 1 ] && [ $(( $(date +%s) - T0 )) -lt 330 ]; then
  say "second build with cuBLAS, if found"
  GEN=""; command -v ninja >/dev/null && GEN="-G Ninja"
  if cmake -S . -B build-gpu-cublas $GEN -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake-cublas.log" 2>&1 \
     && grep -q "cuBLAS from" "$OUT/cmake-cublas.log" \
     && cmake --build build-gpu-cublas -j "$(nproc)" --target puzzle_cuda_check >"$OUT/build-cublas.log" 2>&1; then
    grep -E "puzzle: CUDA" "$OUT/cmake-cublas.log"
    timeout 120 build-gpu-cublas/puzzle_cuda_check --only-gemm --quick --json "$OUT/cublas.json" 2>&1 | tee "$OUT/cublas.log" | grep -E "device:|FAIL|checks:|gemm"
  else
    say "no cuBLAS build: $(grep -E 'puzzle: CUDA' "$OUT/cmake-cublas.log" || tail -3 "$OUT/build-cublas.log" 2>/dev/null)"
  fi
fi

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || cat "$BUILD/commit" 2>/dev/null || echo unknown)
[ -f "$OUT/ours.json" ] && python3 benchmarks/gpu/report.py --ours "$OUT/ours.json" --torch "$OUT/torch.json" \
  --md "$OUT/gpu-check.md" --commit "$COMMIT" --smi "$SMI"
say "done"
exit $RC
