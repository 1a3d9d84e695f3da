#!/usr/bin/env bash
# The prepared GPU run (issue: CUDA backend). On a fresh GPU machine with no network:
#   1. builds the engine, the CUDA module and the GPU tools with plain CMake (no Node needed;
#      cuBLAS is used when the toolkit has it), unless a build carried along in
#      $PUZZLE_GPU_BUILD already runs there;
#   2. checks every CUDA op and block against the CPU engine, in bf16 also with the candidate
#      paths switched on (PUZZLE_CUDA_PDL=1, PUZZLE_CUDA_DECODE=mma), the earlier decode attention
#      (PUZZLE_CUDA_DECODE=simt),
#      the inference fusions switched off (PUZZLE_CUDA_FUSE=0) and, with cuBLAS present, our own
#      GEMM kernels and cuBLAS for the few-row products too, each timed in rows tagged [pdl],
#      [decode=mma], [decode=simt], [fuse=off], [gemm=own], [gemm=cublas];
#   3. checks the GPU from Node (device tensors, ops, blocks, a model) where node and the carried
#      dist/ and build/Release/puzzle.node are there;
#   4. runs the GPU benchmarks and, where python3 has PyTorch, the same shapes in PyTorch, then
#      where an 8B block's training and decode steps spend their GPU time, kernel by kernel (CUPTI),
#      ours beside PyTorch's;
#      then `puzzle profile --device cuda`'s native side on Llama-3.1-8B and -70B shapes;
#   5. prints one table and writes it, with date, card, driver and commit, to
#      $OUT/gpu-check.md (commit it under benchmarks/results/), with each candidate pass set
#      against the default rows and a verdict (report.py: faster on every row and every check of
#      the pass passed, or not).
# Usage: benchmarks/gpu/check.sh [--quick]      (about 6-8 minutes; --quick about 4-5, the build included:
#        251 s on an H200 on 2026-11-30, before the [decode=mma] and [gemm=cublas] passes)
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
  cmake --build "$BUILD" -j "$(nproc)" --target puzzle_cuda_check puzzle_cuda_profile puzzle_cuda >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  say "built"
fi

# fp32 and bf16 in two processes: a fault in one (a sticky CUDA error ends a process's use of
# the device) leaves the other's checks and timings standing
say "CUDA against CPU, then benchmarks: fp32"
timeout 240 "$BUILD/puzzle_cuda_check" --part f32 --json "$OUT/ours.json" $QUICK 2>&1 | tee "$OUT/check.log"
RC=${PIPESTATUS[0]}
say "puzzle_cuda_check --part f32 exit $RC"
say "CUDA against CPU, then benchmarks: bf16 (mixed precision)"
timeout 240 "$BUILD/puzzle_cuda_check" --part bf16 --json "$OUT/ours-bf16.json" $QUICK 2>&1 | tee -a "$OUT/check.log"
RC16=${PIPESTATUS[0]}
say "puzzle_cuda_check --part bf16 exit $RC16"
[ "$RC" = 0 ] && RC=$RC16
# Candidate passes: the bf16 checks and the decode rows (GEMVs, decode attention, decode steps)
# again with one setting of the environment, rows marked [TAG] beside the default ones, so that
# report.py's candidate table says whether the setting should become the default.
PASS_JSON=()
decode_pass() {  # decode_pass TAG VAR=VALUE
  local json="$OUT/pass-${1//=/-}.json"
  say "bf16 checks and decode rows again with $2 (quick)"
  env "$2" timeout 150 "$BUILD/puzzle_cuda_check" --part bf16 --quick --only-decode --tag "$1" --json "$json" 2>&1 |
    tee -a "$OUT/check.log" | grep -E "FAIL|checks:|decode (step|attention)|gemv 8B"
  local rc=${PIPESTATUS[0]}
  say "puzzle_cuda_check --part bf16 ($1) exit $rc"
  [ "$RC" = 0 ] && RC=$rc
  PASS_JSON+=("$json")
}
# the tensor-core decode attention (attention.cu's attn_decode_mma_kernel)
decode_pass decode=mma PUZZLE_CUDA_DECODE=mma
# the decode attention before the streamed kernel: whether the streamed kernel pays
decode_pass decode=simt PUZZLE_CUDA_DECODE=simt
# programmatic dependent launch (sm_90+; cuda/common.cuh's launch_pdl): a kernel that touched
# memory before its pdl_wait would show in the checks
decode_pass pdl PUZZLE_CUDA_PDL=1
# the inference fusions off (norm_linear.cu's compositions: 9 kernels a decode step instead of 5)
decode_pass fuse=off PUZZLE_CUDA_FUSE=0
if "$BUILD/puzzle_cuda_check" --version | grep -q cublas; then
  # cuBLAS for the few-row products too (the fused dot kernels give way to the compositions):
  # PyTorch's batch-1 decode GEMVs (cuBLAS) read their weights at 3.1-4.2 TB/s where ours read
  # them at 2.8-3.2 (benchmarks/results/gpu-h200-2026-11-30-b.md's kernel rows)
  decode_pass gemm=cublas PUZZLE_CUDA_GEMM=cublas
  # rows tagged [gemm=own] in the table: what a build without cuBLAS gets (gemm_mma.cu for bf16)
  say "the same checks with our own GEMM kernels (PUZZLE_CUDA_GEMM=own)"
  PUZZLE_CUDA_GEMM=own timeout 120 "$BUILD/puzzle_cuda_check" --only-gemm --quick --tag gemm=own \
    --json "$OUT/own-gemm.json" 2>&1 | tee "$OUT/own-gemm.log" | grep -E "FAIL|checks:|gemm [0-9]|gemv 8B .* M64"
