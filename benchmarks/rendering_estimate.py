"""Rendering estimate benchmark: does undoing a photo's rendering before the colour prior, with
one global transform per photo, close the gap between renderings? (issue 20, item 2)

    python benchmarks/rendering_estimate.py [--work /tmp/rawdiffusion_quality] [--seeds 0 1 2]
        [--renderings-per-raw 32] [--train-steps 3000] [--synthetic 0] [--gain-invariant]
        [--out benchmarks/results]

The transform (`Transform`): per channel a monotone tone curve on the 8-bit codes (16 knots,
piecewise linear), then in linear RGB (IEC 61966-2-1 decoding) a 3x3 matrix and one gain per
channel, encoded back to 8-bit codes; the default colour prior (poly3+curves+local, fitted on
the canonical rendering by `rawdiffusion baseline fit`) then generates from the result. Three
ways to set it, for each test patch of each benchmark rendering (renderings.BENCHMARK):

- none: the prior alone, as benchmarks/quality.py --renderings-only measures it;
- oracle: fitted (rawdiffusion.pipeline's fit, least squares in linear RGB) to the same
  photo's canonical rendering: what a perfect estimate of the rendering would give, an upper
  bound of the approach;
- pair: fitted once per rendering on the camera's training images, rendered by the same recipe
  and canonically, by rawdiffusion.pipeline's fit: a pipeline calibrated from RAW + photo
  pairs of other scenes, as `rawdiffusion pipeline fit` calibrates one;
- learned: predicted from the photo's own statistics (`features`: per-channel histograms and
  quantiles, clipping, chroma and saturation per luma bin) by a small MLP (`Estimator`),
  trained to map each of --renderings-per-raw training renderings (renderings.training_recipes,
  drawn with other parameters than the benchmark's) of every RAW file of ../shared, but the
  benchmarked cameras' test images, and of --synthetic procedural scenes (synthetic_scenes.py:
  dead leaves under varied light, as RAW of an sRGB camera, rendered by LibRaw with the same
  recipes), back to its canonical rendering (--gain-invariant: after one least-squares gain per
  channel, its luminance then kept at the photo's). One estimator per seed; its figures are
  the mean and spread over --seeds.

Metrics as quality.py's renderings: 3-channel PSNR, PSNR after one least-squares gain per packed
channel (psnr_gain), angular error; per rendering and as the mean over the 19 non-canonical
ones. Writes <out>/rendering_estimate.md and rendering_estimate.json. Uses quality.py's --work
(the prepared cameras, the prior's baseline files and the test renderings; made if missing) and
keeps its own training renderings and results there
(estimate_results/<camera>/<method>-k<renderings>-t<steps>[-syn<N>][-gi].json), so
that a rerun skips what is measured.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import zlib
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality  # noqa: E402  (benchmarks/quality.py: cameras, their data and baselines)
from rawdiffusion.pipeline import FIT_PIXELS, KNOTS, Pipeline, encode, fit, \
    transform  # noqa: E402

KIND = "poly3+curves+local"
ORACLE_PIXELS = 20_000  # the oracle's fit, one per photo and rendering (pair: FIT_PIXELS)
QUANTILES = (.005, .01, .02, .05, .1, .2, .3, .4, .5, .6, .7, .8, .9, .95, .98, .99, .995)
LUMA_BINS = 8
N_FEATURES = 96 + 3 * len(QUANTILES) + 6 + 4 * LUMA_BINS


class Transform:
    """A batch of global transforms: curve increments d (B, 3, KNOTS - 1) (softplus: monotone),
    matrix change m (B, 3, 3) (the matrix is I + m), log gains g (B, 3); float64."""

    def __init__(self, d, m, g):
        self.d, self.m, self.g = d, m, g

    def linear(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, 3, N) 0..255 -> the transformed linear RGB (B, 3, N), not clipped."""
        inc = F.softplus(self.d)
        knots = torch.cat([torch.zeros_like(inc[..., :1]), inc.cumsum(-1)], -1)
        return transform(knots, torch.eye(3, dtype=inc.dtype) + self.m, self.g.exp(), codes)

    @torch.no_grad()
    def apply(self, guide: np.ndarray) -> np.ndarray:
        """One photo (h, w, 3) uint8 (batch 1) -> the transformed photo, uint8."""
        codes = torch.from_numpy(guide.reshape(-1, 3).T.astype(np.float64))[None]
        out = (encode(self.linear(codes)) * 255).round()[0]
        return out.T.reshape(guide.shape).numpy().astype(np.uint8)


