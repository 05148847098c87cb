#!/bin/bash
# The GPU acceptance figures of the speed goal, in one go on one machine (run from the repository root):
# the gpu tests, model throughput eager (8 and 16 frames, every row) and compiled (TSN and TDRL), end to
# end from prepared JPEG data (device decoding, then loader decoding) beside the model alone in the same
# process, and a profile of one TDRL and one TSN step. Steps run most important first, each under its
# own time limit, and each writes its file as it ends, so a stopped run keeps what it measured.
# Usage: bash benchmarks/gpu_acceptance.sh OUT_DIR
# OUT_DIR gets log.txt (everything printed), throughput_{eager,compile}.json, e2e_{device,loader}.json and
# profile_8f.txt; the JSON files are what benchmarks/results/ keeps.
set -u
OUT=${1:?usage: gpu_acceptance.sh OUT_DIR}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
LOG="$OUT/log.txt"
step() { echo "=== $(date -u +%T) $*" | tee -a "$LOG"; }
run() { "$@" 2>&1 | grep --line-buffered -v "Warning\|warnings.warn" | tee -a "$LOG"; }

step machine
run nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
run python -c "import torch, torchvision, os; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cpus', os.cpu_count())"

# The end-to-end data (CPU work: render + prepare) is made while the correctness tests run (not timed).
( python benchmarks/end_to_end.py --work /tmp/e2e --workers 8 --videos 512 --prepare-only > /tmp/e2e_prepare.log 2>&1 ) &
PREP=$!
step "pytest -m gpu"
run timeout 120 python -m pytest -m gpu tests/data/test_gpu_decode.py tests/model/test_cuda.py -q -p no:cacheprovider
wait $PREP; cat /tmp/e2e_prepare.log | tail -3 | tee -a "$LOG"

step "throughput eager (every row, 8 and 16 frames)"
run timeout 120 python benchmarks/throughput.py --modes eager --json "$OUT/throughput_eager.json"
step "end to end, device decoding"
run timeout 150 python benchmarks/end_to_end.py --data /tmp/e2e/prepared --workers 12 --decode-on device \
  --json "$OUT/e2e_device.json"
step "throughput torch.compile (TSN, TDRL; 8 and 16 frames)"
run timeout 330 python benchmarks/throughput.py --modes compile --rows tsn,tdrl --json "$OUT/throughput_compile.json"
step "end to end, loader decoding"
run timeout 90 python benchmarks/end_to_end.py --data /tmp/e2e/prepared --workers 12 --decode-on loader \
  --json "$OUT/e2e_loader.json"
step "profile of one eager step, TDRL and TSN, 8 frames"
run timeout 90 python benchmarks/profile_step.py --out "$OUT/profile_8f.txt" --rows 30
step done
