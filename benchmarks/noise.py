"""Sensor noise benchmark: the calibration on synthetic mosaics, generated against real RAW noise,
and what adding noise costs, in one command.

    python benchmarks/noise.py [--work /tmp/noise-bench] [--out benchmarks/results]
                               [--checkpoint rawdiffusion/assets/gopro_small.pt] [--device cpu]

(a) Recovery: textured synthetic scenes (tests/noise_scenes.py: a smooth field spread from
    0.001 to 1, hard-edged shapes, fine stripes) with real Poisson-Gaussian noise of known S and
    O, quantised to 12- or 14-bit codes; the estimator (noise.measure) per channel, against the
    truth, for several noise levels and seeds.
(b) Real against generated, through the commands: `rawdiffusion prepare folder` on
    ../shared/data/raw/dng (the GoPro DNGs; the test split is the Fusion back image), which
    records each image's ISO, exposure, DNG NoiseProfile and measured noise. The noise model
    is the one the checkpoint stores with its camera (the shipped one: `rawdiffusion export
    --noise` of such a dataset, from the training images of its make and model; the HERO6 is
    another sensor and only listed), checked against a calibration from this dataset as
    training would make it. Each test patch's guide, as a photo, goes through `rawdiffusion
    convert --steps 1` without and with `--iso` at the image's ISO (EXIF); then the same
    estimator runs on the real patches and on the written DNGs (the same image area), per
    channel. Also listed: the estimator on the clean DNGs, on the ablation that draws the whole
    model on top of them (convert adds only what they lack), the NoiseProfile the DNGs carry,
    and the real file's DNG tag. The second camera of ../shared (the 5 MP GRBG sensor's dumps)
    has no ISO: it is not calibrated.
(c) Cost: for one test patch and for the whole test image, a 1-step generation and the noise
    added to its result (Generator.recorded, what convert's writers run), timed side by side
    in this process on --device.
(d) The noise's character on the real files (row noise, spatial correlation, tails) against
    synthetic Poisson-Gaussian noise, to see whether the model needs more than it has.

Writes <out>/noise.md, noise.json and noise.png (variance against mean per channel: real,
generated, the calibrated model, the DNG tag).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "raw"
CHANNELS = ("R", "G1", "G2", "B")
# (S, O, white, black) of the synthetic recovery: 14-bit with and without a black offset, 12-bit
SYNTHETIC = [(4e-5, 4e-7, 16383, 0), (1e-4, 1e-6, 16383, 512), (5e-4, 4e-6, 16383, 512),
             (2e-3, 2e-5, 4095, 256), (1e-2, 2e-4, 4095, 256)]
SEEDS = (0, 1, 2)


def recovery(size: int = 768) -> list[dict]:
    """(a): per synthetic case, the estimate per channel and seed, and the worst relative error."""
    sys.path.insert(0, str(REPO / "tests"))
    from noise_scenes import poisson_gaussian_codes, textured_scene

    from rawdiffusion import bayer
    from rawdiffusion.io import RawImage
    from rawdiffusion.noise import measure

    rows = []
    for shot, read, white, black in SYNTHETIC:
        found = []
        for seed in SEEDS:
            codes = poisson_gaussian_codes(textured_scene(size, size, seed), [shot] * 4,
                                           [read] * 4, [black] * 4, white, seed)
            raw = RawImage(mosaic=bayer.unpack(codes, "RGGB"), cfa="RGGB", black_level=black,
                           white_level=white)
            found.append(measure(raw))
        shots = np.array([f.shot for f in found])
        reads = np.array([f.read for f in found])
        rows.append({"shot": shot, "read": read, "white": white, "black": black, "size": size,
                     "shot_found": shots.tolist(), "read_found": reads.tolist(),
                     "shot_error": np.abs(shots / shot - 1).max(axis=0).tolist(),
                     "read_error": np.abs(reads / read - 1).max(axis=0).tolist()})
        print(f"S {shot:.0e} O {read:.0e}: worst error S {max(rows[-1]['shot_error']):.1%}, "
              f"O {max(rows[-1]['read_error']):.1%}", flush=True)
    return rows


def character(z: np.ndarray, lo: float) -> dict:
    """(d) for one channel (h, w), normalised: in the darkest third of its smooth blocks (where
    read noise counts most and texture least), the Haar details' variances against the
    diagonal's (white noise: 1; row noise makes V exceed H, column noise H exceed V), the next
    scale's (4 var D2 / var D: 1 for white noise, below 1 where neighbouring samples' noise is
    anti-correlated), and the kurtosis of D within 8 narrow level sets, averaged (3: Gaussian)."""
    from rawdiffusion.noise_levels import BLOCK, block_details, haar, smooth_mask

    a, h, v, d = block_details(z)
    smooth = smooth_mask(a, h, v, lo)
    level = a.mean(axis=1)
    dark = smooth & (level <= np.quantile(level[smooth], 1 / 3))
    half = BLOCK // 2
    d2 = haar(haar(np.asarray(z, dtype=np.float64))[0])[3]  # cut into the same blocks:
    hb, wb = z.shape[0] // 2 // BLOCK, z.shape[1] // 2 // BLOCK
    d2 = d2[:hb * half, :wb * half].reshape(hb, half, wb, half)
    d2 = d2.transpose(0, 2, 1, 3).reshape(hb * wb, half * half)
    centred = lambda m: m - m.mean(axis=1, keepdims=True)  # noqa: E731  (gradients leak into H, V)
    vh, vv = (np.square(centred(m[dark])).mean() for m in (h, v))
    vd, vd2 = np.square(d[dark]).mean(), np.square(d2[dark]).mean()
    sets = np.array_split(np.flatnonzero(dark)[np.argsort(level[dark])], 8)  # narrow levels
    kurtosis = np.mean([np.mean(d[s] ** 4) / np.mean(d[s] ** 2) ** 2 for s in sets])
    return {"levels": [float(level[dark].min()), float(level[dark].max())],
            "h_d": vh / vd, "v_d": vv / vd, "v_h": vv / vh, "scale2": 4 * vd2 / vd,
            "kurtosis": float(kurtosis)}


def characters(data: Path) -> list[dict]:
    """(d) for every image of the prepared dataset and for synthetic Poisson-Gaussian noise of
    the GoPro's level (the white, Gaussian reference), per channel."""
    sys.path.insert(0, str(REPO / "tests"))
    from noise_scenes import poisson_gaussian_codes, textured_scene

    from rawdiffusion.io import read_raw
    from rawdiffusion.noise import normalised_packed

    description = json.loads((data / "dataset.json").read_text())
    planes = {name: normalised_packed(read_raw(entry["source"]))
              for name, entry in sorted(description["images"].items())}
    codes = poisson_gaussian_codes(textured_scene(1024, 1024, 0), [1.6e-4] * 4, [1e-7] * 4,
                                   [0] * 4, 16383, 0)
    planes["synthetic Poisson-Gaussian"] = (codes / 16383.0, np.zeros(4))
    return [{"image": name, "channel": CHANNELS[c], **character(x[c], lo[c])}
            for name, (x, lo) in planes.items() for c in range(4)]


