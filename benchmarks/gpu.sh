#!/usr/bin/env bash
# One prepared speed check, run as one command: `PYTHON=.venv/bin/python bash benchmarks/gpu.sh`
# (PYTHON: a Python with torch; default python3), meant to take under 8 minutes on one GPU
# (not yet timed on one); on a machine without one, the same checks at small sizes (3 minutes
# on 2 CPU cores). It prints one table, and keeps the raw figures in $OUT:
#   - a training step (paper preset, batch 4, 256 px on a GPU; small, 64 px on a CPU) in
#     float32, bf16, bf16 + channels_last, and that with gradient checkpointing: steps per
#     second and peak memory (benchmarks/train_speed.py);
#   - Cityscapes-size generation (416 x 832 RGB) in images per second at batch 1 and batched,
#     float32 and bf16, at ddim24 and at convert's default steps (benchmarks/generation_speed.py;
#     paper preset on a GPU, small on a CPU), and the reference's ddim24 with the guidance
#     recomputed at each step;
#   - a 12 MP photo (GPU only) and the hours BDD100K-RAW (100,000 images of 416 x 736, the
#     same two tiles each) would take at the best rate measured at the default steps;
#   - the detector (Faster R-CNN R50-FPN at 640 x 416): training and evaluation images per
#     second, float32 and (GPU) bf16 (benchmarks/detection_speed.py).
# It installs nothing from the network: a package missing from the machine's Python (tqdm,
# numpy, pydantic) comes from a folder of wheels, WHEELS (default ./wheels), if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
: > "$OUT/train.jsonl"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

for pkg in numpy tqdm pydantic; do
  if ! "$PY" -c "import $pkg" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --find-links "${WHEELS:-wheels}" "$pkg"
  fi
done
DEFAULT_STEPS=$("$PY" -c "from rawdiffusion.cli import DEFAULT_STEPS; print(DEFAULT_STEPS)")
if "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  DEVICE=cuda TRAIN=paper:256:4 STEPS=5 PRESET=paper IMAGES=32 BATCHES="1 8 32" EXTRA="--photo"
  DETECT="--batch 8 --eval-batch 16 --iterations 5"
else
  DEVICE=cpu TRAIN=small:64:4 STEPS=2 PRESET=small IMAGES=2 BATCHES="1 2" EXTRA=""
  DETECT="--batch 2 --eval-batch 2 --iterations 1"
fi
"$PY" -c "import torch; print(f'torch {torch.__version__}, {torch.cuda.get_device_name() if torch.cuda.is_available() else \"CPU\"}')"
echo "raw figures in $OUT"

for flags in "" "--bf16" "--bf16 --channels-last" "--bf16 --channels-last --checkpointing"; do
  # shellcheck disable=SC2086  # flags are words
  "$PY" benchmarks/train_speed.py --one "$TRAIN" --steps "$STEPS" --device "$DEVICE" $flags \
    | tail -n 1 >> "$OUT/train.jsonl"
done
# shellcheck disable=SC2086
"$PY" benchmarks/generation_speed.py --device "$DEVICE" --preset "$PRESET" --images "$IMAGES" \
  --steps 24 "$DEFAULT_STEPS" --batch $BATCHES --bf16 --reference $EXTRA \
  --json "$OUT/generation.jsonl" > "$OUT/generation.log" || echo "generation_speed.py failed \
(see $OUT/generation.log); the table has what it measured before"

# shellcheck disable=SC2086
"$PY" benchmarks/detection_speed.py --device "$DEVICE" $DETECT --json "$OUT/detection.jsonl" \
  > "$OUT/detection.log" || echo "detection_speed.py failed (see $OUT/detection.log)"

"$PY" - "$OUT" "$DEFAULT_STEPS" <<'PYTHON'
import json, sys
from pathlib import Path

out, default = Path(sys.argv[1]), int(sys.argv[2])
train = [json.loads(l) for l in (out / "train.jsonl").read_text().splitlines()]
path = out / "generation.jsonl"
gen = [json.loads(l) for l in path.read_text().splitlines()] if path.is_file() else []
print("| measurement | setting | rate | peak memory |\n|---|---|---|---|")
for r in train:
    setting = ", ".join(k for k in ("bf16", "channels_last", "checkpointing") if r[k]) or "fp32"
    print(f"| training step, {r['preset']} {r['crop']} px, batch {r['batch']} | {setting} | "
          f"{r['steps_per_s']:.2f} steps/s | {r['peak_memory_mib']:.0f} MiB |")
for r in gen:
    if "images_per_s" in r:
        print(f"| {r['what']} generation, {r['preset']} | ddim{r['steps']}, batch {r['batch']}, "
              f"{'bf16' if r['bf16'] else 'fp32'} | {r['images_per_s']:.2f} images/s | |")
    else:
        print(f"| {r['what']} | ddim{r['steps']}, batch {r['batch']} | {r['seconds']:.1f} s | |")
path = out / "detection.jsonl"
for r in ([json.loads(l) for l in path.read_text().splitlines()] if path.is_file() else []):
    memory = f"{r['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in r else ""
    print(f"| detector {r['what']}, 640 x 416 | batch {r['batch']}, "
          f"{'bf16' if r['bf16'] else 'fp32'} | {r['images_per_s']:.2f} images/s | {memory} |")
best = max((r for r in gen if r.get("steps") == default and "images_per_s" in r
            and r["what"] == "cityscapes-size"), key=lambda r: r["images_per_s"], default=None)
if best:
    print(f"| BDD100K-RAW, 100,000 images (projected), {best['preset']} | ddim{default}, "
          f"batch {best['batch']}, {'bf16' if best['bf16'] else 'fp32'} | "
          f"{100_000 / best['images_per_s'] / 3600:.1f} h | |")
PYTHON
