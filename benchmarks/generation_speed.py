"""Benchmark of generation at dataset scale: images per second at batch 1 and batched, in
float32 and bf16, against the reference's cost.

Cityscapes-size RGB images (416 x 832 -> a 208 x 416 packed guide, two 256-px tiles) are
turned into RAW with an untrained network of --preset (speed does not depend on the weights),
through sampling.generate_batched as `convert` and `sample.py` run it: --batch tiles per forward
pass. The reference's cost is 24 DDIM steps with the guidance recomputed at every step
(cache_guidance=False), one tile at a time. Each figure is one timed pass over --images images
after a warm-up. Also --photo: one 12 MP photo (2000 x 1504 packed guide, 88 tiles) at the
first --steps, batched.

    python benchmarks/generation_speed.py                      # CPU, paper preset
    python benchmarks/generation_speed.py --device cuda --bf16 --images 32 --batch 1 8 32

Prints one JSON object per measurement (and a table); --json FILE keeps them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rawdiffusion.allocator import keep_freed_memory
from rawdiffusion.diffusion import Diffusion
from rawdiffusion.model import build_model
from rawdiffusion.sampling import generate, generate_batched, pad_to_multiple, tile_starts

CITYSCAPES_GUIDE = (208, 416)  # 416 x 832 RGB, halved as the guide of a RAW of that size
TILE, OVERLAP = 256, 64


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def images_per_second(net, diffusion, rgbs, noises, steps, batch, bf16, device) -> float:
    """Images per second of generate_batched over all of `rgbs`, after a warm-up batch."""
    autocast = torch.autocast(device.split(":")[0], torch.bfloat16, enabled=bf16)
    with autocast:
        generate_batched(net, diffusion, rgbs[:1], noises[:1], steps, TILE, OVERLAP, batch)
        seconds = timed(lambda: generate_batched(net, diffusion, rgbs, noises, steps, TILE,
                                                 OVERLAP, batch), device)
    return len(rgbs) / seconds


def reference_images_per_second(net, diffusion, rgb, noise, device) -> float:
    """The reference's way: 24 DDIM steps recomputing the guidance at each, tile by tile."""
    H, W = rgb.shape[-2:]
    windows = [(..., slice(y, y + min(TILE, H)), slice(x, x + min(TILE, W)))
               for y in tile_starts(H, TILE, OVERLAP) for x in tile_starts(W, TILE, OVERLAP)]
    seconds = timed(lambda: [generate(net, diffusion, rgb[w], 24, noise=noise[w],
                                      cache_guidance=False) for w in windows], device)
    return 1 / seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 24])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--bf16", action="store_true", help="also measure bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--reference", action="store_true",
                        help="also time the reference's ddim24 (slow on a CPU)")
    parser.add_argument("--photo", action="store_true", help="also a 12 MP photo")
    parser.add_argument("--json", help="write the measurements here (JSON lines)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    net = build_model(args.preset).to(args.device).eval()
    if args.channels_last:
        net = net.to(memory_format=torch.channels_last)
    diffusion = Diffusion().to(args.device)
    g = torch.Generator(args.device).manual_seed(0)
    # padded to the network's multiple, as convert pads (208 x 416 -> 224 x 416 for paper)
    rgbs = [pad_to_multiple(torch.rand((1, 3, *CITYSCAPES_GUIDE), generator=g,
                                       device=args.device) * 2 - 1, net.multiple)[0]
            for _ in range(args.images)]
    noises = [torch.randn((1, 4, *rgb.shape[-2:]), generator=g, device=args.device)
              for rgb in rgbs]
    rows = []
    if args.json:
        open(args.json, "w").close()

    def report(row: dict) -> None:  # kept as it comes: a crash later loses nothing measured
        row = {"device": args.device, "preset": args.preset,
               "channels_last": args.channels_last, **row}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")

    if args.reference:
        report({"what": "reference ddim24 (guidance recomputed), batch 1", "steps": 24,
                "batch": 1, "bf16": False,
                "images_per_s": reference_images_per_second(net, diffusion, rgbs[0], noises[0],
                                                            args.device)})
    for bf16 in (False, True) if args.bf16 else (False,):
        for steps in args.steps:
            for batch in args.batch:
                report({"what": "cityscapes-size", "steps": steps, "batch": batch, "bf16": bf16,
                        "images_per_s": images_per_second(net, diffusion, rgbs, noises, steps,
                                                          batch, bf16, args.device)})
    if args.photo:
        rgb = torch.rand((1, 3, 1504, 2000), generator=g, device=args.device) * 2 - 1
        noise = torch.randn((1, 4, 1504, 2000), generator=g, device=args.device)
        batch = max(args.batch)
        seconds = timed(lambda: generate_batched(net, diffusion, [rgb], [noise], args.steps[0],
                                                 TILE, OVERLAP, batch), args.device)
        report({"what": "12 MP photo", "steps": args.steps[0], "batch": batch, "bf16": False,
                "seconds": seconds})
    print("| what | steps | batch | bf16 | images/s |\n|---|---|---|---|---|")
    for r in rows:
        value = r.get("images_per_s", 1 / r["seconds"] if "seconds" in r else 0)
        print(f"| {r['what']} | {r['steps']} | {r['batch']} | {r['bf16']} | {value:.3f} |")


if __name__ == "__main__":
    main()
