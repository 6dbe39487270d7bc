"""Benchmark of the detector: training and evaluation images per second.

Faster R-CNN R50-FPN as `rawdiffusion detect train` builds it (random weights; speed does not
depend on them) on NOD-h416-size inputs (3 x 416 x 640, the normalised RAW with the greens
averaged) with 5 random boxes each: a training iteration (forward, loss, backward, SGD step)
at --batch images, and inference at --eval-batch images, in float32 and, on CUDA, bf16
autocast. Each figure is the mean over --iterations after two warm-up iterations. The data
pipeline is left out: reading a 416 x 640 npy takes about a millisecond.

    python benchmarks/detection_speed.py                        # CPU
    python benchmarks/detection_speed.py --device cuda --batch 8 --eval-batch 16

Prints one JSON object per measurement and a table; --json FILE keeps them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rawdiffusion.detection.model import build_detector, parameter_groups

SIZE = (416, 640)


def inputs(batch: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(3, *SIZE, generator=g).to(device) for _ in range(batch)]
    targets = []
    for _ in range(batch):
        xy = torch.rand(5, 2, generator=g) * torch.tensor([SIZE[1] - 80, SIZE[0] - 80])
        wh = 20 + torch.rand(5, 2, generator=g) * 60
        targets.append({"boxes": torch.cat([xy, xy + wh], 1).to(device),
                        "labels": torch.randint(1, 4, (5,), generator=g).to(device)})
    return images, targets


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(step, iterations: int, device: str) -> float:
    for _ in range(2):
        step()
    synchronise(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    synchronise(device)
    return (time.perf_counter() - start) / iterations


def run(device: str, batch: int, eval_batch: int, iterations: int, bf16: bool) -> list[dict]:
    torch.manual_seed(0)
    model = build_detector(SIZE[0], SIZE[1]).to(device)
    optimizer = torch.optim.SGD(parameter_groups(model, 1e-4), lr=1e-4, momentum=0.9,
                                nesterov=True)
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
    images, targets = inputs(batch, device)

    def train_step():
        model.train()
        with autocast:
            loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    eval_images, _ = inputs(eval_batch, device, seed=1)

    @torch.no_grad()
    def eval_step():
        model.eval()
        with autocast:
            model(eval_images)

    results = []
    for what, step, n in (("training", train_step, batch), ("evaluation", eval_step, eval_batch)):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        seconds = measure(step, iterations, device)
        r = {"what": what, "device": device, "batch": n, "bf16": bf16,
             "images_per_s": n / seconds, "size": list(SIZE)}
        if device.startswith("cuda"):
            r["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(r), flush=True)
        results.append(r)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=2, help="training images per iteration")
    p.add_argument("--eval-batch", type=int, default=4, help="images per inference call")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--json", help="append the measurements to this file (JSON lines)")
    args = p.parse_args()
    results = run(args.device, args.batch, args.eval_batch, args.iterations, bf16=False)
    if args.device.startswith("cuda"):
        results += run(args.device, args.batch, args.eval_batch, args.iterations, bf16=True)
    print(f"| detector, {SIZE[1]} x {SIZE[0]} | batch | precision | images/s |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['what']} ({r['device']}) | {r['batch']} | {'bf16' if r['bf16'] else 'fp32'} "
              f"| {r['images_per_s']:.2f} |")
    if args.json:
        with open(args.json, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)


if __name__ == "__main__":
    main()
