#!/usr/bin/env bash
# The inference figures of issue #6 on a lent GPU machine, in one run (~5 min on an H100):
# paper D 64/128 on 160x256x256 against MONAI (default layout and channels-last), then the
# 600x512x512 whole-body case (ours only: MONAI's output alone would need 79 GB).
# Usage, from the repository root on the GPU machine (torch with CUDA preinstalled there; MONAI
# carried as a wheel: here `python3 -m pip download --no-deps --only-binary=:all: -d .whl monai==1.6.1`
# with /.whl/ in .git/info/exclude, and `.whl` named in the device tool's carry):
#   bash SneakyNetCore/benchmarks/gpu_inference_check.sh $OUT
set -euo pipefail
out=${1:?output folder}
mkdir -p "$out"
if ! python3 -c "import monai" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/SneakyNetCore/src
bench="python3 SneakyNetCore/benchmarks/bench_inference.py --device cuda --batch 4 --record $out/bench_inference_gpu.jsonl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
for layout in off on; do
    $bench --case paper-256 --channels-last $layout 2>&1 | tee -a "$out/log.txt"
done
for layout in off on; do
    $bench --case paper-512 --runners ours --channels-last $layout 2>&1 | tee -a "$out/log.txt"
done
