#!/usr/bin/env bash
# One prepared GPU run (issue 24), what each tools/gpu_runs/NN-NAME.sh calls:
#   bash tools/gpu_runs/prepared.bash NAME OUTDIR [python -m labkit run options ...]
# 1. copies the cells committed under ${ARCHIVE_DIR:-results/archive}/NAME/cells into
#    OUTDIR/NAME/cells, so that a loan continues where the last unpacked one stopped;
# 2. prints the plan (--dry-run: which cells are done, the estimate of the rest);
# 3. runs `python -m labkit run NAME --mode full --out OUTDIR`, resumable cell by cell,
#    with --budget ($RUN_BUDGET_S, the seconds tools/gpu_run.sh has left, less
#    $RUN_MARGIN_S for packing), so that it starts no cell it cannot finish.
# Extra options go to both calls (the CPU test: --device cpu --set ... at tiny size).
set -euo pipefail
name="${1:?usage: prepared.bash NAME OUTDIR [options]}"
outdir="${2:?usage: prepared.bash NAME OUTDIR [options]}"
shift 2
cd "$(dirname "$0")/../.."
py="${PYTHON:-python3}"
export LABKIT_MODE=full  # as --mode full, without the command line's restart to unpin
src="${ARCHIVE_DIR:-results/archive}/$name/cells"
mkdir -p "$outdir/$name/cells"
if [ -d "$src" ]; then
  cp -R -n "$src/." "$outdir/$name/cells/"
  echo "prepared: $(find "$outdir/$name/cells" -name '*.json' | wc -l) cells from $src"
fi
budget=()
if [ -n "${RUN_BUDGET_S:-}" ]; then
  left=$((RUN_BUDGET_S - ${RUN_MARGIN_S:-30}))
  if [ "$left" -le 0 ]; then echo "prepared: no time left for $name"; exit 0; fi
  budget=(--budget "$left")
fi
"$py" -m labkit run "$name" --mode full --out "$outdir" --dry-run "$@"
"$py" -m labkit run "$name" --mode full --out "$outdir" "${budget[@]}" "$@"
