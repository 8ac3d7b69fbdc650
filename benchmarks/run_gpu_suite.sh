#!/usr/bin/env bash
# GPU measurement suite of maskpro-eval (issue #4), in stages that each fit one 10-minute device call.
#
#   bash benchmarks/run_gpu_suite.sh STAGE [OUTDIR]
#
# Stages (single GPU unless named x2*):
#   call1  setup, env (versions, nvidia-smi, measured bf16 matmul peak, copy bandwidth), random DDPM CIFAR-10
#          models (dense + magnitude 2:4), pytest -m gpu (forward sweep 1..1024, scaling plot, 2:4 speed),
#          precision/compile sweep, diffusers DDIMPipeline fp32 anchor
#   call2  Inception weights assembled; reference statistics (seed 1, 10k, fast path) + TF32 feature check;
#          the timed 50k fast run (cold torch.compile cache) with FID on the GPU
#   call3  standard fp32 full-tier path (issue #3 item 8), first half of the samples (resumable store)
#   call4  standard path second half + features; bf16-fast vs fp32-standard fidelity on the same seeds
#   x2a    (2 GPUs) generation scaling 1 vs 2 GPUs with the exact pixel stand-in features
#   x2b    (2 GPUs) generation + Inception + FID, 1 GPU vs 2 GPUs, FID identity
#
# Needs: .whl/ (diffusers, pytest-html wheels; see benchmarks/README.md) and the Inception weights either at
# $INCEPTION_WEIGHTS or split in .inc/default_1.pt.part_aa (carried first) and .part_ab (carried next).
# Writes everything under OUTDIR (default $OUT, else ./gpu_results) and prints a short table last.
set -u
STAGE=${1:?stage}
OUTDIR=${2:-${OUT:-$PWD/gpu_results}}
mkdir -p "$OUTDIR"
W=/tmp/mpe
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0} TORCH_SYMM_MEM_DISABLE_MULTICAST=${TORCH_SYMM_MEM_DISABLE_MULTICAST:-1}
PY=${PY:-python3}
BUDGET=${BUDGET:-570}
# sizes (TINY=1: a CPU dry run of every stage with a tiny UNet, for testing the scripts before device time)
if [ "${TINY:-0}" = 1 ]; then
  W=/tmp/mpe_tiny; mkdir -p $W
  MK="--tiny"; DEV="--device cpu"; STEPS=3; B=16; REF_N=48; FAST_N=64; ANCHOR_N=8; STD_N_A=32; STD_N=64; CHUNK=16
  SUBSET=16; PIXELS=16; X2_N=32; TF_N=32; INC_N=8; PREC_MODES=fp32-default,bf16,bf16-autocast; SWEEP=1,8; SPB=8; COMPILE=""; X2MODEL="--model $W/models/dense"
else
  MK=""; DEV=""; STEPS=100; B=1024; REF_N=${REF_N:-10000}; FAST_N=${FAST_N:-50000}; ANCHOR_N=${ANCHOR_N:-1024}
  STD_N_A=${STD_N_A:-5120}; STD_N=${STD_N:-10240}; CHUNK=1024; TF_N=${TF_N:-10240}; INC_N=${INC_N:-4096}; SUBSET=2048; PIXELS=1024; SWEEP=1,8,64,256,1024; SPB=1024; COMPILE="--compile"; X2MODEL="--random-ddpm-cifar10 0"
  PREC_MODES=${PREC_MODES:-fp32-strict,fp32-default,tf32,bf16-autocast,bf16,bf16-graph,bf16-channels-last,bf16-compile,bf16-compile-freezing}
fi
# results accumulate in $R on the machine (kept while it is warm); $OUTDIR gets one archive + the log per stage
R=$W/res
mkdir -p $W /tmp/inc "$R"
LOG=$R/log_$STAGE.txt
: > "$LOG"

say() { echo "[$(date +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$LOG"; }

# step NAME MAXSEC cmd... : runs with a timeout that keeps the whole stage inside $BUDGET seconds
step() {
  local name=$1 max=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 25 ]; then say "SKIP $name (no time left: ${left}s)"; echo "$name: skipped (time)" >> "$R/skipped.txt"; return 0; fi
  [ "$max" -gt "$left" ] && max=$left
  say "START $name (limit ${max}s)"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=10 "$max" "$@" >> "$LOG" 2>&1
  local rc=$?
  say "END $name rc=$rc in $((SECONDS - t0))s"
  echo "$name rc=$rc seconds=$((SECONDS - t0))" >> "$R/steps.txt"
  return 0
}

