#!/usr/bin/env bash
# Issue 21's GPU figures in one run on the lent GPU machine (about 6 minutes; 8 at most):
#   bash SneakyNetCore/benchmarks/gpu_check.sh "$OUT" [gpu_check.py options]
# from the repository root there (the device tool runs commands there and returns $OUT). That
# machine has torch with CUDA but no SimpleITK, nibabel or MONAI, and no internet: carry them as
# .whl/site.tar.xz (docs/benchmarks.md, GPU section, says how to build it) and name .whl in carry.
set -euo pipefail
out=${1:?usage: gpu_check.sh OUT_FOLDER [gpu_check.py options]}
shift
mkdir -p "$out"
if [ -f .whl/site.tar.xz ]; then
    mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/SneakyNetCore/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1 || true
python3 -c "import SimpleITK, nibabel" || { echo "SimpleITK/nibabel missing: carry .whl/site.tar.xz" >&2; exit 2; }
python3 SneakyNetCore/benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "$out/log.txt"
