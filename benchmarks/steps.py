"""Steps against quality, per sampler: how few sampling steps a checkpoint needs.

Evaluates a checkpoint on a prepared camera's test split (the quality benchmark's protocol,
benchmarks/quality.py: whole test patches, normalised linear RAW, 3-channel PSNR and the rest)
with DDIM, DPM-Solver++ 2M and UniPC at several step counts, and names the fewest steps whose
PSNR is within --tolerance dB of DDIM at 24 steps (the paper's evaluation): `convert`'s default.

    python benchmarks/quality.py            # once: prepares /tmp/rawdiffusion_quality/gopro
    python benchmarks/steps.py              # the shipped checkpoint on the GoPro test split

Writes benchmarks/results/steps.md, steps.json and steps.png (PSNR against steps, one line per
sampler). A rerun reuses finished evaluations (quality.evaluate's result.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import evaluate  # noqa: E402  (the benchmark's protocol, reused)

DEFAULT_STEPS = {"ddim": (1, 2, 3, 4, 6, 24), "dpmpp2m": (3, 4, 6), "unipc": (1, 2, 3, 4, 6)}


def fewest_steps(rows: list[dict], tolerance: float) -> dict:
    """The row with the fewest steps (then DDIM first) whose PSNR is within `tolerance` dB
    of DDIM at 24 steps."""
    reference = next(r["psnr"] for r in rows if r["sampler"] == "ddim" and r["steps"] == 24)
    order = {s: k for k, s in enumerate(DEFAULT_STEPS)}
    good = [r for r in rows if r["psnr"] >= reference - tolerance]
    return min(good, key=lambda r: (r["steps"], order[r["sampler"]]))


def markdown(rows: list[dict], label: str, best: dict, tolerance: float) -> str:
    lines = [f"Steps against quality: {label} (test split, paper protocol)", "",
             "| sampler | steps | PSNR 3-ch | PSNR 4-ch | angular error (deg) | highlight PSNR "
             "| saturated hue error (deg) | s / image |", "|" + " --- |" * 8]
    for r in rows:
        hue = "-" if r.get("hue_error") is None else f"{r['hue_error']:.0f}"
        lines.append(f"| {r['sampler']} | {r['steps']} | {r['psnr']:.2f} | {r['psnr_rggb']:.2f} "
                     f"| {r['angular_error']:.2f} | {r['psnr_highlight']:.2f} | {hue} | "
                     f"{r['seconds_per_image']:.2f} |")
    lines += ["", f"Fewest steps within {tolerance} dB of ddim24: {best['sampler']} at "
                  f"{best['steps']} step(s), {best['psnr']:.2f} dB."]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], label: str, path: Path) -> None:
    from PIL import Image, ImageDraw

    w, h, pad = 640, 400, 50
    steps = sorted({r["steps"] for r in rows})
    lo, hi = min(r["psnr"] for r in rows) - 0.05, max(r["psnr"] for r in rows) + 0.05
    x = lambda s: pad + steps.index(s) * (w - 2 * pad) / max(1, len(steps) - 1)  # noqa: E731
    y = lambda p: h - pad - (p - lo) * (h - 2 * pad) / (hi - lo)  # noqa: E731
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 10), f"PSNR (dB) against steps: {label}", fill="black")
    for s in steps:
        draw.text((x(s) - 4, h - pad + 8), str(s), fill="black")
    for p in (lo, (lo + hi) / 2, hi):
        draw.text((4, y(p) - 6), f"{p:.2f}", fill="black")
    colours = {"ddim": (31, 119, 180), "dpmpp2m": (214, 39, 40), "unipc": (44, 160, 44)}
    for k, (sampler, colour) in enumerate(colours.items()):
        points = [(x(r["steps"]), y(r["psnr"])) for r in rows if r["sampler"] == sampler]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=colour)
        draw.text((w - 120, 30 + 14 * k), sampler, fill=colour)
    image.save(path)


def main() -> None:
    from rawdiffusion.loading import shipped_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="default: the shipped checkpoint (GoPro)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/rawdiffusion_quality/gopro"),
                        help="a prepared paired dataset with a test split (default: the quality "
                             "benchmark's GoPro data)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rawdiffusion_steps"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tolerance", type=float, default=0.05, help="dB (default 0.05)")
    args = parser.parse_args()
    checkpoint = args.checkpoint or shipped_checkpoint()
    if not (args.data / "test.txt").is_file():
        raise SystemExit(f"{args.data}: not a prepared dataset with a test split; run "
                         "benchmarks/quality.py first, or give --data")
    rows = []
    for sampler, counts in DEFAULT_STEPS.items():
        for steps in counts:
            print(f"evaluating {sampler} at {steps} step(s)", flush=True)
            result = evaluate(checkpoint, steps, args.data,
                              args.work / checkpoint.stem / f"{sampler}{steps}", args.device,
                              sampler=sampler)
            rows.append({"sampler": sampler, "steps": steps, **result})
            print(f"  PSNR {result['psnr']:.3f}", flush=True)
    best = fewest_steps(rows, args.tolerance)
    label = f"{checkpoint.name} on {args.data.name}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "steps.md").write_text(markdown(rows, label, best, args.tolerance))
    (args.out / "steps.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint), "data": str(args.data), "device": args.device,
         "tolerance_db": args.tolerance, "fewest": best, "rows": rows}, indent=1) + "\n")
    figure(rows, label, args.out / "steps.png")
    print(markdown(rows, label, best, args.tolerance))


if __name__ == "__main__":
    main()
