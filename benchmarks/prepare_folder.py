"""Benchmark of `rawdiffusion prepare folder`: images per second and peak memory.

Runs the real command on ../shared/data/raw/dng (three GoPro DNGs, 12 and 9.3 MP) with 1 and
2 worker processes, each into a fresh folder, and reports the median of --repeats runs.
Peak memory is the largest sum of resident memory over the command's process tree, sampled
every 20 ms from /proc (Linux).

    python benchmarks/prepare_folder.py [--raw-dir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_RAW_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw" / "dng"


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (0 for processes already gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines()
                              if line.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def run_once(raw_dir: Path, workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "rawdiffusion.cli", "prepare", "folder", "--raw-dir",
               str(raw_dir), "--out", out, "--workers", str(workers)]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_bytes(proc.pid))
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=DEFAULT_RAW_DIR)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.raw_dir.is_dir():
        raise SystemExit(f"{args.raw_dir}: no such folder (../shared/data/raw/dng is expected)")
    n = sum(1 for p in args.raw_dir.iterdir() if p.suffix.lower() == ".dng")
    print(f"prepare folder on {args.raw_dir} ({n} files), median of {args.repeats} runs")
    print(f"{'workers':>7} {'seconds':>8} {'images/s':>9} {'peak RSS (MiB)':>15}")
    for workers in (1, 2):
        runs = [run_once(args.raw_dir, workers) for _ in range(args.repeats)]
        seconds = statistics.median(t for t, _ in runs)
        peak = max(m for _, m in runs)
        print(f"{workers:>7} {seconds:>8.2f} {n / seconds:>9.2f} {peak / 2 ** 20:>15.0f}")


if __name__ == "__main__":
    main()