def prepare(work: Path, log: list) -> Path:
    data = work / "gopro"
    command = [sys.executable, "-m", "rawdiffusion.cli", "prepare", "folder", "--raw-dir",
               str(SHARED / "dng"), "--out", str(data)]
    log.append("rawdiffusion " + " ".join(command[3:]))
    print("$ " + log[-1], flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    return data


def files_table(data: Path, camera) -> list[dict]:
    """Every image's ISO, exposure, measured noise and DNG tag as `prepare` recorded them in
    dataset.json (noise.entry_noise), and whether it calibrates the camera's model (training
    split, the camera's make and model: Camera.from_training_images)."""
    from rawdiffusion.noise import profile_channels

    description = json.loads((data / "dataset.json").read_text())
    rows = []
    for name, entry in sorted(description["images"].items()):
        tag = profile_channels(entry["noise_profile"]) if entry["noise_profile"] else None
        same = (entry["make"], entry["model"]) == (camera.make, camera.model)
        rows.append({"image": name, "camera": f"{entry['make']} {entry['model']}",
                     "split": entry["split"], "iso": entry["iso"],
                     "exposure_time": entry["exposure_time"],
                     "calibrates": same and entry["split"] == "train",
                     "shot": entry["noise"]["shot"], "read": entry["noise"]["read"],
                     "tag_shot": None if tag is None else tag[0].tolist(),
                     "tag_read": None if tag is None else tag[1].tolist()})
    return rows


def test_images(data: Path) -> list[dict]:
    """The test split's images: ids, ISO, levels, real patch codes and guides."""
    from PIL import Image

    description = json.loads((data / "dataset.json").read_text())
    images = []
    for name, entry in sorted(description["images"].items()):
        if entry["split"] != "test":
            continue
        images.append({
            "image": name, "iso": entry["iso"], "source": entry["source"],
            "black": np.asarray(entry["black_level"], dtype=np.float64),  # per packed channel
            "white": float(entry["white_level"]), "ids": entry["samples"],
            "real": [np.load(data / "raw" / f"{s}.npy") for s in entry["samples"]],
            "guides": [np.asarray(Image.open(data / "rgb" / f"{s}.png").convert("RGB"))
                       for s in entry["samples"]]})
    return images


def normalised(codes: np.ndarray, black: np.ndarray, white: float) -> np.ndarray:
    black = black.reshape(4, 1, 1)
    return (codes.astype(np.float64) - black) / (white - black)


def photos_of(image: dict, folder: Path) -> list[Path]:
    """The patches' guides as photos convert takes: each pixel 2 x 2, so that convert's
    halving (images.halve_area) gives the guide back exactly."""
    from rawdiffusion.images import halve_area, write_png

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample_id, guide in zip(image["ids"], image["guides"]):
        photo = guide.repeat(2, axis=0).repeat(2, axis=1)
        assert np.array_equal(halve_area(photo), guide)
        write_png(folder / f"{sample_id}.png", photo)
        paths.append(folder / f"{sample_id}.png")
    return paths


def convert(photos: list[Path], out: Path, args, log: list, iso: float | None) -> None:
    """`rawdiffusion convert` of the photos at 1 step, seed 0 (with --iso when given), as a
    user runs it."""
    options = ["--out", str(out), "--checkpoint", str(args.checkpoint), "--steps", "1",
               "--seed", "0", "--workers", "0", *(["--cpu"] if args.device == "cpu" else []),
               *(["--iso", f"{iso:g}"] if iso is not None else [])]
    log.append(f"rawdiffusion convert {photos[0].parent}/*.png " + " ".join(options))
    print("$ " + log[-1], flush=True)
    subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "convert", *map(str, photos),
                    *options], check=True, cwd=REPO)


