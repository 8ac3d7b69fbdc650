#!/usr/bin/env bash
# The device calls of issue #13, by stage, run from the repository root on a lent GPU machine:
#   bash benchmarks/gpu_calls.sh STAGE [STAGE ...]
# Results and logs go to $OUT (default ./gpu_out). Stages:
#   setup        install carried wheels (.whl/) into /tmp/site; join the Inception weights from .inc/ parts
#                (kept in /root/inc between calls of one warm machine); print the environment
#   gputests     pytest -m gpu of the fused-resnet and one-pass GroupNorm tests
#   groupnorm    one-pass GroupNorm kernel vs inductor per GroupNorm shape (benchmarks/group_norm.py)
#   fused        per-resnet benchmark of the fused block (benchmarks/fused_resnet.py): tile sweep on two
#                shapes (fast and exact SiLU), then every shape at the short list of tiles
#   tmaconv      TMA implicit-GEMM 3x3 convolutions vs cuDNN per convolution shape (benchmarks/tma_conv.py)
#   settings     whole-UNet settings, one process each (cold compile): compile+fp16 and the fused ones
#   overlap      Inception features of batch k-1 on a side stream while batch k samples (benchmarks overlap; OSETTING,
#                OBATCHES); zero-weight Inception copy from .inc/ when the standard weights are not joined
#   kernels      inductor's Triton kernels of one compiled UNet call in GB/s (python -m benchmarks kernels)
#   full50k      the user's route: pytest -m full, 50k samples, DDPM CIFAR-10 random weights (FULL_ARGS extra),
#                inductor's on-disk cache in $CCACHE (default /root/ccache): COLD=1 empties it first
# Environment: GPUTESTS (test files), SETTINGS_BATCH (batch of `settings`, default 1024), TC_CONFIGS (tiles for `tmaconv`), GN_CONFIGS (launch configs for `groupnorm`), FR_CONFIGS (tile list for `fused`), SETTINGS (for `settings`), FULL_ARGS (extra pytest options),
#              RUN_NAME (full50k's output names), CCACHE, COLD.
set -uo pipefail
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTHONPATH="/tmp/site:$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PY:-python3}"
# the suite's plugin: by its pytest11 entry point when the package is installed, else named with -p
PLUGIN="-p maskpro_eval.pytest_plugin"
$PY -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.value.startswith('maskpro_eval') for e in m.entry_points(group='pytest11')) else 1)" 2>/dev/null && PLUGIN=""