fi

# Where a bf16 8B block's training step and decode steps spend their GPU time, kernel by kernel
# (CUPTI activity records; PyTorch's beside them from torch.profiler in the anchor below)
say "kernel breakdowns (puzzle_cuda_check --kernels)"
timeout 90 "$BUILD/puzzle_cuda_check" --kernels --json "$OUT/kernels.json" 2>&1 | tee -a "$OUT/check.log" | grep -E "kernels of|unavailable|skipped"

# The GPU from Node (device tensors, ops, fp32/bf16 blocks, a model's step and decode against the
# CPU engine: node_device_check.mjs). A GPU machine has no npm registry, so it needs dist/ and
# build/Release/puzzle.node carried from the build machine (after npm ci; the run tool's
# carry: ["dist", "build/Release/puzzle.node"]); skipped, with the reason, otherwise.
CUDA_SO=$(find "$BUILD" -name puzzle_cuda.so 2>/dev/null | head -1)
if ! command -v node >/dev/null; then
  say "node device checks skipped: no node on this machine"
elif [ ! -f dist/core/ops.js ] || [ ! -f build/Release/puzzle.node ] || [ -z "$CUDA_SO" ]; then
  say "node device checks skipped: dist/ or build/Release/puzzle.node was not carried, or no puzzle_cuda.so in $BUILD"
else
  say "the GPU from Node ($(node --version))"
  PUZZLE_CUDA_MODULE="$PWD/$CUDA_SO" timeout 240 node benchmarks/gpu/node_device_check.mjs 2>&1 | tee "$OUT/node-device.log"
  RCN=${PIPESTATUS[0]}
  say "node_device_check exit $RCN"
  [ "$RC" = 0 ] && RC=$RCN
  # a decode step driven from Node: a call (and a device synchronisation) per layer against one
  # for all layers (8 layers of Llama-3.1-8B's shape, bf16; timing only, it sets no exit status)
  say "decode step from Node: per-layer calls against one call (benchmarks/decode-stack.mjs)"
  PUZZLE_CUDA_MODULE="$PWD/$CUDA_SO" timeout 90 node benchmarks/decode-stack.mjs --device cuda --dtype bfloat16 \
    --hidden 4096 --heads 32 --kv 8 --ffn 14336 --layers 8 --past 1024 --steps 16 --rounds 5 2>&1 | tee "$OUT/decode-stack.log"
fi

if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  say "PyTorch anchor"
  timeout 200 python3 benchmarks/gpu/torch_anchor.py --json "$OUT/torch.json" --kernels $QUICK > "$OUT/torch.log" 2>&1; tail -3 "$OUT/torch.log"