@functools.cache
def linear_table() -> torch.Tensor:
    """(256,) float64: the linear value of each 8-bit sRGB code."""
    from rawdiffusion.prior import srgb_to_linear_table

    return torch.from_numpy(srgb_to_linear_table())


def pixels_of(guides: list[np.ndarray]) -> np.ndarray:
    """The pixels of one photo's patches (each (h, w, 3) uint8), (N, 3)."""
    return np.concatenate([g.reshape(-1, 3) for g in guides])


def fitted(photos: list[np.ndarray], canonical: list[np.ndarray],
           pixels: int = FIT_PIXELS) -> Pipeline:
    """rawdiffusion.pipeline's fit of the transform taking `photos` closest to `canonical`, as
    `rawdiffusion pipeline fit` makes it (from `pixels` pixels)."""
    return Pipeline(*fit(photos, canonical, pixels=pixels)[:3], {})


def undo(pipeline: Pipeline, guide: np.ndarray) -> np.ndarray:
    """One photo (h, w, 3) uint8 with `pipeline` undone."""
    return pipeline.apply(torch.tensor(guide).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


def features(codes: torch.Tensor) -> torch.Tensor:
    """codes: (3, N) int64 pixels of one photo -> (N_FEATURES,) float32 statistics."""
    h = torch.stack([torch.bincount(codes[c], minlength=256) for c in range(3)]).double()
    p = h / h.sum(1, keepdim=True)
    hist = p.view(3, 32, 8).sum(-1).sqrt().flatten()
    cdf = p.cumsum(1)
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    quantiles = torch.stack([torch.searchsorted(cdf[c].contiguous(), q) for c in range(3)])
    clip = torch.stack([p[:, 255], p[:, :3].sum(1)], 1).flatten()
    x = codes.double() / 255
    bins = (x.mean(0) * LUMA_BINS).long().clamp(max=LUMA_BINS - 1)
    count = torch.bincount(bins, minlength=LUMA_BINS).double()
    per_bin = lambda v: torch.bincount(bins, weights=v, minlength=LUMA_BINS) / count.clamp(min=1)  # noqa: E731
    chroma = [per_bin(x[0] - x[1]), per_bin(x[2] - x[1]),
              per_bin(x.max(0).values - x.min(0).values)]
    return torch.cat([hist, quantiles.double().flatten().clamp(max=255) / 255, clip, *chroma,
                      (count / count.sum()).sqrt()]).float()


class Estimator(nn.Module):
    """features -> Transform; the last layer starts at zero (the identity transform)."""

    def __init__(self, hidden: int = 64, gain_invariant: bool = False):
        super().__init__()
        self.gain_invariant = gain_invariant
        outputs = 3 * (KNOTS - 1) + 9 + 3
        self.register_buffer("mu", torch.zeros(N_FEATURES))
        self.register_buffer("sd", torch.ones(N_FEATURES))
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, outputs))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, f: torch.Tensor) -> Transform:
        z = self.net((f - self.mu) / self.sd).double()
        b, k = len(z), 3 * (KNOTS - 1)
        base = float(np.log(np.expm1(1 / (KNOTS - 1))))
        return Transform(base + z[:, :k].view(b, 3, KNOTS - 1), 0.1 * z[:, k:k + 9].view(b, 3, 3),
                         z[:, k + 9:])

    @torch.no_grad()
    def estimate(self, guides: list[np.ndarray]) -> Transform:
        """The transform of one photo, from the pixels of all its patches. An estimator trained
        with gain-invariant loss predicts no exposure: its gains are set so that the photo's
        mean linear luminance (Rec. 709 weights) stays as it was."""
        codes = torch.from_numpy(pixels_of(guides).T.astype(np.int64))
        t = self(features(codes)[None])
        if self.gain_invariant:
            luma = torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)
            before = (luma @ linear_table()[codes]).mean()
            t.g = t.g * 0
            after = (luma @ t.linear(codes.double()[None])[0].clamp(0, 1)).mean()
            t.g = t.g + torch.log(before / after.clamp(min=1e-9))
        return t


