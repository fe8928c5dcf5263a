#!/usr/bin/env bash
# The GPU checks of issue #6 in one go, for a machine with a CUDA device and a PyTorch that sees it:
#
#   bash benchmarks/gpu_check.sh DATA_DIR OUT_DIR
#
# DATA_DIR holds nasbench201/ as ../shared/data does; the package runs from this checkout (PYTHONPATH), so nothing
# is installed. OUT_DIR receives one log (gpu_check.log), a summary (gpu_check.md) and four JSON files:
# speed_cuda.json (training step fp32 and bf16 autocast, inference, GPU memory), and the metrics.json of the main
# job trained on the GPU in fp32 (metrics_fp32.json), with --set amp=true (metrics_amp.json) and launched by torchrun
# (metrics_torchrun.json; one process: NCCL refuses two ranks on one GPU, so DDP across GPUs needs a machine with
# two); it also scores all 15,625 cells on the GPU with the fp32 predictor (`nnformer score --device`). The runs' own
# folders go to
# $WORK (default /tmp/nnformer-gpu). Exit status 0 when every step passed; each step's status is in the log.
# A smoke test of the script itself without a GPU: DEVICE=cpu STEPS=30 bash benchmarks/gpu_check.sh DATA OUT
#
# Through this project's device tool (the data beside the checkout does not travel; an ignored folder named in
# `carry` does, and never gets committed):
#   echo /.gpudata/ >> .git/info/exclude; mkdir -p .gpudata && cp -r ../shared/data/nasbench201 .gpudata/
#   run: command "bash benchmarks/gpu_check.sh .gpudata $OUT", carry [".gpudata"], timeout_s 560
# Cost on one NVIDIA H200 (torch 2.11.0+cu130): 376 s for all steps (first run; its files and summary in
# benchmarks/results/performance/gpu-h200/), plus a minute or two to start the machine; give it timeout_s 480.
# OUT_DIR/gpu_check.md summarises the run (benchmarks/gpu_summary.py).
set -uo pipefail
data=${1:?usage: gpu_check.sh DATA_DIR OUT_DIR}
out=${2:?usage: gpu_check.sh DATA_DIR OUT_DIR}
work=${WORK:-/tmp/nnformer-gpu}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$out" "$work"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MASTER_ADDR=127.0.0.1
log="$out/gpu_check.log"
failed=()

step() {
    local name=$1 t=$SECONDS rc
    shift
    echo "== $name: $*" | tee -a "$log"
    "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - t)) s" | tee -a "$log"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

main_job=(train --space nb201 --n-train 781 --device "$device" --data-dir "$data" --quiet
          ${STEPS:+--set steps="$STEPS"})
step env $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda,
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
step tests $py -m pytest -q -p no:cacheprovider tests/test_cuda.py
step speed $py benchmarks/speed.py --device "$device" --amp --processes 3 ${STEPS:+--steps 3 --warmup 1} \
    --out "$out/speed_cuda.json"
step train_fp32 $py -m nnformer "${main_job[@]}" --out "$work/fp32"
step score $py -m nnformer score --space nb201 --checkpoint "$work/fp32/predictor.pt" --device "$device" \
    --data-dir "$data" --out "$work/score.csv" --quiet
step train_amp $py -m nnformer "${main_job[@]}" --set amp=true --out "$work/amp"
step torchrun $py -m torch.distributed.run --nproc_per_node=1 -m nnformer "${main_job[@]}" --out "$work/torchrun"
for run in fp32 amp torchrun; do
    [ -f "$work/$run/metrics.json" ] && cp "$work/$run/metrics.json" "$out/metrics_$run.json"
done
$py benchmarks/gpu_summary.py "$out" | tee -a "$log"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed steps: ${failed[*]}" | tee -a "$log"
    exit 1
fi
echo "all steps passed" | tee -a "$log"