else
  say "no PyTorch with CUDA here: table without the anchor"
fi

# puzzle profile --device cuda on real model shapes (what the TS command runs; no Node needed):
# every option of the default search space of Llama-3.1-8B and -70B, one block kind at a time.
# profile NAME TIMEOUT ARGS...: bf16 (what a GPU serves); should that fail, fp32 so the run still
# has a cost table to show
profile() {
  name=$1 limit=$2
  shift 2
  say "profile: $name shapes, bf16 (batch 1, prompt 512, 16 generated)"
  if ! timeout "$limit" "$BUILD/puzzle_cuda_profile" "$@" --dtype bf16 > "$OUT/profile-$name.json" 2>"$OUT/profile-$name.err"; then
    tail -3 "$OUT/profile-$name.err"
    say "profile: $name bf16 failed; fp32 instead"
    timeout "$limit" "$BUILD/puzzle_cuda_profile" "$@" --dtype f32 > "$OUT/profile-$name.json" 2>"$OUT/profile-$name.err" || tail -3 "$OUT/profile-$name.err"
  fi
}
if [ -x "$BUILD/puzzle_cuda_profile" ]; then
  COMMON="--batch 1 --prompt 512 --generate 16 --repeats 5 --children 3 --additivity-layers 4"
  # shellcheck disable=SC2086
  profile 8b 150 --hidden 4096 --heads 32 --head-dim 128 --vocab 128256 --attention kv8,kv4,kv2,kv1,linear,noop \
    --ffn 14336,10752,7168,3584,1536,linear,noop $COMMON
  # shellcheck disable=SC2086
  profile 70b 200 --hidden 8192 --heads 64 --head-dim 128 --vocab 128256 --attention kv8,kv4,kv2,kv1,linear,noop \
    --ffn 28672,21504,14336,7168,2816,linear,noop $COMMON
  python3 benchmarks/gpu/profile_table.py "$OUT/profile-8b.json" "$OUT/profile-70b.json" | tee "$OUT/profile.md"
fi

# the commit the caller named in $BUILD/commit first: a .git on the device can be stale
COMMIT=$(cat "$BUILD/commit" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
PASS_OURS=()
for j in "${PASS_JSON[@]}"; do PASS_OURS+=(--ours "$j"); done
{ [ -f "$OUT/ours.json" ] || [ -f "$OUT/ours-bf16.json" ]; } && python3 benchmarks/gpu/report.py --ours "$OUT/ours.json" \
  --ours "$OUT/ours-bf16.json" "${PASS_OURS[@]}" --ours "$OUT/own-gemm.json" --torch "$OUT/torch.json" --kernels "$OUT/kernels.json" --md "$OUT/gpu-check.md" --commit "$COMMIT" --smi "$SMI"
[ -f "$OUT/profile.md" ] && { printf '\n## puzzle profile --device cuda (puzzle_cuda_profile)\n' ; cat "$OUT/profile.md"; } >> "$OUT/gpu-check.md"
[ -f "$OUT/node-device.log" ] && { printf '\n## The GPU from Node (node_device_check.mjs)\n\n```\n'; cat "$OUT/node-device.log"; printf '```\n'; } >> "$OUT/gpu-check.md"
[ -f "$OUT/decode-stack.log" ] && { printf '\n## A decode step from Node (decode-stack.mjs)\n\n```\n'; cat "$OUT/decode-stack.log"; printf '```\n'; } >> "$OUT/gpu-check.md"
# at most 8 files come back from a lent machine: keep the results, drop the build logs
rm -f "$OUT/cmake.log" "$OUT/build.log"  # a failed build exited above with its tail printed
rm -f "$OUT/torch.log" "$OUT/own-gemm.json" "$OUT/profile.md" "$OUT"/profile-*.err 2>/dev/null
rm -f "${PASS_JSON[@]}" "$OUT/kernels.json"  # in gpu-check.md, their logs in check.log
rm -f "$OUT/node-device.log" "$OUT/decode-stack.log"  # in gpu-check.md
say "done"
exit $RC