# ----------------------------------------------------------------------------- training data

def training_raw_files(test_sources: set[str]) -> list[Path]:
    """Every RAW file of ../shared (DNGs, headerless dumps and PGMs with their sidecars) but the
    benchmarked cameras' test images."""
    files = sorted(quality.SHARED.glob("dng/*.dng")) + sorted(
        p for p in quality.SHARED.glob("bayer/*") if p.suffix in (".raw", ".pgm"))
    return [p for p in files if str(p.resolve()) not in test_sources]


def render_training(job) -> str:
    """One RAW file's (or, for an int, synthetic scene's) canonical rendering and `count`
    training renderings, as guides (the packed size) kept at every 2nd pixel: <out>/<stem>.npz,
    codes (count + 1, h, w, 3), 0 canonical. The recipes are drawn from the file name's CRC-32
    ("synthetic-<seed>" for a scene), so the set does not depend on the order or number of
    files."""
    from rawdiffusion import renderings as R
    from rawdiffusion.io import read_raw

    path, count, out = job
    stem = f"synthetic-{path}" if isinstance(path, int) else path.stem
    target = out / f"{stem}.npz"
    if not target.is_file():
        if isinstance(path, int):
            import synthetic_scenes
            raw = synthetic_scenes.raw_image(path)
        else:
            raw = read_raw(path)
        recipes = [R.CANONICAL] + R.training_recipes(count, seed=zlib.crc32(stem.encode()))
        by_stage = sorted(range(len(recipes)), key=lambda j: R.recipe_key(recipes[j])[:200])
        codes = [None] * len(recipes)
        for j, (_, image) in zip(by_stage, R.render_many(raw, [recipes[j] for j in by_stage])):
            codes[j] = R.guide(image, raw)[::2, ::2]
        out.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.npz")
        np.savez(partial, codes=np.stack(codes))
        partial.rename(target)
    return str(target)


def crops(images: list[np.ndarray], rng, batch: int, pixels: int = 2048, canonical: float = 0.2,
          smallest: float = 0.3):
    """A batch of random crops of random renderings (the canonical one with probability
    `canonical`): their features (B, F), `pixels` drawn codes (B, 3, pixels) and the canonical
    rendering's linear values there (B, 3, pixels)."""
    fs, xs, ys = [], [], []
    for _ in range(batch):
        codes = images[rng.integers(len(images))]
        k = 0 if rng.random() < canonical else int(rng.integers(1, len(codes)))
        _, height, width, _ = codes.shape
        h = max(16, int(height * rng.uniform(smallest, 1)))
        w = max(16, int(width * rng.uniform(smallest, 1)))
        y, x = rng.integers(height - h + 1), rng.integers(width - w + 1)
        src = codes[k, y:y + h, x:x + w].reshape(-1, 3)
        dst = codes[0, y:y + h, x:x + w].reshape(-1, 3)
        fs.append(features(torch.from_numpy(src.T.astype(np.int64))))
        i = rng.integers(len(src), size=pixels)
        xs.append(torch.from_numpy(src[i].T.astype(np.float64)))
        ys.append(linear_table()[torch.from_numpy(dst[i].T.astype(np.int64))])
    return torch.stack(fs), torch.stack(xs), torch.stack(ys)


