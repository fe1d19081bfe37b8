#!/usr/bin/env bash
# make gpu-check: everything a machine with a GPU can tell us, in one run (about
# 5-8 minutes on an H100/H200). It uses the python3 that already holds a CUDA
# build of torch (nothing is installed) and writes one results folder, ready to
# commit as benchmarks/results/<gpu>.*:
#   1. the machine (nvidia-smi, torch);
#   2. the CUDA build (GSNN_FAST_CUDA=1, in place);
#   3. the test suite on the GPU (the CUDA-vs-CPU parity tests, bit for bit, and
#      opcheck run there; the CPU tests and the grid emulator run too);
#   4. compute-sanitizer memcheck and racecheck over a small run of every kernel
#      (benchmarks/gpu_sanitize.py);
#   5. the GPU rows of the benchmark suite at N = 2,000 / 10,000 / 20,000
#      (python -m benchmarks.run --profile gpu);
#   6. gsnn-fast demo --device cuda.
# Each step has its own time limit and the run goes on after a failure; the last
# lines are a table of the steps, also written as summary.json.
# Results folder: $GPU_CHECK_OUT, else $OUT (the device tool's), else
# benchmarks/results/gpu-check.
set -uo pipefail
cd "$(dirname "$0")/.."
dest=${GPU_CHECK_OUT:-${OUT:-benchmarks/results/gpu-check}}
mkdir -p "$dest"
log="$dest/gpu-check.log"
: >"$log"
exec > >(tee -a "$log") 2>&1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
jobs=$(nproc 2>/dev/null || echo 4)
steps=()

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s) =="
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s =="
  steps+=("$name $rc $((SECONDS - t0))")
}

step machine 60 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, \
torch.version.cuda, torch.cuda.get_device_name(0))'; git log -1 --format='%h %cI %s'"
step build 420 env GSNN_FAST_CUDA=1 MAX_JOBS="$jobs" "$PY" setup.py -q build_ext --inplace
step tests 300 "$PY" -m pytest -q -p no:cacheprovider -rs tests
if command -v compute-sanitizer >/dev/null 2>&1; then
  step memcheck 180 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$PY" benchmarks/gpu_sanitize.py
  step racecheck 240 compute-sanitizer --tool racecheck --racecheck-report all \
    --error-exitcode 9 "$PY" benchmarks/gpu_sanitize.py
else
  echo "compute-sanitizer not found: memcheck and racecheck skipped"
  steps+=("sanitizer missing -")
fi
step bench 420 "$PY" -m benchmarks.run --profile gpu --threads "$jobs" --out "$dest"
step demo 180 "$PY" -m gsnn_fast.cli demo --device cuda --no-plots --out "$dest/demo"

echo "== summary =="
"$PY" - "$dest" "${steps[@]}" <<'PY'
import json
import sys

dest, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
summary = [{"step": r[0], "exit": r[1], "seconds": r[2]} for r in rows]
with open(f"{dest}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
print(f"{'step':<10} {'exit':>5} {'seconds':>8}")
for s in summary:
    print(f"{s['step']:<10} {s['exit']:>5} {s['seconds']:>8}")
PY
