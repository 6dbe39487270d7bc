"""Quality benchmark: RAW-Diffusion against the simplest alternatives, on real RAW, in one command.

    python benchmarks/quality.py [--budget-minutes 14] [--device cpu] [--steps 2 6 24]
                                 [--preset small --crop 64] [--out benchmarks/results]
                                 [--checkpoint CAMERA LABEL FILE ...]

For each camera of ../shared/data/raw (the three GoPro DNGs; the five scenes of the 5 MP GRBG
sensor of Infinite-ISP as a second camera):
1. prepares it with `rawdiffusion prepare folder` (3 x 3 patches, the scikit-learn split);
2. fits every baseline with `rawdiffusion baseline fit` (unprocessing generic / with the
   camera's metadata, the linear, poly2, poly3 and curves colour maps, and the colour prior's
   map poly3+curves+local alone);
3. trains, with the real `train.py` command, the one-pass control (model.objective=direct),
   RAW-Diffusion as the paper has it (model.prior=none) and with the colour prior (the default
   for dataset=folder, training.DEFAULT_PRIOR), within --budget-minutes of training in all (the
   step count comes from timing a few training steps first);
4. evaluates every method on the whole test patches under the paper's protocol (per patch,
   then averaged), the diffusion models at each of --steps; the shipped checkpoint too, on the
   camera it was trained for, and any --checkpoint given;
and writes <out>/quality.md (a Markdown table), quality.json (the same, plus the commands)
and quality.png (crops side by side: guide, target, methods, error maps).

With --renderings, every method is also evaluated from each of the benchmark's renderings of
the test images (rawdiffusion.renderings.BENCHMARK: LibRaw with other settings, other tone
curves and colour handling, JPEG, sharpening, denoising, edits), per rendering and as the mean
over the non-canonical ones, into <out>/renderings.md and renderings.json. --renderings-only
does only that, for the baselines of --kinds (fitted here) and the --checkpoint ones (at
--checkpoint-steps, default 1), without training. Measured on this project's 2 cores while
other jobs kept them busy (load 6 to 8): rendering the test images 1.5 minutes, the default
prior 2.7 (GoPro) + 1.5 (GRBG) minutes, the shipped checkpoint at one step 60 minutes (about
10 on 2 free cores by its per-patch time, 3.4 s).

    python benchmarks/quality.py --renderings-only [--kinds poly3+curves+local poly3 ...] \
        [--checkpoint gopro "shipped checkpoint" rawdiffusion/assets/gopro_small.pt]

Figures carry their protocol: normalised linear RAW in [0, 1]; PSNR/SSIM on R, (G1+G2)/2, B
(3-ch, the paper's) and on the 4 packed channels (4-ch); angular error in degrees over pixels
whose target exceeds 0.01 in every channel; highlight PSNR over the pixels where the guide is
clipped (255 in any channel); saturated hue error: the largest CIELAB hue error over eight
saturated sRGB patches turned into the camera's DNG and rendered by LibRaw with its metadata
(cameras with their own colour matrix only). Seconds per image are wall time on --device.
Renderings: the guide of each test patch is rendered from its RAW file by each recipe at full
resolution, halved and cut as prepare does; psnr_gain is the 3-ch PSNR after one least-squares
gain per packed channel (rawdiffusion.metrics.psnr_gain), which removes the exposure and
illuminant that a photo cannot tell; the mean is over the non-canonical renderings. Chart:
rawdiffusion.chart's eight saturated patches, the largest CIELAB hue error of the DNG rendered
back with the camera's metadata (cameras with their own colour matrix only) and the largest
mean |G1 - G2| of a patch, in % of white.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "raw"
SECOND_CAMERA = [f"infiniteisp_{s}_2592x1536_8bit_grbg" for s in
                 ("indoor1", "outdoor1", "outdoor2", "outdoor3", "outdoor4")]
BASELINES = ("upi", "upi-camera", "linear", "poly2", "poly3", "curves", "poly3+curves+local")
COLUMNS = ("psnr", "ssim", "psnr_rggb", "ssim_rggb", "angular_error", "psnr_highlight")
SHIPPED_CAMERA = "gopro"  # the shipped checkpoint was trained on the GoPro DNGs
RENDERING_KINDS = ("poly3+curves+local",)  # the default colour prior
RENDERING_COLUMNS = ("psnr", "psnr_gain", "angular_error", "green_disagreement")


def run(command: list[str], log: list) -> None:
    """Run a project command as a user would, echoing it and keeping it for the JSON."""
    shown = " ".join(str(c) for c in command)
    print(f"$ {shown}", flush=True)
    log.append(shown)
    subprocess.run([str(c) for c in command], check=True, cwd=REPO)


def cli(*args) -> list:
    return [sys.executable, "-m", "rawdiffusion.cli", *args]


def prepared_cameras(args, commands: list):
    """(camera name, its prepared dataset folder) for each of --cameras, prepared with
    `rawdiffusion prepare folder` into --work (a rerun skips what is prepared)."""
    for name, raw_dir in cameras(args.work).items():
        if name in args.cameras:
            data = args.work / name
            run(cli("prepare", "folder", "--raw-dir", raw_dir, "--out", data, "--name", name,
                    "--workers", "2"), commands)
            yield name, data


def cameras(work: Path) -> dict[str, Path]:
    """{camera: folder of its RAW files}; the second camera's five scenes are linked into a
    folder of their own (they share ../shared/data/raw/bayer with other sensors)."""
    second = work / "raw_grbg5mp"
    second.mkdir(parents=True, exist_ok=True)
    for stem in SECOND_CAMERA:
        for suffix in (".raw", ".json"):
            link = second / (stem + suffix)
            if not link.exists():
                link.symlink_to(SHARED / "bayer" / (stem + suffix))
    return {"gopro": SHARED / "dng", "grbg5mp": second}


def seconds_per_step(preset: str, crop: int, device: str) -> float:
    """Median time of a training step (batch 4) of the preset, to turn minutes into steps."""
    import torch

    from rawdiffusion.diffusion import Diffusion
    from rawdiffusion.model import build_model

    torch.manual_seed(0)
    net = build_model(preset).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    diffusion = Diffusion().to(device)
    raw = torch.rand(4, 4, crop, crop, device=device) * 2 - 1
    rgb = torch.rand(4, 3, crop, crop, device=device) * 2 - 1
    times = []
    for _ in range(6):
        start = time.perf_counter()
        loss, _ = diffusion.loss(lambda x, t: net(x, t, rgb=rgb), raw)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def parameters(path: Path) -> int:
    """Fitted parameters of a baseline file or trained values of a checkpoint."""
    from rawdiffusion.baselines import is_baseline_file
    from rawdiffusion.checkpoint import load_checkpoint

    if is_baseline_file(path):
        data = json.loads(path.read_text())
        return int(np.size(data["weights"])) if "weights" in data else 0
    state = load_checkpoint(path)
    return sum(v.numel() for v in state["model"].values() if v.is_floating_point())


def evaluate(path: Path, steps: int | None, data: Path, out: Path, device: str,
             fresh: bool = False, sampler: str = "ddim", bf16: bool = False) -> dict:
    """Metrics of one generator on the test split (evaluation.evaluate, as sample.py runs it)
    and its wall time per image, kept in out/result.json: a rerun reuses it unless `fresh`
    (or the generator file changed)."""
    from rawdiffusion.datasets.layout import PreparedDataset
    from rawdiffusion.evaluation import evaluate as evaluate_split
    from rawdiffusion.checkpoint import file_digest, same_checkpoint
    from rawdiffusion.loading import load

    saved = out / "result.json"
    digest = file_digest(path)
    if saved.is_file() and not fresh:
        result = json.loads(saved.read_text())
        if same_checkpoint(result.pop("digest", None), digest) and "hue_error" in result:
            return result
    shutil.rmtree(out, ignore_errors=True)  # no resumption: the time must be of one run
    gen = load(path, device=device, steps=steps or 24, sampler=sampler,
               dtype="bfloat16" if bf16 else "float32")
    dataset = PreparedDataset(data)
    start = time.perf_counter()
    summary = evaluate_split(dataset, "test", gen, out, seed=0)
    elapsed = time.perf_counter() - start
    result = {**{k: summary[k] for k in COLUMNS},
              "highlight_fraction": summary["highlight_fraction"], "images": summary["images"],
              "seconds_per_image": elapsed / summary["images"]}
    result["hue_error"] = saturated_hue_error(gen)
    saved.write_text(json.dumps({**result, "digest": digest}) + "\n")
    return result


def saturated_hue_error(gen) -> float | None:
    """How a generator treats colours that few training scenes contain: the largest CIELAB
    hue error in degrees over rawdiffusion.chart's eight saturated patches, turned into the
    camera's RAW, written as its DNG and rendered by LibRaw with the camera's own metadata (as
    the training guides were). None for a camera without its own colour matrix (its DNGs
    carry documented defaults, which say nothing)."""
    from rawdiffusion.chart import chart_report

    errors = [r["hue_error"] for r in chart_report(gen)]
    return None if None in errors else float(max(abs(e) for e in errors))


# The trained models: (objective, model.prior, label). The one-pass control and the paper's
# model have no prior; "default" is the project's default for dataset=folder, the colour prior
# (training.DEFAULT_PRIOR).
TRAINED = (("direct", "none", "one-pass control"),
           ("diffusion", "none", "RAW-Diffusion, paper model"),
           ("diffusion", "default", "RAW-Diffusion + colour prior"))


def main() -> None:
    args = _parser().parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED}: no such folder; the benchmark reads the real RAW files of "
                         "../shared/data/raw in place")
    from rawdiffusion.allocator import keep_freed_memory

    keep_freed_memory()
    if args.renderings_only:
        return renderings_main(args)
    commands, rows, rendered = [], [], []
    train_steps, per_step = _train_steps(args)
    figure_inputs = {}
    for name, data in prepared_cameras(args, commands):
        methods = (_baselines(name, data, args.work, commands, rows)
                   + _trained(name, data, args, train_steps, commands)
                   + _given(name, args))
        rows += _evaluated(name, data, methods, args)
        figure_inputs[name] = (data, methods)
        if args.renderings:
            rendered += _rendered(name, data, methods, args)

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": __doc__.split("Figures carry their protocol: ")[1].strip(),
            "device": args.device, "budget_minutes": args.budget_minutes,
            "train_steps": train_steps, "seconds_per_train_step": per_step,
            "commands": commands, "rows": rows}
    (args.out / "quality.json").write_text(json.dumps(meta, indent=1) + "\n")
    (args.out / "quality.md").write_text(markdown(rows))
    figure(figure_inputs, args.out / "quality.png", args.device)
    print(markdown(rows))
    print(f"wrote {args.out / 'quality.md'}, quality.json, quality.png")
    if args.renderings:
        write_renderings(args, commands, rendered)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rawdiffusion_quality"),
                        help="prepared data, baselines, runs and evaluations; a rerun reuses "
                             "them (finished training runs and evaluated methods are skipped)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                        help="where quality.md, quality.json and quality.png go")
    parser.add_argument("--budget-minutes", type=float, default=14,
                        help="training time in all, shared by the 6 training runs (2 cameras x "
                             "3 models); default 14: with the evaluations, about 45 minutes "
                             "on 2 cores by the timings of its parts")
    parser.add_argument("--train-steps", type=int,
                        help="steps per training run instead of what the budget buys")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 6, 24],
                        help="DDIM steps at which the diffusion models are evaluated")
    parser.add_argument("--preset", default="small", help="model.preset of the trained models "
                        "(paper on a GPU)")
    parser.add_argument("--crop", type=int, default=64, help="training crop (256 on a GPU)")
    parser.add_argument("--cameras", nargs="+", default=["gopro", "grbg5mp"])
    parser.add_argument("--checkpoint", nargs=3, action="append", default=[],
                        metavar=("CAMERA", "LABEL", "FILE"),
                        help="also evaluate this checkpoint on CAMERA's test split (repeatable)")
    parser.add_argument("--checkpoint-steps", type=int, nargs="+",
                        help="DDIM steps for the models not trained here, the shipped "
                             "checkpoint and --checkpoint ones (default: --steps)")
    parser.add_argument("--fresh", action="store_true",
                        help="evaluate every method again instead of reusing earlier results")
    parser.add_argument("--renderings", action="store_true",
                        help="also evaluate every method from the benchmark's renderings of the "
                             "test images (renderings.md, renderings.json)")
    parser.add_argument("--renderings-only", action="store_true",
                        help="only the renderings part: the baselines of --kinds and the "
                             "--checkpoint ones (at --checkpoint-steps, default 1), no training")
    parser.add_argument("--kinds", nargs="+", default=list(RENDERING_KINDS),
                        help="baseline kinds of --renderings-only")
    parser.add_argument("--rendering-tile", type=int, default=512,
                        help="tile size of the networks on the renderings (512: a test patch "
                             "in one tile, 2.7x faster than 256 on the GoPro patches)")
    return parser


def _train_steps(args) -> tuple[int, float | None]:
    """Steps per training run (--train-steps, or what --budget-minutes buys at the measured
    seconds per step) and those seconds (None when not measured)."""
    if args.train_steps is not None:
        return args.train_steps, None
    runs = len(TRAINED) * len(args.cameras)
    per_step = seconds_per_step(args.preset, args.crop, args.device)
    train_steps = max(10, int(args.budget_minutes * 60 / runs / per_step))
    print(f"a training step takes {per_step:.3f} s: {train_steps} steps per run "
          f"({args.budget_minutes} minutes over {runs} runs)", flush=True)
    return train_steps, per_step


def _baselines(name: str, data: Path, work: Path, commands: list, rows: list,
               kinds=BASELINES) -> list:
    """The fitted baselines of one camera as methods (label, path, [None]); a kind the camera
    cannot have (no colour matrix or white balance) becomes a row saying so."""
    methods = []
    for kind in kinds:
        path = work / "baselines" / name / f"{kind}.json"
        try:
            run(cli("baseline", "fit", data, "--kind", kind, "--out", path), commands)
        except subprocess.CalledProcessError:
            rows.append({"camera": name, "method": kind, "note": "not available for "
                         "this camera (no colour matrix or white balance)"})
            continue
        methods.append((kind, path, [None]))
    return methods


def _trained(name: str, data: Path, args, train_steps: int, commands: list) -> list:
    """The TRAINED models of one camera, each trained here (a finished run is kept), as
    methods (label, checkpoint, the DDIM steps to evaluate, [None] for a one-pass network)."""
    from rawdiffusion.training import DEFAULT_PRIOR

    methods = []
    for objective, prior, label in TRAINED:
        if prior == "default":
            prior, label = DEFAULT_PRIOR, f"{label} ({DEFAULT_PRIOR})"
        run_name = f"{name}-{objective}-{prior}-{args.preset}-{train_steps}"
        run([sys.executable, REPO / "train.py", "dataset=folder", f"dataset.root={data}",
             f"general.out={args.work / 'runs'}", f"general.run={run_name}",
             f"model.preset={args.preset}", f"model.objective={objective}",
             f"model.prior={prior}", f"optim.crop={args.crop}",
             f"optim.max_steps={train_steps}", f"optim.decay_steps={train_steps}",
             f"general.save_every={train_steps}", f"log.val_every={train_steps}",
             f"log.preview_every={train_steps}", "log.val_images=4", "system.workers=0"],
            commands)
        methods.append((f"{label} ({args.preset}, {train_steps} steps)",
                        args.work / "runs" / run_name / "checkpoint.pt",
                        [None] if objective == "direct" else args.steps))
    return methods


def _given(name: str, args) -> list:
    """The checkpoints not trained here, for one camera: the shipped one (its camera's) and
    those of --checkpoint."""
    from rawdiffusion.loading import shipped_checkpoint

    steps = args.checkpoint_steps or args.steps
    shipped = [("shipped checkpoint", shipped_checkpoint(), steps)]
    return (shipped if name == SHIPPED_CAMERA else []) + [(label, Path(path), steps)
                      for camera, label, path in args.checkpoint if camera == name]


def _evaluated(name: str, data: Path, methods: list, args) -> list[dict]:
    """One row per method and step count: its metrics on the camera's test split."""
    rows = []
    for label, path, steps_list in methods:
        for steps in steps_list:
            tag = f"{label}, ddim{steps}" if steps else label
            print(f"evaluating {name}: {tag}", flush=True)
            slug = "".join(c if c.isalnum() or c in "-." else "_" for c in tag)
            result = evaluate(path, steps, data, args.work / "eval" / name / slug,
                              args.device, args.fresh)
            rows.append({"camera": name, "method": label, "steps": steps,
                         "parameters": parameters(path), **result})
            print("  " + ", ".join(f"{k} {v:.4g}" for k, v in result.items()
                                   if isinstance(v, float)), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    fmt = lambda v, d: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{d}f}"  # noqa: E731
    lines = ["| camera | method | steps | PSNR 3-ch | SSIM 3-ch | PSNR 4-ch | SSIM 4-ch | angular "
             "error (deg) | highlight PSNR | saturated hue error (deg) | s / image | "
             "parameters |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "note" in r:
            lines.append(f"| {r['camera']} | {r['method']} | | {r['note']} | | | | | | | | |")
            continue
        lines.append(
            f"| {r['camera']} | {r['method']} | {r['steps'] or '-'} | {fmt(r['psnr'], 2)} | "
            f"{fmt(r['ssim'], 4)} | {fmt(r['psnr_rggb'], 2)} | {fmt(r['ssim_rggb'], 4)} | "
            f"{fmt(r['angular_error'], 2)} | {fmt(r['psnr_highlight'], 2)} | "
            f"{fmt(r.get('hue_error'), 0)} | {fmt(r['seconds_per_image'], 2)} | "
            f"{r['parameters']:,} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- renderings

def renderings_main(args) -> None:
    """--renderings-only: prepare each camera, fit the --kinds baselines, and evaluate them and
    the --checkpoint ones on the benchmark's renderings."""
    commands, rendered, notes = [], [], []
    for name, data in prepared_cameras(args, commands):
        steps = args.checkpoint_steps or [1]
        methods = _baselines(name, data, args.work, commands, notes, args.kinds) + [
            (label, Path(path), steps) for camera, label, path in args.checkpoint if camera == name]
        rendered += _rendered(name, data, methods, args)
    write_renderings(args, commands, rendered + notes)


def _rendered(name: str, data: Path, methods: list, args) -> list[dict]:
    """One row per method and step count: its metrics from each benchmark rendering of the
    camera's test patches, and their mean over the non-canonical renderings."""
    from rawdiffusion.chart import chart_report
    from rawdiffusion.loading import load
    from rawdiffusion.datasets.layout import PreparedDataset
    from rawdiffusion.renderings import BENCHMARK, CANONICAL, rendered_guides

    dataset = PreparedDataset(data)
    print(f"rendering {name}'s test images ({len(BENCHMARK)} recipes)", flush=True)
    guides = rendered_guides(dataset, "test", list(BENCHMARK), args.work / "renderings" / name)
    rows = []
    for label, path, steps_list in methods:
        for steps in steps_list:
            tag = f"{label}, ddim{steps}" if steps else label
            print(f"evaluating {name} on renderings: {tag}", flush=True)
            slug = "".join(c if c.isalnum() or c in "-." else "_" for c in tag)
            per = evaluate_renderings(path, steps, dataset, guides,
                                      args.work / "eval_renderings" / name / slug, args)
            others = [v for k, v in per.items() if k != CANONICAL["name"]]
            mean = {c: float(np.nanmean([v[c] for v in others])) for c in RENDERING_COLUMNS}
            chart = chart_report(load(path, device=args.device, steps=steps or 24,
                                      tile=args.rendering_tile))
            rows.append({"camera": name, "method": label, "steps": steps,
                         "canonical": per[CANONICAL["name"]], "mean": mean, "renderings": per,
                         "chart": chart})
            print("  canonical psnr_gain {:.2f}, mean psnr {:.2f}, psnr_gain {:.2f}".format(
                per[CANONICAL["name"]]["psnr_gain"], mean["psnr"], mean["psnr_gain"]), flush=True)
    return rows


def evaluate_renderings(path: Path, steps: int | None, dataset, guides: dict, out: Path,
                        args) -> dict[str, dict]:
    """{recipe name: metrics averaged over the test samples} of one generator, each sample
    generated from its rendered guide with the seed evaluation.evaluate gives it. Kept in
    out/<recipe>.json; a rerun reuses them unless --fresh or the generator changed."""
    import torch
    from PIL import Image

    from rawdiffusion.bayer import normalise
    from rawdiffusion.checkpoint import file_digest, same_checkpoint
    from rawdiffusion.loading import load
    from rawdiffusion.diffusion import derived_seed
    from rawdiffusion.metrics import green_disagreement, raw_metrics

    digest, gen, results = file_digest(path), None, {}
    ids = dataset.split("test")
    for recipe, paths in guides.items():
        saved = out / f"{recipe}.json"
        if saved.is_file() and not args.fresh:
            result = json.loads(saved.read_text())
            if same_checkpoint(result.pop("digest", None), digest):
                results[recipe] = result
                continue
        gen = gen or load(path, device=args.device, steps=steps or 24, tile=args.rendering_tile)
        values, start = {c: [] for c in RENDERING_COLUMNS}, time.perf_counter()
        for k, sample_id in enumerate(ids):
            sample = dataset.load(sample_id)
            x = gen.generate_from_guide(np.asarray(Image.open(paths[sample_id]).convert("RGB")),
                                        seed=derived_seed(0, k))
            pred = torch.from_numpy(x)[None]
            target = torch.from_numpy(normalise(sample.raw, sample.black, sample.white))[None]
            m = raw_metrics(pred, target)
            m["green_disagreement"] = green_disagreement(pred)
            for c in RENDERING_COLUMNS:
                values[c].append(m[c].item())
        result = {c: float(np.nanmean(v)) for c, v in values.items()}
        result["seconds_per_image"] = (time.perf_counter() - start) / len(ids)
        out.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({**result, "digest": digest}) + "\n")
        results[recipe] = result
    return results


def write_renderings(args, commands: list, rows: list[dict]) -> None:
    """<out>/renderings.md and renderings.json."""
    from rawdiffusion.renderings import BENCHMARK

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": __doc__.split("Renderings: ")[1].strip(), "device": args.device,
            "rendering_tile": args.rendering_tile, "recipes": list(BENCHMARK),
            "commands": commands, "rows": rows}
    (args.out / "renderings.json").write_text(json.dumps(meta, indent=1) + "\n")
    text = renderings_markdown(rows)
    (args.out / "renderings.md").write_text(text)
    print(text)
    print(f"wrote {args.out / 'renderings.md'}, renderings.json")


def renderings_markdown(rows: list[dict]) -> str:
    """The summary table (canonical and mean over the other renderings) and, per camera, one
    table of every rendering: PSNR / PSNR after per-channel gains / angular error."""
    from rawdiffusion.renderings import BENCHMARK

    f = lambda v: "-" if v is None or np.isnan(v) else f"{v:.2f}"  # noqa: E731
    lines = ["| camera | method | steps | canonical PSNR | canonical PSNR gains | canonical "
             "angle | mean PSNR | mean PSNR gains | mean angle | worst PSNR gains (rendering) | "
             "chart: largest hue error (deg) | chart: largest G1/G2 disagreement (% of white) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    done = [r for r in rows if "note" not in r]
    for r in rows:
        if "note" in r:
            lines.append(f"| {r['camera']} | {r['method']} | | {r['note']} | | | | | | | | |")
            continue
        c, m = r["canonical"], r["mean"]
        worst = min(r["renderings"], key=lambda k: r["renderings"][k]["psnr_gain"])
        hues = [abs(p["hue_error"]) for p in r["chart"] if p["hue_error"] is not None]
        greens = max(100 * p["green_disagreement"] for p in r["chart"])
        lines.append(f"| {r['camera']} | {r['method']} | {r['steps'] or '-'} | {f(c['psnr'])} | "
                     f"{f(c['psnr_gain'])} | {f(c['angular_error'])} | {f(m['psnr'])} | "
                     f"{f(m['psnr_gain'])} | {f(m['angular_error'])} | "
                     f"{f(r['renderings'][worst]['psnr_gain'])} ({worst}) | "
                     f"{f(max(hues)) if hues else '-'} | {greens:.1f} |")
    for camera in dict.fromkeys(r["camera"] for r in done):
        mine = [r for r in done if r["camera"] == camera]
        heads = [r["method"] + (f" ddim{r['steps']}" if r["steps"] else "") for r in mine]
        lines += ["", f"{camera}: PSNR / PSNR after per-channel gains / angular error (deg)", "",
                  "| rendering | " + " | ".join(heads) + " |",
                  "| --- |" + " --- |" * len(heads)]
        for recipe in BENCHMARK:
            cells = [r["renderings"][recipe["name"]] for r in mine]
            lines.append(f"| {recipe['name']} | " + " | ".join(
                f"{f(v['psnr'])} / {f(v['psnr_gain'])} / {f(v['angular_error'])}"
                for v in cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- figure

def _view(x: np.ndarray, gains: np.ndarray, scale: float) -> np.ndarray:
    """Packed RAW (4, h, w) in [0, 1] -> (h, w, 3) uint8 to look at: greens averaged, the
    target's grey-world gains and brightness, gamma 1/2.2. The same for every method."""
    rgb = np.stack([x[0], (x[1] + x[2]) / 2, x[3]], axis=-1) * gains * scale
    return np.round(np.clip(rgb, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


def _heat(err: np.ndarray, top: float = 0.1) -> np.ndarray:
    """Absolute error (h, w) -> (h, w, 3) uint8: black at 0, through red and yellow to white
    at `top` and above."""
    e = np.clip(err / top, 0, 1)
    rgb = np.stack([np.clip(3 * e, 0, 1), np.clip(3 * e - 1, 0, 1), np.clip(3 * e - 2, 0, 1)], -1)
    return np.round(rgb * 255).astype(np.uint8)


def figure(inputs: dict, path: Path, device: str, size: int = 192) -> None:
    """One block per camera: guide, target and every method's crop, then their error maps
    (|prediction - target|, greens averaged, 0 to 0.1 of the range). The crop is the centre of
    the test patch whose guide varies most (summed standard deviation of its channels)."""
    from PIL import Image, ImageDraw, ImageFont

    from rawdiffusion.bayer import normalise
    from rawdiffusion.datasets.layout import PreparedDataset
    from rawdiffusion.loading import load

    font = ImageFont.load_default(size=13)
    blocks = []
    for name, (data, methods) in inputs.items():
        dataset = PreparedDataset(data)
        samples = [dataset.load(i) for i in dataset.split("test")]
        s = max(samples, key=lambda s: s.rgb.astype(float).std(axis=(0, 1)).sum())
        h, w = s.rgb.shape[:2]
        top, left = (h - size) // 2 // 32 * 32, (w - size) // 2 // 32 * 32
        guide = s.rgb[top:top + size, left:left + size]
        target = normalise(s.raw, s.black, s.white)[:, top:top + size, left:left + size]
        t3 = np.stack([target[0], target[1:3].mean(0), target[3]], -1)
        gains = t3.reshape(-1, 3).mean(0).max() / np.maximum(t3.reshape(-1, 3).mean(0), 1e-6)
        scale = 1 / max(np.percentile(t3 * gains, 99), 1e-6)
        tiles = [("guide (sRGB)", guide, None), ("target RAW", _view(target, gains, scale), None)]
        for label, ckpt, steps_list in methods:
            steps = steps_list[len(steps_list) // 2]  # the middle step count: ddim6 by default
            gen = load(ckpt, device=device, steps=steps or 24)
            x = gen.generate_from_guide(guide, seed=0)
            err = np.abs(np.stack([x[0], x[1:3].mean(0), x[3]]) - np.stack(
                [target[0], target[1:3].mean(0), target[3]])).mean(0)
            short = label.split(" (")[0]
            tiles.append((short + (f" ddim{steps}" if steps else ""), _view(x, gains, scale),
                          _heat(err)))
        pad, text = 6, 18
        canvas = Image.new("RGB", (len(tiles) * (size + pad) + pad,
                                   2 * (size + text) + 3 * pad + text), (24, 24, 24))
        draw = ImageDraw.Draw(canvas)
        draw.text((pad, pad), f"{name}: test patch {s.id}, {size} x {size} packed pixels; "
                  "bottom: |error|, black 0 to white >= 0.1", font=font, fill=(230, 230, 230))
        for k, (label, image, heat) in enumerate(tiles):
            x0 = pad + k * (size + pad)
            y0 = pad + text
            draw.text((x0, y0), label[:30], font=font, fill=(230, 230, 230))
            canvas.paste(Image.fromarray(image), (x0, y0 + text))
            if heat is not None:
                canvas.paste(Image.fromarray(heat), (x0, y0 + 2 * text + size + pad))
        blocks.append(canvas)
    width = max(b.width for b in blocks)
    out = Image.new("RGB", (width, sum(b.height for b in blocks)), (24, 24, 24))
    y = 0
    for b in blocks:
        out.paste(b, (0, y))
        y += b.height
    out.save(path)


if __name__ == "__main__":
    main()