def train(images: list[np.ndarray], steps: int, seed: int, gain_invariant: bool,
          batch: int = 16, lr: float = 3e-3, weight_decay: float = 1e-3) -> Estimator:
    """An Estimator trained to map renderings back to the canonical one (MSE in linear RGB;
    gain_invariant: after the least-squares gain per channel and crop, so that it learns the
    shape of the rendering, not the exposure and illuminant that a photo cannot tell), seeded."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    est = Estimator(gain_invariant=gain_invariant)
    f, _, _ = crops(images, rng, 256)
    est.mu.copy_(f.mean(0))
    est.sd.copy_(f.std(0).clamp(min=1e-3))
    opt = torch.optim.AdamW(est.parameters(), lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        f, x, y = crops(images, rng, batch)
        p = est(f).linear(x).clamp(max=1)
        if gain_invariant:
            p = p * ((p * y).sum(-1, keepdim=True) / p.square().sum(-1, keepdim=True)
                     .clamp(min=1e-12))
        loss = (p - y).square().mean()
        for group in opt.param_groups:
            group["lr"] = lr * (1 - step / steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 500 == 0 or step == steps - 1:
            print(f"  seed {seed} step {step}: {-10 * np.log10(loss.item()):.2f} dB", flush=True)
    return est.eval()


# ----------------------------------------------------------------------------- evaluation

def evaluate(gen, dataset, guides: dict, fix) -> dict:
    """{recipe: mean metrics over the test patches} of the prior generating from the patches
    that fix(recipe, one photo's patches, their canonical renderings) gives, one photo at a
    time, with quality.py's seeds."""
    from PIL import Image

    from rawdiffusion.bayer import normalise
    from rawdiffusion.diffusion import derived_seed
    from rawdiffusion.metrics import raw_metrics
    from rawdiffusion.renderings import CANONICAL

    read = lambda path: np.asarray(Image.open(path).convert("RGB"))  # noqa: E731
    ids = dataset.split("test")
    photos = {}  # image id -> its test samples
    for sample_id in ids:
        photos.setdefault(dataset.image_of(sample_id), []).append(sample_id)
    results = {}
    for recipe, paths in guides.items():
        fixed = {}
        for samples in photos.values():
            fixed.update(zip(samples, fix(recipe, [read(paths[s]) for s in samples],
                                          [read(guides[CANONICAL["name"]][s]) for s in samples])))
        values = {c: [] for c in ("psnr", "psnr_gain", "angular_error")}
        for k, sample_id in enumerate(ids):
            sample = dataset.load(sample_id)
            x = gen.generate_from_guide(np.ascontiguousarray(fixed[sample_id]),
                                        seed=derived_seed(0, k))
            m = raw_metrics(torch.from_numpy(x)[None], torch.from_numpy(
                normalise(sample.raw, sample.black, sample.white))[None])
            for c in values:
                values[c].append(m[c].item())
        results[recipe] = {c: float(np.nanmean(v)) for c, v in values.items()}
    return results


def summary(per: dict) -> dict:
    from rawdiffusion.renderings import CANONICAL

    others = [v for k, v in per.items() if k != CANONICAL["name"]]
    return {"canonical": per[CANONICAL["name"]],
            "mean": {c: float(np.mean([v[c] for v in others])) for c in others[0]}}


def main() -> None:
    from rawdiffusion.datasets.layout import PreparedDataset
    from rawdiffusion.loading import load
    from rawdiffusion.renderings import BENCHMARK, rendered_guides

    args = _parser().parse_args()
    torch.set_num_threads(1)
    commands, notes, cams = [], [], {}
    for name, data in quality.prepared_cameras(args, commands):
        dataset = PreparedDataset(data)
        baseline = quality._baselines(name, data, args.work, commands, notes, (KIND,))[0][1]
        guides = rendered_guides(dataset, "test", list(BENCHMARK), args.work / "renderings" / name)
        cams[name] = (dataset, load(baseline, device="cpu"), guides)
    test_sources = {str(Path(e["source"]).resolve()) for dataset, _, _ in cams.values()
                    for e in dataset.images.values() if e["split"] == "test"}
    files = training_raw_files(test_sources)
    learned = {f"learned s{s}": s for s in args.seeds}
    setting = f"k{args.renderings_per_raw}-t{args.train_steps}"
    synthetic = (f"-syn{args.synthetic}" if args.synthetic else "") + (
        "-gi" if args.gain_invariant else "")
    saved = lambda name, method: (args.work / "estimate_results" / name  # noqa: E731
                                  / f"{method.replace(' ', '-')}-{setting}"
                                    f"{synthetic if method in learned else ''}.json")
    estimators = {}
    if any(not saved(name, m).is_file() for name in cams for m in learned):
        estimators = trained_estimators(files, args)
    rows = []
    for name, (dataset, gen, guides) in cams.items():
        for method in ["none", "oracle", "pair", *learned]:
            if saved(name, method).is_file():  # a rerun keeps what was measured
                rows.append(json.loads(saved(name, method).read_text()))
                continue
            start = time.perf_counter()
            fix = fixer(method, dataset, guides, args, estimators.get(learned.get(method)))
            per = evaluate(gen, dataset, guides, fix)
            rows.append({"camera": name, "method": method, **summary(per), "renderings": per})
            saved(name, method).parent.mkdir(parents=True, exist_ok=True)
            saved(name, method).write_text(json.dumps(rows[-1]) + "\n")
            s = rows[-1]
            print(f"{name} {method}: canonical {s['canonical']['psnr_gain']:.2f}, mean "
                  f"{s['mean']['psnr']:.2f} / {s['mean']['psnr_gain']:.2f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rendering_estimate.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()},
         "training_files": [p.name for p in files], "commands": commands, "rows": rows},
        indent=1) + "\n")
    (args.out / "rendering_estimate.md").write_text(markdown(rows, args))
    print((args.out / "rendering_estimate.md").read_text())


