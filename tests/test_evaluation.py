"""sample.py and `rawdiffusion convert/export`: metrics, predictions, resumption, the seed's
Cityscapes-RAW and BDD100K-RAW commands verbatim, clear errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from omegaconf import OmegaConf
from PIL import Image

from conftest import synthetic_raw
from fake_trees import bdd_tree, cityscapes_tree
from rawdiffusion import config, evaluation
from rawdiffusion.camera import Camera
from rawdiffusion.checkpoint import load_checkpoint, save_checkpoint
from rawdiffusion.cli import main as cli
from rawdiffusion.datasets.bdd import prepare_bdd
from rawdiffusion.datasets.cityscapes import prepare_cityscapes
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.paired import prepare_folder
from rawdiffusion.errors import SetupError
from rawdiffusion.loading import shipped_checkpoint
from rawdiffusion.evaluation import samples_dir
from rawdiffusion.io import CFA_ORDERS, read_raw, write_dng
from rawdiffusion.model import build_model

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A paired dataset (4 synthetic DNGs in 2x2 grids; 1 test image = 4 samples of 32x64) and a
    small-preset checkpoint for it whose zero-initialised output layer is randomised."""
    root = tmp_path_factory.mktemp("eval")
    for i in range(4):
        write_dng(root / "src" / f"img{i}.dng", synthetic_raw(CFA_ORDERS[i], 128, 256, seed=i))
    prepare_folder(root / "src", root / "tiny", name="tiny", test_fraction=0.25, grid=2)
    torch.manual_seed(0)
    net = build_model("small")
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    camera = Camera.from_images(PreparedDataset(root / "tiny").images).to_dict()
    save_checkpoint(root / "ckpt.pt", {"step": 1, "config": {}, "model_config": net.config,
                                       "model": net.state_dict(), "ema": None,
                                       "camera": camera})
    return root


def sample(*overrides, cwd, env=ENV):
    return subprocess.run([sys.executable, str(REPO / "sample.py"), *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_sample_py_computes_metrics_writes_predictions_and_resumes(data, tmp_path):
    args = ["dataset=folder", f"dataset.root={data / 'tiny'}", f"checkpoint={data / 'ckpt.pt'}",
            "save_pred=true", "diffusion_val.timestep_respacing=ddim6", f"out={tmp_path / 's'}"]
    proc = sample(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "s"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    test_ids = (data / "tiny" / "test.txt").read_text().split()
    assert [r["id"] for r in rows] == test_ids
    # Under the samples' bar, one of the denoising steps, named after the batch's first sample.
    assert f"  {test_ids[0]}:" in proc.stderr and "tile-step/s" in proc.stderr
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["images"] == 4 and summary["steps"] == 6
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), rel=1e-5)
    assert 0 < summary["ssim"] < 1
    # predictions: each in its own image's Bayer order and levels
    image = PreparedDataset(data / "tiny").load(test_ids[0]).image
    raw = read_raw(out / "pred" / f"{test_ids[0]}.dng")
    assert raw.cfa == image["cfa"] and raw.mosaic.shape == (64, 128)
    assert (out / "pred" / f"{test_ids[0]}.png").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "pred").iterdir()}
    again = sample(*args, cwd=tmp_path)  # a rerun finds everything done
    assert again.returncode == 0 and "0 to generate" in again.stderr + again.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "pred").iterdir()} == stamps


def test_a_rerun_with_other_steps_or_sampler_redoes_the_samples(data, tmp_path):
    from rawdiffusion.loading import load
    from rawdiffusion.evaluation import evaluate
    from rawdiffusion.processes import read_records

    dataset, out = PreparedDataset(data / "tiny"), tmp_path / "s"
    first = evaluate(dataset, "test", load(data / "ckpt.pt", steps=2), out, seed=0)
    assert (first["steps"], first["sampler"], first["images"]) == (2, "ddim", 4)
    for steps, sampler in ((3, "ddim"), (3, "unipc")):
        summary = evaluate(dataset, "test", load(data / "ckpt.pt", steps=steps,
                                                 sampler=sampler), out, seed=0)
        assert (summary["steps"], summary["sampler"], summary["images"]) == (steps, sampler, 4)
        records = read_records(out, "results", "id").values()
        assert {(r["steps"], r["sampler"]) for r in records} == {(steps, sampler)}
        assert summary["psnr"] != first["psnr"]