def timed(fn, device: str):
    import torch

    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def real_and_generated(image: dict, model, args, log: list) -> dict:
    """(b) and part of (c) for one test image: its patches converted by `rawdiffusion convert`
    without and with --iso <its ISO>; the estimator on the real patches, on the DNGs written
    with noise and on the clean ones; the ablation that draws the whole model on top of the
    clean ones (sensor._sensor, the draw without the top-up); the NoiseProfile the noisy DNGs
    carry."""
    import torch

    from rawdiffusion.diffusion import derived_seed
    from rawdiffusion.io import read_raw
    from rawdiffusion.noise import normalised_packed
    from rawdiffusion.noise_levels import estimate_noise
    from rawdiffusion.sensor import _sensor, noise_generators

    work = args.work / image["image"]
    photos = photos_of(image, work / "photos")
    convert(photos, work / "clean", args, log, None)
    convert(photos, work / "noisy", args, log, image["iso"])
    black, white = image["black"], image["white"]
    written = {kind: [read_raw(work / kind / f"{s}.dng") for s in image["ids"]]
               for kind in ("clean", "noisy")}
    clean = [normalised_packed(raw)[0] for raw in written["clean"]]
    whole = [_sensor(torch.from_numpy(x).float().clamp(0, 1), *model.at(image["iso"]), black,
                     white, noise_generators([derived_seed(0, i)])[0]).double().numpy()
             for i, x in enumerate(clean)]
    lo = -black / (white - black)
    found = {"real": estimate_noise([normalised(c, black, white) for c in image["real"]], lo),
             "generated": estimate_noise([normalised_packed(r)[0] for r in written["noisy"]],
                                         lo),
             "whole": estimate_noise(whole, lo)}
    try:
        found["clean"] = estimate_noise(clean, lo)
    except ValueError as e:  # no smooth block with any variation at all
        print(f"clean generated patches: {e}")
    profiles = {r.noise_profile for r in written["noisy"]}
    isos = {r.iso for r in written["noisy"]}
    return {"found": found, "profiles": profiles, "isos": isos, "clean": clean}