def trained_estimators(files: list[Path], args) -> dict[int, Estimator]:
    """One Estimator per seed, trained on the training renderings of `files` and of
    --synthetic scenes (rendered first, kept in --work)."""
    out = args.work / "estimate_training" / f"k{args.renderings_per_raw}"
    print(f"rendering {len(files)} training RAW files and {args.synthetic} synthetic scenes x "
          f"{args.renderings_per_raw} renderings", flush=True)
    jobs = [(p, args.renderings_per_raw, out) for p in files]
    jobs += [(i, args.renderings_per_raw, out) for i in range(args.synthetic)]
    with Pool(args.processes) as pool:
        paths = pool.map(render_training, jobs, chunksize=1)
    images = [np.load(p)["codes"] for p in paths]
    estimators = {}
    for seed in args.seeds:
        start = time.perf_counter()
        estimators[seed] = train(images, args.train_steps, seed, args.gain_invariant)
        print(f"trained seed {seed} in {time.perf_counter() - start:.0f} s", flush=True)
    return estimators


def fixer(method: str, dataset, guides: dict, args, estimator: Estimator | None):
    """fix(recipe, one photo's patches, their canonical renderings) -> the patches the prior
    generates from, for `method`: none; oracle (fitted to the photo's own canonical rendering);
    pair (fitted once per recipe on the camera's training images rendered by that recipe and
    canonically: a pipeline calibrated from RAW + photo pairs of other scenes); learned."""
    from PIL import Image

    from rawdiffusion.renderings import BENCHMARK, CANONICAL, rendered_guides

    if method == "none":
        return lambda recipe, gs, cs: gs
    if method == "oracle":
        return lambda recipe, gs, cs: [undo(fitted(gs, cs, ORACLE_PIXELS), g) for g in gs]
    if estimator is not None:
        return lambda recipe, gs, cs: [estimator.estimate(gs).apply(g) for g in gs]
    train = rendered_guides(dataset, "train", list(BENCHMARK),
                            args.work / "renderings_train" / Path(dataset.root).name)
    read = lambda path: np.asarray(Image.open(path).convert("RGB"))  # noqa: E731
    canonical = [read(p) for p in train[CANONICAL["name"]].values()]
    per_recipe = {recipe: fitted([read(p) for p in paths.values()], canonical)
                  for recipe, paths in train.items()}
    return lambda recipe, gs, cs: [undo(per_recipe[recipe], g) for g in gs]


