"""Benchmark of what a fixed CPU budget buys: train the small preset on the shared GoPro DNGs,
then test-split PSNR / SSIM under the paper's protocol.

1. Prepares ../shared/data/raw/dng (three GoPro DNGs) with `rawdiffusion prepare folder`
   defaults (15 % test split with seed 2817: one test image, 3 x 3 patches of it).
2. Trains with the real command (printed), the small preset on 64 px crops, batch 4, for a
   fixed number of steps; the learning rate decays linearly to 0 over them (the paper's
   schedule, compressed).
3. Samples every test patch (whole, or its center crop with --eval-crop) with DDIM (ddim24,
   seeded noise) from the checkpoint alone and reports the paper's metrics (normalised linear
   RAW, greens averaged: MSE, PSNR, SSIM, Pearson) and the 4-channel PSNR / SSIM.

    python benchmarks/train_quality.py [--steps 1200] [--eval-crop 256] [--work /tmp/rd_quality]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW_DIR = REPO.parent / "shared" / "data" / "raw" / "dng"


def evaluate(checkpoint: Path, data: Path, steps: int, crop: int) -> tuple[dict, int]:
    """Mean metrics over the test split, sampled from the checkpoint alone."""
    import torch

    from rawdiffusion.checkpoint import load_model
    from rawdiffusion.datasets.layout import PreparedDataset
    from rawdiffusion.diffusion import Diffusion
    from rawdiffusion.metrics import mean_metrics, raw_metrics
    from rawdiffusion.sampling import generate
    from rawdiffusion.training_data import VAL_SEED, to_model_range

    net, _ = load_model(checkpoint)
    diffusion = Diffusion()
    dataset = PreparedDataset(data)
    results = []
    for i, sample_id in enumerate(dataset.split("test")):
        s = dataset.load(sample_id)
        raw, rgb = s.raw, s.rgb.transpose(2, 0, 1)
        if crop:
            h, w = raw.shape[-2:]
            top, left = (h - crop) // 2, (w - crop) // 2
            raw = raw[:, top:top + crop, left:left + crop]
            rgb = rgb[:, top:top + crop, left:left + crop]
        target, guide = to_model_range(raw, rgb, s.black, s.white)
        x0 = generate(net, diffusion, guide[None], steps,
                      torch.Generator().manual_seed(VAL_SEED + i))
        results.append(raw_metrics((x0 + 1) / 2, (target[None] + 1) / 2))
        print(f"  {sample_id}: " + ", ".join(f"{k} {v.item():.4g}" for k, v in results[-1].items()),
              flush=True)
    return mean_metrics(results), len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=DEFAULT_RAW_DIR)
    parser.add_argument("--work", type=Path, default=Path("/tmp/rd_quality"))
    parser.add_argument("--steps", type=int, default=1200, help="training steps")
    parser.add_argument("--crop", type=int, default=64, help="training crop")
    parser.add_argument("--eval-crop", type=int, default=256,
                        help="evaluate center crops of this size (0: whole test patches, "
                             "about 4x slower)")
    parser.add_argument("--respacing", default="ddim24")
    args = parser.parse_args()
    if not args.raw_dir.is_dir():
        raise SystemExit(f"{args.raw_dir}: no such folder (../shared/data/raw/dng is expected)")

    data = args.work / "gopro"
    prepare = [sys.executable, "-m", "rawdiffusion.cli", "prepare", "folder", "--raw-dir",
               str(args.raw_dir), "--out", str(data), "--name", "gopro", "--workers", "2"]
    print("$", " ".join(prepare[1:]), flush=True)
    subprocess.run(prepare, check=True, cwd=REPO)

    train = [sys.executable, str(REPO / "train.py"), "dataset=folder", f"dataset.root={data}",
             f"general.out={args.work / 'runs'}", "model.preset=small",
             f"optim.crop={args.crop}", f"optim.max_steps={args.steps}",
             f"optim.decay_steps={args.steps}", f"general.save_every={max(args.steps // 5, 1)}",
             "log.every=25", f"log.preview_every={max(args.steps // 5, 1)}",
             f"log.val_every={args.steps}", "log.val_images=4", "system.workers=0"]
    print("$", " ".join(train[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(train, check=True, cwd=REPO)
    train_s = time.perf_counter() - start
    run_dir = args.work / "runs" / "gopro-small-s0"

    print(f"evaluating {run_dir / 'checkpoint.pt'} with {args.respacing}", flush=True)
    start = time.perf_counter()
    from rawdiffusion.runs import ddim_steps

    means, n = evaluate(run_dir / "checkpoint.pt", data, ddim_steps(args.respacing),
                        args.eval_crop)
    eval_s = time.perf_counter() - start
    protocol = (f"{n} test patches" + (f", center {args.eval_crop} crops" if args.eval_crop
                                       else ", whole") + f", {args.respacing}, seeded noise")
    print(json.dumps({"steps": args.steps, "train_seconds": round(train_s, 1),
                      "eval_seconds": round(eval_s, 1), "protocol": protocol, **means}, indent=1))


if __name__ == "__main__":
    main()