def test_sample_py_refuses_negative_reader_processes(data, tmp_path):
    proc = sample("dataset=folder", f"dataset.root={data / 'tiny'}",
                  f"checkpoint={data / 'ckpt.pt'}", "system.workers=-1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: system.workers=-1: must be >= 0 (0: "
                                                    "read samples in the main process)")


def test_same_seed_same_metrics(data, tmp_path):
    runs = []
    for name in ("a", "b"):
        args = ["dataset=folder", f"dataset.root={data / 'tiny'}",
                f"checkpoint={data / 'ckpt.pt'}", "diffusion_val.timestep_respacing=ddim6",
                f"out={tmp_path / name}"]
        assert sample(*args, cwd=tmp_path).returncode == 0
        runs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("target", ["cityscapes_h416", "bdd_h416"])
def test_seed_generation_commands_verbatim(data, tmp_path, target):
    data_root = tmp_path / "data"
    if target == "cityscapes_h416":
        cityscapes_tree(tmp_path / "cityscapes")
        prepare_cityscapes(tmp_path / "cityscapes", data_root / target, splits=["val"])
        extra = []
    else:
        bdd_tree(tmp_path / "bdd100k")
        prepare_bdd(tmp_path / "bdd100k", data_root / target, splits=["val"])
        extra = ["diffusion_val.timestep_respacing=ddim6"]
    # where `python train.py dataset=nod_nikon_h416_subsample dataset.train.max_items=100`
    # leaves its checkpoint
    run = tmp_path / "runs" / "nod_nikon_h416_subsample-n100-s0"
    run.mkdir(parents=True)
    state = load_checkpoint(data / "ckpt.pt")
    state.pop("format")
    save_checkpoint(run / "checkpoint.pt", state)
    proc = sample("dataset/train=nod_nikon_h416_subsample", "dataset.train.max_items=100",
                  f"dataset/val={target}", "save_pred=true", "rgb_only=true", *extra,
                  cwd=tmp_path, env={**ENV, "RAWDIFFUSION_DATA": str(data_root)})
    assert proc.returncode == 0, proc.stderr
    ids = (data_root / target / "val.txt").read_text().split()
    respacing = "ddim6" if extra else "ddim24"
    pred = run / "samples" / f"{target}-val-{respacing}-s0" / "pred"
    size = (416, 832) if target == "cityscapes_h416" else (416, 736)
    for i in ids:
        raw = read_raw(pred / f"{i}.dng")
        assert raw.mosaic.shape == (2 * size[0], 2 * size[1])
        assert raw.cfa == state["camera"]["cfa"]