def cost(image: dict, clean: list[np.ndarray], args) -> dict:
    """(c) in this process, side by side: a 1-step generation (the generator convert opens) and
    its `recorded` (exposure, noise at the ISO: what convert's writer adds), for one patch (the
    noise step's median over all patches) and for the whole test image (its guide as `prepare`
    renders it)."""
    import torch

    from rawdiffusion.diffusion import derived_seed
    from rawdiffusion.images import halve_area
    from rawdiffusion.io import read_raw, render_srgb
    from rawdiffusion.loading import open_generator
    from rawdiffusion.settings import Settings

    gen = open_generator(args.checkpoint, Settings(steps=1, iso=image["iso"]),
                         torch.device(args.device))
    seed = derived_seed(0, 0)
    gen.generate_from_guides([image["guides"][0]], [seed])  # warm-up: one-time costs
    _, patch_generate = timed(lambda: gen.generate_from_guides([image["guides"][0]], [seed]),
                              args.device)
    patch_noise = np.median([timed(lambda: gen.recorded(torch.from_numpy(x).float(), seed),
                                   args.device)[1] for x in clean])
    guide = halve_area(render_srgb(read_raw(image["source"])))
    x, whole_generate = timed(lambda: gen.generate_from_guides([guide], [seed])[0], args.device)
    _, whole_noise = timed(lambda: gen.recorded(torch.from_numpy(x), seed), args.device)
    return {"patch": {"size": list(image["guides"][0].shape[:2]), "generate_s": patch_generate,
                      "noise_s": float(patch_noise), "share": patch_noise / patch_generate},
            "whole": {"size": list(x.shape[1:]), "generate_s": whole_generate,
                      "noise_s": whole_noise, "share": whole_noise / whole_generate}}


def comparison_rows(found: dict, model, iso: float, tag) -> list[dict]:
    """(b)'s table: per channel, S and O of real, generated and clean generated, the model's
    and the DNG tag's."""
    shot, read = model.at(iso)
    rows = []
    for c, name in enumerate(CHANNELS):
        real, generated, whole = found["real"], found["generated"], found["whole"]
        clean = found.get("clean")
        rows.append({"channel": name, "real_shot": real.shot[c], "generated_shot":
                     generated.shot[c], "ratio": generated.shot[c] / real.shot[c],
                     "whole_model_shot": whole.shot[c],
                     "whole_model_ratio": whole.shot[c] / real.shot[c],
                     "real_read": real.read[c], "generated_read": generated.read[c],
                     "clean_shot": None if clean is None else clean.shot[c],
                     "model_shot": shot[c], "model_read": read[c],
                     "tag_shot": None if tag is None else tag[0][c],
                     "tag_read": None if tag is None else tag[1][c]})
    return [{k: (float(v) if isinstance(v, (float, np.floating)) else v)
             for k, v in row.items()} for row in rows]


