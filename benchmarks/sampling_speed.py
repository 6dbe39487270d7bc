"""Benchmark of sampling: seconds per image with the guidance cached vs recomputed.

The paper preset (untrained weights: speed does not depend on them) on one 256 x 256 packed
RAW for ddim24 and ddim6, and a tiled 12 MP photo (4000 x 3000 pixels -> a 2000 x 1500 packed
guide, 256 px tiles overlapping by 64). Each 256 x 256 figure is the median of --repeats runs
after one warm-up, cached and recomputed runs alternating; the tiled run is timed once. Peak
memory (resident on CPU, allocated on GPU) is printed after the 256 x 256 runs and after the
tiled ones: tiling keeps it bounded.

    python benchmarks/sampling_speed.py [--device cpu|cuda] [--repeats 3] [--tiled-steps 6 [24]]
        [--skip-tiled] [--tiled-recompute]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from rawdiffusion.allocator import keep_freed_memory
from rawdiffusion.diffusion import Diffusion
from rawdiffusion.model import build_model
from rawdiffusion.sampling import generate, generate_tiled, tile_starts


def seconds(fn, device) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiled-steps", type=int, nargs="+", default=[6])
    parser.add_argument("--skip-tiled", action="store_true")
    parser.add_argument("--tiled-recompute", action="store_true",
                        help="also time the tiled image with recomputed guidance (slow on CPU)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = args.device
    keep_freed_memory()  # as the commands do
    torch.manual_seed(0)
    net = build_model("paper").to(device).for_sampling()  # as load_model prepares it
    diffusion = Diffusion().to(device)
    rgb = torch.rand((1, 3, 256, 256), device=device) * 2 - 1
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"paper preset ({sum(p.numel() for p in net.parameters()):,} parameters)")
    print(f"{'image':>22} {'steps':>6} {'cached s':>9} {'recomputed s':>13} {'speed-up':>9}")
    for steps in (24, 6):
        def run(cache):
            return seconds(lambda: generate(net, diffusion, rgb, steps,
                                            torch.Generator(device).manual_seed(0),
                                            cache_guidance=cache), device)

        run(True), run(False)  # warm-up
        # Cached and recomputed alternate, so that a machine that speeds up or slows down
        # during the run (a shared host) weighs on both alike.
        times = {True: [], False: []}
        for _ in range(args.repeats):
            for cache in (True, False):
                times[cache].append(run(cache))
        cached, recomputed = statistics.median(times[True]), statistics.median(times[False])
        print(f"{'256 x 256':>22} {steps:>6} {cached:>9.2f} {recomputed:>13.2f} "
              f"{recomputed / cached:>8.1f}x", flush=True)
    print(f"peak memory so far: {peak_mib(device):.0f} MiB")
    if args.skip_tiled:
        return
    big = torch.rand((1, 3, 1504, 2000), device=device) * 2 - 1  # 1500 rounded up to 32
    tiles = len(tile_starts(1504, 256, 64)) * len(tile_starts(2000, 256, 64))

    class Recompute(torch.nn.Module):
        """The same network with the reference's per-step guidance: encode_guidance defers
        the work to every forward call."""
        multiple = net.multiple

        def encode_guidance(self, rgb):
            return rgb

        def forward(self, x, t, guidance):
            return net(x, t, rgb=guidance)

    for steps in args.tiled_steps:
        times = {}
        for cache in (True, False) if args.tiled_recompute else (True,):
            model = net if cache else Recompute()
            times[cache] = seconds(lambda: generate_tiled(  # noqa: B023
                model, diffusion, big, steps, torch.Generator(device).manual_seed(0)), device)
        recomputed = times.get(False, float("nan"))
        print(f"{f'12 MP tiled ({tiles} tiles)':>22} {steps:>6} {times[True]:>9.1f} "
              f"{recomputed:>13.1f} {recomputed / times[True]:>8.1f}x", flush=True)
    print(f"peak memory so far: {peak_mib(device):.0f} MiB")


def peak_mib(device) -> float:
    """Peak memory of this process: GPU memory allocated on cuda, resident memory on cpu."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if __name__ == "__main__":
    main()