def test_sample_without_a_trained_run_says_what_to_do(data, tmp_path):
    proc = sample("dataset=folder", f"dataset.root={data / 'tiny'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no checkpoint at runs/tiny-s0/checkpoint.pt: train this configuration first" \
        in proc.stderr
    assert "Traceback" not in proc.stderr


def test_convert_cli_and_export(data, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png", "c.tif"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photos / name)
    small = tmp_path / "small.pt"
    assert cli(["export", str(data / "ckpt.pt"), "--out", str(small)]) == 0
    exported = load_checkpoint(small)
    assert "optimizer" not in exported
    assert all(v.dtype == torch.float16 for v in exported["model"].values()
               if v.is_floating_point())
    assert cli(["convert", str(photos), "--checkpoint", str(small), "--out",
                str(tmp_path / "out"), "--steps", "2", "--figure"]) == 0
    for stem in "abc":
        assert read_raw(tmp_path / "out" / f"{stem}.dng").mosaic.shape == (48, 64)
        assert (tmp_path / "out" / f"{stem}_compare.png").is_file()
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 3
    capsys.readouterr()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert cli(["convert", str(photos / "a.jpg"), "--checkpoint", str(tmp_path / "junk.pt"),
                "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tmp_path / 'junk.pt'}: not a readable checkpoint: not a PyTorch "
                   "zip archive (truncated, or another kind of file)")
    assert "\n" not in err
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())


def test_sample_py_noise_writes_noisy_predictions_and_leaves_the_metrics_clean(data, tmp_path):
    """noise.iso=draw: each prediction at an ISO drawn from the camera's (seeded per sample),
    the DNG and the record saying which; the metrics are those of the clean run."""
    state = load_checkpoint(data / "ckpt.pt")
    noise = {"iso": 100.0, "shot": [2e-4] * 4, "read_gained": [1e-6] * 4,
             "read_fixed": [0.0] * 4, "isos": [100.0, 800.0]}
    save_checkpoint(tmp_path / "noisy.pt", {**state, "camera": {**state["camera"],
                                                                "noise": noise}})
    args = ["dataset=folder", f"dataset.root={data / 'tiny'}",
            f"checkpoint={tmp_path / 'noisy.pt'}", "save_pred=true",
            "diffusion_val.timestep_respacing=ddim2"]
    assert sample(*args, f"out={tmp_path / 'clean'}", cwd=tmp_path).returncode == 0
    proc = sample(*args, f"out={tmp_path / 'noisy'}", "noise.iso=draw", "noise.exposure=-1",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    clean, noisy = tmp_path / "clean", tmp_path / "noisy"
    assert (clean / "metrics.csv").read_text() == (noisy / "metrics.csv").read_text()
    records = {r["id"]: r for r in map(json.loads, (noisy / "results.part0.jsonl").read_text()
                                       .splitlines())}
    assert {r["iso"] for r in records.values()} <= {100.0, 800.0}
    assert {r["exposure"] for r in records.values()} == {-1.0}
    for sample_id, record in records.items():
        raw = read_raw(noisy / "pred" / f"{sample_id}.dng")
        assert raw.iso == record["iso"] and raw.noise_profile is not None
        plain = read_raw(clean / "pred" / f"{sample_id}.dng")
        assert plain.iso is None and raw.mosaic.mean() < plain.mosaic.mean()  # one EV darker
    # noise without predictions changes nothing: said in one line
    proc = sample(*args, f"out={tmp_path / 'none'}", "save_pred=false", "noise.iso=400",
                  cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: noise.iso, noise.exposure and noise.white_balance shape the written predictions "
        "only (the metrics are the clean output's): add save_pred=true")
    # a checkpoint without a noise model: one line naming the setting
    proc = sample(*args[:2], f"checkpoint={data / 'ckpt.pt'}", *args[3:], "noise.iso=400",
                  f"out={tmp_path / 'old'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: noise.iso=400: {data / 'ckpt.pt'} holds no noise model of its camera")


def test_sample_py_white_balance_relights_the_predictions_and_leaves_the_metrics_clean(
        data, tmp_path):
    """noise.white_balance=draw: each prediction relit to a white balance drawn from the
    camera's training images' (seeded per sample), x_c wb_c / wb'_c up to the codes' rounding,
    its DNG and record saying which; the metrics are those of the clean run."""
    state = load_checkpoint(data / "ckpt.pt")
    wbs = [[1.8, 1.0, 1.3], [2.4, 1.0, 1.7]]
    save_checkpoint(tmp_path / "wb.pt", {**state, "camera": {**state["camera"], "wbs": wbs,
                                                             "wb": [2.0, 1.0, 1.5]}})
    args = ["dataset=folder", f"dataset.root={data / 'tiny'}", f"checkpoint={tmp_path / 'wb.pt'}",
            "save_pred=true", "diffusion_val.timestep_respacing=ddim2"]
    assert sample(*args, f"out={tmp_path / 'clean'}", cwd=tmp_path).returncode == 0
    proc = sample(*args, f"out={tmp_path / 'relit'}", "noise.white_balance=draw", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    clean, relit = tmp_path / "clean", tmp_path / "relit"
    assert (clean / "metrics.csv").read_text() == (relit / "metrics.csv").read_text()
    records = [json.loads(line) for line in (relit / "results.part0.jsonl").read_text()
               .splitlines()]
    assert {tuple(r["white_balance"]) for r in records} <= {tuple(wb) for wb in wbs}
    for record in records:
        raw, plain = (read_raw(d / "pred" / f"{record['id']}.dng") for d in (relit, clean))
        assert raw.wb == pytest.approx(record["white_balance"], rel=1e-5)
        r, _, b = record["white_balance"]
        gains = np.array([2.0 / r, 1.0, 1.0, 1.5 / b]).reshape(4, 1, 1)
        code = 1 / (raw.white_level - max(raw.black_level))  # one code, normalised
        # each is rounded to whole codes: half a code, and half a code of the clean one times
        # the gain (at most 1.5 / 1.3), apart; clipped at white
        expected = np.minimum(plain.packed * gains, 1)
        assert np.abs(raw.packed - expected).max() <= (0.5 + 0.5 * 1.5 / 1.3) * code
        assert np.abs(raw.packed - plain.packed).max() > 20 * code  # relit indeed


def test_samples_go_beside_a_run_checkpoint_and_outside_the_package_for_the_shipped_one():
    cfg = OmegaConf.create({"general": {"out": "runs", "seed": 3},
                            "dataset": {"val": {"root": "/data/gopro", "split": "test"}},
                            "diffusion_val": {"timestep_respacing": "ddim6"}, "sampler": "ddim",
                            "noise": {"iso": None, "exposure": 0.0}})
    assert samples_dir(cfg, Path("runs/gopro-s3/checkpoint.pt")) == \
        Path("runs/gopro-s3/samples/gopro-test-ddim6-s3")
    assert samples_dir(OmegaConf.merge(cfg, {"sampler": "unipc"}),
                       Path("runs/gopro-s3/checkpoint.pt")) == \
        Path("runs/gopro-s3/samples/gopro-test-ddim6-unipc-s3")
    # The installed package may be read-only, and must not collect outputs.
    assert samples_dir(cfg, shipped_checkpoint()) == \
        Path("runs/gopro_small/samples/gopro-test-ddim6-s3")
    # Noisy predictions go beside the clean ones, not over them.
    for noise, name in (({"iso": 1600}, "-iso1600"), ({"iso": "draw"}, "-isodraw"),
                        ({"iso": 400, "exposure": -2.5}, "-iso400-ev-2.5"),
                        ({"white_balance": [2.1, 1, 1.6]}, "-wb2.1,1,1.6"),
                        ({"iso": "draw", "white_balance": "draw"}, "-isodraw-wbdraw"),
                        ({"exposure": "draw"}, "-evdraw")):
        assert samples_dir(OmegaConf.merge(cfg, {"noise": noise}),
                           Path("runs/gopro-s3/checkpoint.pt")) == \
            Path(f"runs/gopro-s3/samples/gopro-test-ddim6-s3{name}")


def test_sample_py_system_bf16_reaches_the_generator(data, tmp_path, monkeypatch):
    """sample.py system.bf16=true did nothing: it is the generator's bf16 autocast now."""
    asked = []

    def load(*args, **kwargs):
        asked.append(kwargs["dtype"] == torch.bfloat16)
        raise SetupError("loaded")  # the rest is the generator's

    monkeypatch.setattr(evaluation, "load", load)
    config.register()
    for setting in ([], ["system.bf16=true"], ["system.bf16=false"]):
        with initialize(version_base="1.3", config_path=None):
            cfg = compose("sample", ["dataset=folder", f"dataset.root={data / 'tiny'}",
                                     f"checkpoint={data / 'ckpt.pt'}", f"out={tmp_path}",
                                     *setting])
        with pytest.raises(SetupError, match="loaded"):
            evaluation.main(cfg)
    assert asked == [False, True, False]  # off by default, as convert --bf16


def test_a_damaged_prediction_is_made_again(data, tmp_path):
    """sample.py's results record each prediction's size and SHA-256, as convert's manifest:
    a rerun redoes the sample whose file was cut, and only that one."""
    from rawdiffusion.evaluation import evaluate
    from rawdiffusion.loading import load

    dataset, out = PreparedDataset(data / "tiny"), tmp_path / "s"
    evaluate(dataset, "test", load(data / "ckpt.pt", steps=2), out, seed=0, save_pred=True,
             fmt="npy")
    first = {p.name: p.read_bytes() for p in (out / "pred").iterdir()}
    part = out / "results.part0.jsonl"
    assert len(part.read_text().splitlines()) == 4
    cut = sorted(first)[0]
    (out / "pred" / cut).write_bytes(first[cut][:100])
    evaluate(dataset, "test", load(data / "ckpt.pt", steps=2), out, seed=0, save_pred=True,
             fmt="npy")
    lines = part.read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[-1])["id"] == Path(cut).stem
    assert {p.name: p.read_bytes() for p in (out / "pred").iterdir()} == first