stage_setup() {
  if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
  fi
  mkdir -p /root/inc
  if ls .inc/*part_* >/dev/null 2>&1; then cp .inc/*part_* /root/inc/; fi
  if [ ! -f /root/inc/default_1.pt ] && [ "$(ls /root/inc/*part_* 2>/dev/null | wc -l)" -ge 3 ]; then
    cat /root/inc/*part_* > /root/inc/default_1.pt
  fi
  true
  { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    $PY -c "import torch, triton, diffusers; print('torch', torch.__version__, 'triton', triton.__version__, 'diffusers', diffusers.__version__, 'cudnn', torch.backends.cudnn.version())"
    ls -la /root/inc; sha256sum /root/inc/default_1.pt 2>/dev/null || echo "no joined Inception weights yet"; } | tee "$OUT/env.txt"
}

stage_gputests() {
  timeout 240 $PY -m pytest -p no:cacheprovider $PLUGIN -q -m gpu -o addopts="" \
    ${GPUTESTS:-tests/test_fused_resnet.py tests/test_group_norm.py} -k "cuda" 2>&1 | tail -25 | tee "$OUT/gputests.log"
}

stage_groupnorm() {
  timeout 240 $PY -m benchmarks.group_norm --batch 1024 --dtype float16 --reps 20 ${GN_CONFIGS:+--configs "$GN_CONFIGS"} \
    --out "$OUT/group_norm.json" 2>&1 | grep -v -i warn | tee "$OUT/group_norm.log"
}

stage_fused() {
  local sweep="${FR_CONFIGS:-64,128,32,4,3;128,128,32,8,3;64,256,32,8,3;128,256,32,8,3;128,128,64,8,3}"
  [ -n "${FR_SKIP_SWEEP:-}" ] || timeout 200 $PY -m benchmarks.fused_resnet --batch 1024 --dtype float16 \
    --channels-last --reps 10 --shapes '128->128@32x32;256->256@16x16' --configs "$sweep" --silu fast \
    --out "$OUT/fr_sweep.json" 2>&1 | grep -v -i warn | tee "$OUT/fr_sweep.log"
  timeout 150 $PY -m benchmarks.fused_resnet --batch 1024 --dtype float16 --channels-last --reps 10 --no-compile \
    --configs "${FR_SHORT:-128,128,32,8,3;64,256,32,8,3}" --silu "${FR_SILU:-fast,exact}" --out "$OUT/fr_all.json" \
    2>&1 | grep -v -i warn | tee "$OUT/fr_all.log"
}

stage_tmaconv() {
  timeout "${TC_TIMEOUT:-400}" $PY -m benchmarks.tma_conv --batch 1024 --dtype float16 --reps 20 \
    ${TC_CONFIGS:+--configs "$TC_CONFIGS"} --out "$OUT/tma_conv.json" 2>&1 | grep -v -i warn | tee "$OUT/tma_conv.log"
}

stage_settings() {
  local s
  for s in ${SETTINGS:-compile+fp16 fp16+fr+graph compile+fp16+fr}; do
    timeout "${SETTINGS_TIMEOUT:-150}" $PY -m benchmarks settings --model ddpm-cifar10 --batch "${SETTINGS_BATCH:-1024}" --rounds 10 --batch-rounds 1 \
      --settings "$s" --out "$OUT/settings_${s//+/_}${SETTINGS_BATCH:+_b$SETTINGS_BATCH}.json" 2>&1 | grep -v -i warn | tail -3 | tee -a "$OUT/settings.log"
  done
}

stage_overlap() {
  # Inception features pipelined with sampling (python -m benchmarks overlap). Without the joined standard weights
  # it times a same-architecture copy with zeroed weights (.inc/inception_zero_weights.pt.xz, 39 KB: made from
  # default_1.pt by zeroing every parameter; the speed is Inception's, the features are zeros)
  local w=/root/inc/default_1.pt trust=""
  if [ ! -f "$w" ]; then
    w=/root/inc/inception_zero.pt trust="--trust-weights"
    $PY -c "import lzma, sys; open(sys.argv[2], 'wb').write(lzma.decompress(open(sys.argv[1], 'rb').read()))" \
      .inc/inception_zero_weights.pt.xz "$w" || return 1
  fi
  timeout "${OVERLAP_TIMEOUT:-300}" $PY -m benchmarks overlap --model ddpm-cifar10 --setting "${OSETTING:-compile+fp16}" \
    --batch 1024 --batches "${OBATCHES:-3}" --weights "$w" $trust --out "$OUT/overlap.json" 2>&1 | grep -v -i warn \
    | tail -5 | tee "$OUT/overlap.log"
}

stage_kernels() {
  local setting="${KSETTING:-compile+fp16}"
  local tag="${setting//+/_}"  # no '+' in file names: the device call does not bring such names back
  timeout 300 $PY -m benchmarks kernels --model ddpm-cifar10 --setting "$setting" --batch 1024 \
    --raw "$OUT/inductor_bandwidth_$tag.txt" --out "$OUT/kernels_$tag.json" 2>&1 \
    | grep -v -i warn | tail -5 | tee "$OUT/kernels.log"
}

stage_full50k() {
  local w=/root/inc/default_1.pt
  [ -f "$w" ] || { echo "no Inception weights at $w (carry the three .inc parts)"; return 1; }
  [ -d /root/models/dense ] || $PY -m benchmarks make-models --models-dir /root/models >/dev/null || return 1
  # a mu/sigma reference (as a user's CIFAR-10 statistics): the held-out digits' statistics, FID only
  [ -f /root/ref_digits.npz ] || $PY -m maskpro_eval.cli.main fid-stats src/maskpro_eval/demo_zoo/digits_heldout_32px.npz \
    /root/ref_digits.npz --device cuda --inception-weights "$w" --no-cache --no-progress || return 1
  export TORCHINDUCTOR_CACHE_DIR="${CCACHE:-/root/ccache}"
  [ -z "${COLD:-}" ] || rm -rf "$TORCHINDUCTOR_CACHE_DIR"
  rm -rf /root/reports  # no samples or features from an earlier run (a re-run would resume from them)
  echo "inductor cache $TORCHINDUCTOR_CACHE_DIR: $(du -sh "$TORCHINDUCTOR_CACHE_DIR" 2>/dev/null || echo absent)" \
    | tee -a "$OUT/${RUN_NAME:-full50k}.log"
  local start=$(date +%s.%N)
  timeout 560 $PY -m pytest -p no:cacheprovider $PLUGIN -m full evaluation_tests \
    --checkpoint /root/models/dense --device cuda --sampling-backend fast --dtype float16 --compile-sampler \
    --batch-size 1024 --num-samples 50000 --inception-weights "$w" --fid-ref /root/ref_digits.npz \
    --reports-dir /root/reports --run-name "${RUN_NAME:-full50k}" --results-json "$OUT/${RUN_NAME:-full50k}_results.json" \
    --no-progress ${FULL_ARGS:-} 2>&1 | tail -40 | tee -a "$OUT/${RUN_NAME:-full50k}.log"
  echo "command to exit: $($PY -c "import time; print(round(time.time() - $start, 1))") s" | tee -a "$OUT/${RUN_NAME:-full50k}.log"
  mkdir -p "$OUT/${RUN_NAME:-full50k}_run"
  (cd "/root/reports/${RUN_NAME:-full50k}" && cp -r --parents evaluation_summary.md report.html metrics analysis \
    "$OUT/${RUN_NAME:-full50k}_run/" 2>/dev/null)
  du -sh /root/reports/samples_cache/* 2>/dev/null | tee -a "$OUT/${RUN_NAME:-full50k}.log"
}

for st in "$@"; do
  echo "=== stage $st ($(date -u +%H:%M:%S))"
  "stage_$st" || echo "stage $st failed"
done
