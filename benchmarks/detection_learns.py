"""Does the detector learn? `detect train` on synthetic street scenes, from random weights.

Renders --train and --test scenes (tests/detection_scenes.py: persons, bicycles and cars with
known boxes) as NOD RAW files with RAW-NOD annotations, prepares them with `prepare nod
--h416`, trains the real-only detector from a random backbone at a small input size, and
prints the validation AP of every --val-every epochs (COCO box AP on the test scenes, from
the run's stats.jsonl). A check of the whole training path on data where the answer is known,
not a measure of RAW detection: the scenes are far easier than NOD.

    python benchmarks/detection_learns.py --out /tmp/learns        # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="a folder for the scenes, data and run")
    p.add_argument("--train", type=int, default=40)
    p.add_argument("--test", type=int, default=10)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--val-every", type=int, default=3)
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from detection_scenes import nod_scenes

    from rawdiffusion.cli import main as cli

    out = Path(args.out)
    if not (out / "data" / "nod_nikon_h416" / "dataset.json").is_file():
        nod_scenes(out / "NOD", "nikon", train=args.train, test=args.test)
        cli(["prepare", "nod", "--root", str(out / "NOD"), "--camera", "nikon", "--h416",
             "--out", str(out / "data" / "nod_nikon_h416")])
    status = cli(["detect", "train", f"general.data_root={out / 'data'}",
                  f"general.out={out / 'runs'}", "data.real.max_items=null",
                  "detector.min_size=128", "detector.max_size=200",
                  f"optim.epochs={args.epochs}", "optim.batch_size=4", "optim.warmup_iters=30",
                  f"optim.milestones=[{args.epochs * 3 // 4}]", "system.workers=1",
                  "log.every=10", f"log.val_every={args.val_every}"])
    stats = out / "runs" / "nod_nikon_h416-s0" / "stats.jsonl"
    print("| iteration | AP | AP50 | AP75 | person | bicycle | car |\n|---|---|---|---|---|---|---|")
    for line in stats.read_text().splitlines():
        r = json.loads(line)
        if "val/AP" in r:
            print(f"| {r['step']} | " + " | ".join(
                f"{100 * r.get(k, float('nan')):.1f}" for k in (
                    "val/AP", "val/AP50", "val/AP75", "val/AP_person", "val/AP_bicycle",
                    "val/AP_car")) + " |")
    sys.exit(status)


if __name__ == "__main__":
    main()
