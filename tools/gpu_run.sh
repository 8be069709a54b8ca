#!/usr/bin/env bash
# The one command of a GPU loan (issue 15): install the carried wheels, run
# tools/gpu_check.py, then each prepared run tools/gpu_runs/NAME.sh (name order; each gets
# its own folder and should write through labkit's store, so that carrying the folder back
# resumes it), packing each into one file OUT/NAME.tar.gz; about 9 minutes in all.
# $GPU_RUNS_DIR replaces tools/gpu_runs (the CPU test's tiny runs).
#   bash tools/gpu_run.sh [OUT]      OUT defaults to $OUT, else gpu_out; PYTHON to python3
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_out}}"
py="${PYTHON:-python3}"
work="$out/work"
mkdir -p "$work/gpu_check"
export PYTHONPATH="$PWD" MPLBACKEND=Agg PYTHONUNBUFFERED=1
if ls wheels/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --target .gpu_site wheels/*.whl &&
    export PYTHONPATH="$PWD:$PWD/.gpu_site"
fi
end=$((SECONDS + ${GPU_RUN_BUDGET_S:-540}))
timeout 300 "$py" tools/gpu_check.py --out "$work/gpu_check" 2>&1 |
  tee "$work/gpu_check/log.txt"
rc=${PIPESTATUS[0]}
tar -czf "$out/gpu_check.tar.gz" -C "$work" gpu_check
for run in "${GPU_RUNS_DIR:-tools/gpu_runs}"/*.sh; do
  [ -e "$run" ] || continue
  left=$((end - SECONDS))
  if [ "$left" -lt 60 ]; then echo "gpu_run: no time left for $run"; break; fi
  name=$(basename "$run" .sh)
  mkdir -p "$work/$name"
  # RUN_BUDGET_S: the run starts no cell it cannot finish in time (tools/gpu_runs/prepared.bash)
  RUN_BUDGET_S="$left" timeout "$left" bash "$run" "$work/$name" 2>&1 |
    tee "$work/$name/log.txt"
  tar -czf "$out/$name.tar.gz" -C "$work" "$name"
done
rm -rf "$work"
echo "gpu_run: check exit code $rc; files in $out: $(ls "$out" | tr '\n' ' ')"
exit "$rc"
