#!/usr/bin/env bash
# One short run on a lent GPU machine: the CUDA agreement tests, then spikeconv's and SpikingJelly 2.0's throughput
# (docs/benchmarks.md, "GPU"). Installs what it needs into two venvs that reuse the machine's torch
# (--system-site-packages); where no package index is reachable, pre-installed packages are used as they are.
#
#   bash bench/gpu_check.sh            # results in $OUT (the device tool's folder) or bench/results/gpu/
#
# Each step's status is written to STATUS.txt; a failing step does not stop the later ones.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RESULTS=${OUT:-bench/results/gpu}
VENV=${SPIKECONV_GPU_VENV:-/tmp/spikeconv-gpu-venv}
SJ_VENV=${SPIKINGJELLY_VENV:-/tmp/spikingjelly-venv}
mkdir -p "$RESULTS"
STATUS="$RESULTS/STATUS.txt"
: > "$STATUS"

step() {  # step NAME COMMAND...: run, log to RESULTS/NAME.log, record the exit status
    local name=$1; shift
    echo "== $name" >&2
    "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc" | tee -a "$STATUS" >&2
    return $rc
}

install_spikeconv() {
    "$PY" -m venv --system-site-packages "$VENV" || return 1
    "$VENV/bin/pip" install -q -e '.[test]' || "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . || return 1
    "$VENV/bin/python" -c "import torch, spikeconv; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.__version__, torch.cuda.get_device_name(0))"
}

install_spikingjelly() {
    "$PY" -m venv --system-site-packages "$SJ_VENV" || return 1
    "$SJ_VENV/bin/pip" install -q --no-deps spikingjelly==2.0.0 || return 1
    "$SJ_VENV/bin/pip" install -q loguru || true  # imported by spikingjelly's logger
    "$SJ_VENV/bin/python" -c "import spikingjelly.activation_based.neuron as n; print(n.__file__)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$RESULTS/gpu.csv" 2>&1 || true
step install_spikeconv install_spikeconv || { echo "spikeconv could not be installed; see $RESULTS/install_spikeconv.log" >&2; exit 1; }
step cuda_agreement "$VENV/bin/python" -m pytest -q -rs tests/runtime/test_cuda_agreement.py tests/runtime/test_device.py
step spikeconv_bench "$VENV/bin/python" bench/gpu_bench.py --device cuda --out "$RESULTS/spikeconv.json"
step install_spikingjelly install_spikingjelly && \
    step spikingjelly_bench "$SJ_VENV/bin/python" bench/spikingjelly_bench.py --device cuda --out "$RESULTS/spikingjelly.json"
cat "$STATUS"
