"""Benchmark of allocator.keep_freed_memory: page faults and seconds of a U-Net step on CPU with
glibc's default allocator settings and with freed blocks kept for reuse.

A step of the given preset at the given packed size with cached guidance, after one warm-up
step, in a fresh process per setting (the setting is process-wide); of --steps steps the fewest
minor page faults and the median seconds are printed. Faults depend on the machine's memory
pressure (the kernel reclaims idle pages now and then), which is why this is a benchmark run by
hand and not a test (tests/test_allocator.py checks the setting itself, through mallinfo2).

    python benchmarks/allocator_faults.py [--preset small] [--size 256] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

STEP = """
import json, resource, statistics, sys, time
import torch
from rawdiffusion.allocator import keep_freed_memory
from rawdiffusion.model import build_model

mode, preset, size, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "keep":
    assert keep_freed_memory()
torch.manual_seed(0)
net = build_model(preset).eval()
x, rgb = torch.randn(1, 4, size, size), torch.rand(1, 3, size, size)
t = torch.tensor([500])
with torch.no_grad():
    guidance = net.encode_guidance(rgb)
    net(x, t, guidance=guidance)  # warm-up
    faults, seconds = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        net(x, t, guidance=guidance)
        seconds.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"fewest_faults": min(faults), "faults": faults,
                  "median_seconds": statistics.median(seconds),
                  "threads": torch.get_num_threads()}))
"""


def measure(mode: str, preset: str, size: int, steps: int) -> dict:
    result = subprocess.run([sys.executable, "-c", STEP, mode, preset, str(size), str(steps)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="model preset (default small)")
    parser.add_argument("--size", type=int, default=256, help="packed side (default 256)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    args = parser.parse_args()
    print(f"{args.preset} preset, {args.size} x {args.size}, {args.steps} steps after a warm-up")
    for mode in ("default", "keep"):
        r = measure(mode, args.preset, args.size, args.steps)
        print(f"{mode:8} fewest page faults {r['fewest_faults']:>7}  (all: {r['faults']})  "
              f"median {r['median_seconds']:.3f} s/step  ({r['threads']} threads)")


if __name__ == "__main__":
    main()