def markdown(rows: list[dict], args) -> str:
    """The table: per camera and method, the canonical rendering and the mean of the others;
    the learned estimate as mean +- standard deviation over its seeds."""
    lines = ["# Rendering estimate benchmark", "",
             f"`python benchmarks/rendering_estimate.py --seeds {' '.join(map(str, args.seeds))} "
             f"--renderings-per-raw {args.renderings_per_raw} --train-steps {args.train_steps} "
             f"--synthetic {args.synthetic}{' --gain-invariant' * args.gain_invariant}`",
             "", "PSNR after per-channel gains (plain PSNR), dB; angular error in degrees. "
             "Mean: over the 19 non-canonical renderings.", "",
             "| camera | transform | canonical | mean of the renderings | angle (canonical / "
             "mean) |",
             "| --- | --- | --- | --- | --- |"]
    for camera in dict.fromkeys(r["camera"] for r in rows):
        mine = [r for r in rows if r["camera"] == camera]
        groups = {"none (prior alone)": [r for r in mine if r["method"] == "none"],
                  "oracle (fitted to the canonical rendering)": [r for r in mine
                                                                if r["method"] == "oracle"],
                  "pair (fitted on the training images' same rendering)": [
                      r for r in mine if r["method"] == "pair"],
                  f"learned ({learned_from(args)}; {len(args.seeds)} seeds)": [r for r in mine
                                                         if r["method"].startswith("learned")]}
        for label, group in groups.items():
            cell = lambda part, c: _spread([r[part][c] for r in group])  # noqa: E731
            lines.append(f"| {camera} | {label} | {cell('canonical', 'psnr_gain')} "
                         f"({cell('canonical', 'psnr')}) | {cell('mean', 'psnr_gain')} "
                         f"({cell('mean', 'psnr')}) | {cell('canonical', 'angular_error')} / "
                         f"{cell('mean', 'angular_error')} |")
    lines += ["", "Per rendering, PSNR after gains (learned: mean over seeds):", "",
              "| camera | rendering | none | oracle | pair | learned |",
              "| --- | --- | --- | --- | --- | --- |"]
    for camera in dict.fromkeys(r["camera"] for r in rows):
        mine = [r for r in rows if r["camera"] == camera]
        for recipe in mine[0]["renderings"]:
            value = lambda pick: np.mean([r["renderings"][recipe]["psnr_gain"]  # noqa: E731
                                          for r in mine if pick(r["method"])])
            lines.append(f"| {camera} | {recipe} | {value(lambda m: m == 'none'):.2f} | "
                         f"{value(lambda m: m == 'oracle'):.2f} | "
                         f"{value(lambda m: m == 'pair'):.2f} | "
                         f"{value(lambda m: m.startswith('learned')):.2f} |")
    return "\n".join(lines) + "\n"


def learned_from(args) -> str:
    """What the learned estimate was trained on, in words."""
    scenes = f" + {args.synthetic} synthetic scenes" if args.synthetic else ""
    loss = ", gain-invariant loss" if args.gain_invariant else ""
    return f"real RAW files{scenes}, {args.train_steps} steps{loss}"


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} +- {np.std(values, ddof=1):.2f}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rawdiffusion_quality"),
                        help="quality.py's work folder (prepared cameras, baselines, test "
                             "renderings), and this benchmark's training renderings")
    parser.add_argument("--out", type=Path, default=quality.REPO / "benchmarks" / "results")
    parser.add_argument("--cameras", nargs="+", default=["gopro", "grbg5mp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--renderings-per-raw", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--synthetic", type=int, default=0,
                        help="procedural scenes (synthetic_scenes.py) added to the training RAW")
    parser.add_argument("--gain-invariant", action="store_true",
                        help="train the estimate with a loss after per-channel gains")
    parser.add_argument("--processes", type=int, default=2,
                        help="processes rendering the training RAW files")
    return parser


if __name__ == "__main__":
    main()