def plot(path: Path, found: dict, model, iso: float, tag, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6), sharey=True)
    shot, read = model.at(iso)
    styles = {"real": ("tab:blue", "o", "real RAW"), "generated": ("tab:orange", "s",
              "generated + noise"), "clean": ("0.6", ".", "generated, clean")}
    for c, ax in enumerate(axes):
        top = max(lv.levels[c].mean.max() for lv in found.values())
        xs = np.geomspace(1e-4, max(top, 1e-3), 100)
        for key, est in found.items():
            if key not in styles:
                continue
            colour, marker, label = styles[key]
            lv = est.levels[c]
            ax.scatter(lv.mean, lv.variance, s=14, color=colour, marker=marker, label=label)
            if key != "clean":
                ax.plot(xs, est.shot[c] * xs + est.read[c], color=colour, lw=1,
                        label=f"{label} fit, S {est.shot[c]:.2e}")
        ax.plot(xs, shot[c] * xs + read[c], color="tab:green", lw=1, ls="--",
                label=f"model at ISO {iso:g}, S {shot[c]:.2e}")
        if tag is not None:
            ax.plot(xs, tag[0][c] * xs + tag[1][c], color="k", lw=1, ls=":",
                    label=f"DNG NoiseProfile, S {tag[0][c]:.2e}")
        ax.set(xscale="log", yscale="log", xlabel="mean level (normalised)",
               title=CHANNELS[c])
        ax.legend(fontsize=7)
    axes[0].set_ylabel("noise variance (normalised$^2$)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def e(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def recovery_table(rows: list[dict]) -> list[str]:
    lines = ["## (a) Recovery of known S and O on textured synthetic mosaics", "",
             f"{rows[0]['size']}^2 samples per channel, seeds {SEEDS}; found: seed 0's "
             "estimate; error: the worst over the seeds.", "",
             "| true S | true O | codes (black / white) | channel | S found | worst S error "
             "| O found | worst O error |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        for c, name in enumerate(CHANNELS):
            lines.append(f"| {row['shot']:.0e} | {row['read']:.0e} | {row['black']} / "
                         f"{row['white']} | {name} | {e(row['shot_found'][0][c])} | "
                         f"{row['shot_error'][c]:.1%} | {e(row['read_found'][0][c])} | "
                         f"{row['read_error'][c]:.1%} |")
    return lines


def character_table(rows: list[dict]) -> list[str]:
    lines = ["## (d) What the noise is like: row noise, spatial correlation, tails", "",
             "In the darkest third of each channel's smooth blocks: the variance of the Haar "
             "details H (horizontal), V (vertical) against D (diagonal), all 1 for white noise "
             "(row noise raises V over H); 4 var D2 / var D, the next scale against the finest "
             "(1 for white noise); the kurtosis of D within narrow level sets (3: Gaussian). "
             "The synthetic row is Poisson-Gaussian noise of the GoPro's level: the reference.",
             "", "| image | channel | levels | H / D | V / D | V / H | 4 D2 / D | kurtosis |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['image']} | {r['channel']} | {r['levels'][0]:.4f} to "
                     f"{r['levels'][1]:.4f} | {r['h_d']:.2f} | {r['v_d']:.2f} | {r['v_h']:.2f} "
                     f"| {r['scale2']:.2f} | {r['kurtosis']:.2f} |")
    return lines + [""]


def test_image_table(image: dict) -> list[str]:
    """(b)'s table of one test image, and whether it passes."""
    lines = [f"### Test image {image['image']} at ISO {image['iso']:g}: real against "
             "generated (its 9 test patches)", "",
             "| channel | real S | generated S | generated / real | real O | generated O "
             "| clean generated S | whole model added: S | its / real | model S | model O "
             "| tag S | tag O |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in image["rows"]:
        lines.append(f"| {r['channel']} | {e(r['real_shot'])} | {e(r['generated_shot'])} "
                     f"| {r['ratio']:.2f} | {e(r['real_read'])} | {e(r['generated_read'])} "
                     f"| {e(r['clean_shot'])} | {e(r['whole_model_shot'])} "
                     f"| {r['whole_model_ratio']:.2f} "
                     f"| {e(r['model_shot'])} | {e(r['model_read'])} "
                     f"| {e(r['tag_shot'])} | {e(r['tag_read'])} |")
    ok = all(abs(r["ratio"] - 1) <= 0.25 for r in image["rows"])
    lines += ["", f"Generated S within 25 % of the real RAW's in every channel: "
              f"{'yes' if ok else 'no'}. The 9 DNGs written with --iso carry ISO "
              f"{', '.join(f'{i:g}' for i in image['written_isos'])} and the NoiseProfile "
              + "; ".join(", ".join(f"({s:.3g}, {o:.3g})" for s, o in p)
                          for p in image["written_profiles"])
              + " (R, G, B): exactly the model's (S, O) at that ISO, G the mean of G1 and "
              f"G2: {'yes' if image['profile_is_model'] else 'NO'}. Plot: noise.png.", ""]
    return lines


def markdown(result: dict) -> str:
    lines = ["# Sensor noise: calibration, real against generated, cost", "",
             "Made by `benchmarks/noise.py` (read its docstring for the protocol):", "",
             *[f"    {c}" for c in result["commands"]], "",
             f"Device: {result['device']} ({result['threads']} torch threads). Units: "
             "normalised RAW, x = (raw - black) / (white - black); variance = S x + O.", "",
             *recovery_table(result["recovery"])]
    lines += ["", "## (b) Each file's own noise (the same estimator, whole mosaic) and its DNG "
              "NoiseProfile", "",
              "| image | camera | split | ISO | exposure (s) | calibrates the model | S (R, G1, "
              "G2, B) | O (R, G1, G2, B) | tag S | tag O |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for f in result["files"]:
        tag = (e(f["tag_shot"][0]), e(f["tag_read"][0])) if f["tag_shot"] else ("-", "-")
        lines.append(f"| {f['image']} | {f['camera']} | {f['split']} | {e(f['iso'])} | "
                     f"{e(f['exposure_time'])} | {'yes' if f['calibrates'] else 'no'} | "
                     f"{', '.join(e(v) for v in f['shot'])} | "
                     f"{', '.join(e(v) for v in f['read'])} | {tag[0]} | {tag[1]} |")
    model = result["model"]
    lines += ["", f"The noise model the checkpoint stores with its camera ({result['camera']}): "
              f"`{json.dumps(model)}`; calibrated again from this prepared dataset's training "
              f"images of that camera (Camera.from_training_images, as training does): "
              f"{'the same' if result['model_reproduced'] else 'DIFFERENT'}.", ""]
    for image in result["test_images"]:
        lines += test_image_table(image)
    cost = result["cost"]
    lines += ["## (c) Cost of adding noise against a 1-step generation", "",
              "Side by side in one process, under the same load: a 1-step generation "
              "(Generator.generate_from_guides) and the noise convert's writer threads add to "
              "its result (Generator.recorded: measuring what the clean image already has with "
              "the estimator, Poisson and Gaussian draws, quantisation; on the CPU). The "
              "machine's load average (1 min) was "
              f"{cost['load'][0]:.1f} before and {cost['load'][1]:.1f} after, on "
              f"{cost['cores']} cores.", "",
              "| what | packed size | 1-step generation (s) | noise (s) | noise / generation |",
              "| --- | --- | --- | --- | --- |",
              f"| one test patch (noise: median of 9) | {cost['patch']['size']} | "
              f"{cost['patch']['generate_s']:.2f} | {cost['patch']['noise_s']:.3f} | "
              f"{cost['patch']['share']:.2%} |",
              f"| whole test image | {cost['whole']['size']} | {cost['whole']['generate_s']:.1f} "
              f"| {cost['whole']['noise_s']:.2f} | {cost['whole']['share']:.2%} |", "",
              "In `rawdiffusion convert` the noise is drawn by the writer threads while the next "
              "image is generated.", ""]
    return "\n".join(lines + character_table(result["character"]))


def compare(image: dict, model, camera: str, args, result: dict) -> None:
    """(b) and (c) for one test image, into `result`; the plot and the cost for the first."""
    from rawdiffusion.noise import dng_noise_profile, profile_channels
    from rawdiffusion.io import read_raw

    profile = read_raw(image["source"]).noise_profile
    tag = profile_channels(profile) if profile else None
    measured = real_and_generated(image, model, args, result["commands"])
    rows = comparison_rows(measured["found"], model, image["iso"], tag)
    result["test_images"].append({
        "image": image["image"], "iso": image["iso"], "rows": rows,
        "written_isos": sorted(measured["isos"]),
        "written_profiles": [list(p) for p in measured["profiles"]],
        "profile_is_model": measured["profiles"] == {dng_noise_profile(*model.at(image["iso"]))}})
    if len(result["test_images"]) > 1:
        return
    plot(args.out / "noise.png", measured["found"], model, image["iso"], tag,
         f"{image['image']} ({camera}), ISO {image['iso']:g}: noise variance of the real RAW "
         "and of `rawdiffusion convert --iso`'s DNGs, same estimator, same 9 patches")
    load_before = os.getloadavg()[0]
    result["cost"] = {**cost(image, measured["clean"], args),
                      "load": [load_before, os.getloadavg()[0]], "cores": os.cpu_count()}


def main() -> None:
    import torch

    from rawdiffusion.checkpoint import checkpoint_camera, load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/noise-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--checkpoint", type=Path,
                        default=REPO / "rawdiffusion" / "assets" / "gopro_small.pt")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    commands = ["python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:])]
    rows_a = recovery()
    data = prepare(args.work, commands)
    camera = checkpoint_camera(load_checkpoint(args.checkpoint))
    model = camera.noise
    if model is None:
        raise SystemExit(f"{args.checkpoint}: no noise model (rawdiffusion export --calibrate)")
    images = json.loads((data / "dataset.json").read_text())["images"]
    again = camera.with_noise_of({i: e for i, e in images.items() if e["split"] == "train"})
    result = {"commands": commands, "device": args.device, "threads": torch.get_num_threads(),
              "recovery": rows_a, "files": files_table(data, camera), "camera": camera.name,
              "model": model.to_dict(), "model_reproduced": again.noise == model,
              "character": characters(data), "test_images": []}
    for image in test_images(data):
        if image["iso"] is None:
            print(f"{image['image']}: no ISO in its metadata, left out")
            continue
        compare(image, model, camera.name, args, result)
    (args.out / "noise.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (args.out / "noise.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
