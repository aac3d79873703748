#!/usr/bin/env bash
# The checks that need a CUDA GPU, prepared to run in one go on a lent machine.
#
#   bash bench/gpu_check.sh [RESULTS_DIR]
#
# RESULTS_DIR defaults to $OUT (set on the lent machines) or bench/gpu_results.
# Each step runs under its own time limit (about 10 minutes in all) and logs to
# RESULTS_DIR/<step>.log; RESULTS_DIR/summary.txt collects each step's exit code,
# time and last lines, the figures to copy into docs/benchmarks.md ("## GPU").
# A step that fails or runs out of time does not stop the next one.
#
# Steps, most important first:
#   1. the CUDA-marked tests (mixed precision, compile, SyncBatchNorm on 2 GPUs)
#   2. training-step speed: float32, channels-last, cuDNN benchmark, bfloat16,
#      float16 with a gradient scaler (bench/bench_training_step.py)
#   3. prediction of one BraTS-size case (4 channels, 240x240x155, brain-sized
#      ROI) with the paper network through `seg3d predict`, float32 and bfloat16
#   4. a short mixed-precision training run of the paper network on the
#      bundled sample data, and the same on all GPUs with --nproc when there
#      are several
#   5. training-step speed with torch.compile (minutes of compilation; needs a
#      C compiler, which the runtime Docker image lacks)
set -uo pipefail

cd "$(dirname "$0")/.."
RESULTS=${1:-${OUT:-bench/gpu_results}}
mkdir -p "$RESULTS"
SUMMARY="$RESULTS/summary.txt"
: > "$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME SECONDS COMMAND...: run COMMAND with a time limit, log it, summarise.
step() {
    local name=$1 limit=$2
    shift 2
    note "== $name (limit ${limit} s): $*"
    local started=$SECONDS
    timeout --signal=INT --kill-after=20 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local status=$?
    note "== $name: exit $status after $((SECONDS - started)) s"
    tail -n 30 "$RESULTS/$name.log" >> "$SUMMARY"
    echo >> "$SUMMARY"
}

# seg3d from this checkout: installed if it is not, else found through a path
# where cli/ appears under its installed name, seg3d_cli.
if ! python -c "import seg3d_cli" 2> /dev/null; then
    if ! pip install --quiet --no-deps --no-build-isolation -e . > /dev/null 2>&1; then
        mkdir -p /tmp/seg3d_path && ln -sfn "$PWD/cli" /tmp/seg3d_path/seg3d_cli
        export PYTHONPATH="$PWD:/tmp/seg3d_path${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

step environment 60 bash -c '
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python -c "import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda,
        \"gpus\", torch.cuda.device_count(), \"bf16\", torch.cuda.is_bf16_supported())"
    command -v cc gcc || echo "no C compiler: torch.compile will fail"
    python -m seg3d --version'

step cuda_tests 150 python -m pytest -m cuda tests -q -p no:cacheprovider -rs \
    --continue-on-collection-errors

step training_step 90 python bench/bench_training_step.py --device cuda \
    --steps 20 --repeats 3 --skip-compile

# One synthetic BraTS-size case and an untrained paper network: the arithmetic,
# not the weights, sets the time.
BRATS="$RESULTS/brats_size"
step brats_case 60 python - "$BRATS" << 'EOF'
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from seg3d.model.config import NetworkConfig
from seg3d.model.network import DeepMedic
from seg3d.training.checkpoint import save_checkpoint

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
shape = (240, 240, 155)
affine = np.diag([1.0, 1.0, 1.0, 1.0])
rng = np.random.default_rng(0)
i, j, k = np.ogrid[: shape[0], : shape[1], : shape[2]]
roi = ((i - 120) / 70) ** 2 + ((j - 120) / 85) ** 2 + ((k - 77) / 65) ** 2 <= 1
nib.save(nib.Nifti1Image(roi.astype(np.uint8), affine), folder / "mask.nii.gz")
for c in range(4):
    image = rng.normal(100, 20, shape).astype(np.float32) * roi
    nib.save(nib.Nifti1Image(image, affine), folder / f"brats_{c:04d}.nii.gz")
labels = {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4}
config = NetworkConfig.profile("paper", in_channels=4, num_classes=len(labels))
info = {
    "network": config.to_dict(),
    "profile": "paper",
    "channel_names": ["T1", "T1ce", "T2", "FLAIR"],
    "labels": labels,
    "preprocessing": {"normalization": [{"scheme": "zscore"}], "crop": "none"},
    "segment_size": 25,
    "training_spacing": [1.0, 1.0, 1.0],
    "flip_axes": [0],
}
save_checkpoint(folder / "paper.pt", DeepMedic(config).state_dict(), info)
print(f"{int(roi.sum())} ROI voxels of {roi.size}")
EOF

for precision in float32 bfloat16; do
    step "brats_predict_$precision" 75 bash -c "
        time python -m seg3d predict $BRATS/brats_000{0,1,2,3}.nii.gz \
            --mask $BRATS/mask.nii.gz --model $BRATS/paper.pt --device cuda \
            --precision $precision --out $BRATS/seg_$precision.nii.gz --overwrite"
done

step amp_training 100 python -m seg3d train --profile paper --device cuda \
    --precision auto --epochs 2 --max-time 60s --out "$RESULTS/runs/amp"

GPUS=$(python -c "import torch; print(torch.cuda.device_count())" 2> /dev/null || echo 0)
if [ "${GPUS:-0}" -ge 2 ]; then
    step amp_training_ddp 120 python -m seg3d train --profile paper --device cuda \
        --precision auto --epochs 2 --max-time 60s --nproc "$GPUS" \
        --out "$RESULTS/runs/amp_ddp"
else
    note "== amp_training_ddp: skipped, $GPUS GPU(s)"
fi

step training_step_compile 150 python bench/bench_training_step.py --device cuda \
    --steps 20 --repeats 3 --only compile,bf16,bf16_compile

note "results in $RESULTS"