setup() {
  if ! $PY -c "import diffusers" 2>/dev/null && [ ! -f /tmp/site/.ok ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >> "$LOG" 2>&1
    touch /tmp/site/.ok
  fi
  export PYTHONPATH=/tmp/site:$PWD/src:$PWD:${PYTHONPATH:-}
  if ! $PY -c "import diffusers" >> "$LOG" 2>&1; then
    say "diffusers import failed with the base wheels: adding .whl/extra"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/extra/*.whl >> "$LOG" 2>&1
  fi
  $PY -c "import diffusers, torch; print('diffusers', diffusers.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())" 2>&1 | tee -a "$LOG"
  if [ -f .inc/default_1.pt.part_aa ]; then cp .inc/default_1.pt.part_aa /tmp/inc/; fi
  if [ -f .inc/default_1.pt.part_ab ]; then cp .inc/default_1.pt.part_ab /tmp/inc/; fi
  if [ ! -f /tmp/inc/default_1.pt ] && [ -f /tmp/inc/default_1.pt.part_aa ] && [ -f /tmp/inc/default_1.pt.part_ab ]; then
    cat /tmp/inc/default_1.pt.part_aa /tmp/inc/default_1.pt.part_ab > /tmp/inc/default_1.pt
  fi
  INC=${INCEPTION_WEIGHTS:-/tmp/inc/default_1.pt}
  if [ -f "$INC" ]; then
    sha=$(sha256sum "$INC" | cut -d' ' -f1)
    say "inception weights $INC sha256 $sha"
    [ "$sha" = 7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34 ] || say "WARNING: inception sha256 mismatch"
  fi
}

models() {
  if [ ! -d $W/models/dense ]; then step make-models 120 $PY benchmarks/gpu_suite.py make-models $MK --out $W/models; fi
}

finish() {
  say "stage $STAGE done"
  $PY benchmarks/summarize.py "$R" > "$R/summary_$STAGE.txt" 2>&1
  tar czf "$OUTDIR/results_$STAGE.tgz" -C "$R" . 2>/dev/null
  cp "$LOG" "$OUTDIR/" 2>/dev/null
  tail -45 "$R/summary_$STAGE.txt"
}

setup
case "$STAGE" in
  call1)
    nvidia-smi 2>&1 | head -20 | tee -a "$LOG"
    step env 120 $PY benchmarks/gpu_suite.py env $DEV --out "$R/env.json"
    models
    step pytest-gpu 230 $PY -m pytest -p maskpro_eval.pytest_plugin.gpu -p no:cacheprovider -m gpu evaluation_tests/test_gpu.py \
      --checkpoint m24=$W/models/magnitude_2of4 --baseline dense=$W/models/dense \
      --bench-batches $SWEEP --bench-sparse-batch $SPB --bench-rounds 20 --bench-warmup 5 \
      --benchmark-json "$R/bench_gpu.json" --bench-plot "$R/forward_scaling_gpu.png" --bench-records "$R/forward_records_gpu.json" \
      --reports-dir $W/reports --run-name gpu1 -q -rs
    cp $W/reports/gpu1/benchmarks/sparse24_m24.json "$R/" 2>/dev/null
    cp $W/reports/gpu1/evaluation_results.json "$R/evaluation_results_gpu.json" 2>/dev/null
    step precision 220 $PY benchmarks/gpu_suite.py precision $DEV --model $W/models/dense --batch $B --modes $PREC_MODES --out "$R/precision_b1024.json"
    step anchor 110 $PY benchmarks/gpu_suite.py anchor $DEV --model $W/models/dense --n $ANCHOR_N --batch 128 --steps $STEPS --out "$R/anchor.json"
    step precision2048 90 $PY benchmarks/gpu_suite.py precision $DEV --model $W/models/dense --batch $((2*B)) --modes bf16,bf16-compile --out "$R/precision_b2048.json"
    ;;
  setup)
    nvidia-smi -L 2>&1 | tee -a "$LOG"
    ;;
  sparse)
    models
    step pytest-sparse 400 $PY -m pytest -p maskpro_eval.pytest_plugin.gpu -p no:cacheprovider -m gpu evaluation_tests/test_gpu.py \
      -k "sparse24" --checkpoint m24=$W/models/magnitude_2of4 --baseline dense=$W/models/dense --bench-sparse-batch $SPB \
      --bench-rounds 20 --bench-warmup 5 --benchmark-json "$R/bench_sparse24.json" --reports-dir $W/reports --run-name gpusparse -q -rs
    cp $W/reports/gpusparse/benchmarks/sparse24_m24.json "$R/" 2>/dev/null
    cp $W/reports/gpusparse/evaluation_results.json "$R/evaluation_results_sparse.json" 2>/dev/null
    ;;
  call2)
    models
    export TORCHINDUCTOR_CACHE_DIR=$W/inductor_ref
    step reference 200 $PY benchmarks/gpu_suite.py reference $DEV --model $W/models/dense --seed 1 --n $REF_N --batch $B --steps $STEPS \
      --compile --weights $INC --npz $W/ref_seed1_10k.npz --tf32-check $((REF_N < 2048 ? REF_N : 2048)) --out "$R/reference.json"
    cold=$W/inductor_cold_$$; rm -rf "$cold"
    t0=$(date +%s.%N)
    step fast50k 340 env TORCHINDUCTOR_CACHE_DIR=$cold $PY -m maskpro_eval.runtime.distributed --model $W/models/dense \
      --num-samples $FAST_N --batch-size $B --steps $STEPS $DEV --dtype bfloat16 $COMPILE --inception-weights $INC \
      --ref-npz $W/ref_seed1_10k.npz --save-features $W/fast_feats_seed0.npy --out "$R/fast50k.json"
    t1=$(date +%s.%N)
    echo "{\"process_wall_s\": $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}'), \"inductor_cache\": \"cold ($cold)\"}" > "$R/fast50k_wall.json"
    ;;
  call3)
    models
    step stdpath-a 560 $PY benchmarks/gpu_suite.py stdpath $DEV --model $W/models/dense --n $STD_N_A --batch 256 --chunk $CHUNK --steps $STEPS \
      --store $W/std_store --weights $INC --out "$R/stdpath_a.json"
    ;;
  call4)
    models
    step stdpath-b 420 $PY benchmarks/gpu_suite.py stdpath $DEV --model $W/models/dense --n $STD_N --batch 256 --chunk $CHUNK --steps $STEPS \
      --store $W/std_store --weights $INC --features $W/std_feats_seed0.npy --out "$R/stdpath_b.json"
    step fidelity 150 $PY benchmarks/gpu_suite.py fidelity $DEV --steps $STEPS --model $W/models/dense --store $W/std_store \
      --std-features $W/std_feats_seed0.npy --fast-features $W/fast_feats_seed0.npy --ref $W/ref_seed1_10k.npz \
      --subset $SUBSET --pixels $PIXELS --std-batch 256 --out "$R/fidelity.json"
    ;;
  x2a|x2b)
    nvidia-smi -L 2>&1 | tee -a "$LOG"
    export TORCHINDUCTOR_CACHE_DIR=$W/inductor_x2
    DIST="-m maskpro_eval.runtime.distributed $X2MODEL --batch-size $B --steps $STEPS $DEV --dtype bfloat16 $COMPILE"
    TR="$PY -m torch.distributed.run --standalone --nproc_per_node 2"
    if [ "$STAGE" = x2a ]; then
      N=${X2_N:-16384}; FEAT="--features pixel16"; REF=""
    else
      N=${X2_N:-8192}; FEAT="--features inception --inception-weights $INC"
      step ref-2gpu 200 $TR $DIST --seed 1 --num-samples $N $FEAT --save-stats $W/x2_ref_seed1.npz --out "$R/x2b_ref_2gpu.json"
      REF="--ref-npz $W/x2_ref_seed1.npz"
    fi
    step one-gpu 200 env CUDA_VISIBLE_DEVICES=0 $PY $DIST --num-samples $N $FEAT $REF --out "$R/${STAGE}_1gpu.json"
    step two-gpu 200 $TR $DIST --num-samples $N $FEAT $REF --out "$R/${STAGE}_2gpu.json"
    ;;
  s1)
    # session 2: where the time goes, and which inductor/cuDNN settings move it (one process per variant)
    nvidia-smi 2>&1 | head -15 | tee -a "$LOG"
    models
    step env 90 $PY benchmarks/gpu_suite.py env $DEV --out "$R/env.json"
    step profile 120 $PY benchmarks/gpu_suite.py profile $DEV --model $W/models/dense --variant compile --batch $B --steps $STEPS --out "$R/profile_compile_b$B.json"
    for v in ${SWEEP_VARIANTS:-compile@1024 compile+bench@1024 compile+cdt@1024 compile+cl@1024 compile+freeze@2048 compile+freeze+bench+cdt@2048 compile+freeze+bench+cdt+cl@2048}; do
      var=${v%@*}; bb=${v#*@}; [ "${TINY:-0}" = 1 ] && bb=$B
      step "sweep-$var-b$bb" 150 env TORCHINDUCTOR_CACHE_DIR=$W/inductor_sweep_${var}_${bb} $PY benchmarks/gpu_suite.py sweep $DEV --model $W/models/dense \
        --variant $var --batch $bb --steps $STEPS --out "$R/sweep_${var}_b$bb.json"
    done
    $PY benchmarks/gpu_suite.py best --dir "$R" | tee "$R/best_flags.txt"
    ;;
  s2)
    # session 2: bf16 vs fp32 on a trained UNet (demo zoo dense), Inception speed strict vs TF32
    step trained-fidelity 330 $PY benchmarks/gpu_suite.py trained-fidelity $DEV --weights $INC --n $TF_N --pixels $((TF_N < 2048 ? TF_N : 2048)) --steps $STEPS \
      --batch $((2*B)) --seeds 0,1,2 --out "$R/trained_fidelity.json" $( [ "${TINY:-0}" = 1 ] && echo "--pixel-features" )
    step inception-speed 100 $PY benchmarks/gpu_suite.py inception-speed $DEV --weights $INC --n $INC_N --out "$R/inception_speed.json"
    ;;
  s3)
    # session 2: the timed 50k with the fastest setting of s1 (cold inductor cache), FID vs the session-1 style
    # reference (seed 1, 10k) made in the same call
    models
    FLAGS=$(cat "$R/best_flags.txt" 2>/dev/null || echo "--compile --batch-size $B")
    say "flags: $FLAGS"
    export TORCHINDUCTOR_CACHE_DIR=$W/inductor_ref
    step reference 150 $PY -m maskpro_eval.runtime.distributed --model $W/models/dense --seed 1 --num-samples $((REF_N < 5120 ? REF_N : 5120)) --steps $STEPS $DEV \
      --dtype bfloat16 $FLAGS --inception-weights $INC --save-stats $W/ref_seed1.npz --out "$R/reference_s3.json"
    cold=$W/inductor_cold_$$; rm -rf "$cold"
    t0=$(date +%s.%N)
    step fast50k 330 env TORCHINDUCTOR_CACHE_DIR=$cold $PY -m maskpro_eval.runtime.distributed --model $W/models/dense \
      --num-samples $FAST_N --steps $STEPS $DEV --dtype bfloat16 $FLAGS --inception-weights $INC \
      --ref-npz $W/ref_seed1.npz --out "$R/fast50k_s3.json"
    t1=$(date +%s.%N)
    echo "{\"process_wall_s\": $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}'), \"inductor_cache\": \"cold\", \"flags\": \"$FLAGS\"}" > "$R/fast50k_s3_wall.json"
    ;;
  s4)
    # session 2, after s2 showed bf16 is not faithful on a trained UNet: throughput of the candidates fp16 and TF32
    models
    for v in ${SWEEP_VARIANTS:-compile+fp16@1024 compile+tf32@1024}; do
      var=${v%@*}; bb=${v#*@}; [ "${TINY:-0}" = 1 ] && bb=$B
      step "sweep-$var-b$bb" 150 env TORCHINDUCTOR_CACHE_DIR=$W/inductor_sweep_${var}_${bb} $PY benchmarks/gpu_suite.py sweep $DEV --model $W/models/dense \
        --variant $var --batch $bb --steps $STEPS --out "$R/sweep_${var}_b$bb.json"
    done
    ;;
  s5)
    # fp16 vs fp32 on the trained UNet (same protocol as s2)
    step trained-fidelity-fp16 330 $PY benchmarks/gpu_suite.py trained-fidelity $DEV --weights $INC --n $TF_N --pixels $((TF_N < 2048 ? TF_N : 2048)) --steps $STEPS \
      --batch $((2*B)) --seeds 0,1,2 --precisions fp32-strict,fp16 --out "$R/trained_fidelity_fp16.json" $( [ "${TINY:-0}" = 1 ] && echo "--pixel-features" )
    ;;
  *) echo "unknown stage $STAGE"; exit 2;;
esac
finish
