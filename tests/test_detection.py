"""RAW object detection: the f-mixing of real and generated samples, batches, normalisation
statistics, generated RAW in every format, the schedule, and end to end on synthetic scenes:
prepare NOD-h416 and Cityscapes, generate Cityscapes-RAW with a tiny diffusion model, train the
detector in the paper's three settings of f and the RGB baseline, resume exactly, evaluate.

The detector runs at 96 x 160 (detector.min_size / max_size) so that a CPU iteration takes a
second or two; everything else is the paper's configuration.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detection_scenes import cityscapes_scenes, nod_scenes
from rawdiffusion.camera import Camera
from rawdiffusion.cli import main as cli
from rawdiffusion.generation import write_prediction
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.detection import data as ddata
from rawdiffusion.detection.evaluation import load_detector
from rawdiffusion.detection.model import build_detector
from rawdiffusion.detection.training import learning_rate
from rawdiffusion.errors import SetupError
from rawdiffusion.io import write_npy

REPO = Path(__file__).resolve().parents[1]


def item(i: int, kind="pred", width=64, height=48, path=None) -> ddata.Item:
    boxes = np.array([[2, 3, 20, 30]], dtype=np.float32)
    return ddata.Item(f"i{i}", Path(path or f"/nowhere/i{i}.npy"), kind, width, height, boxes,
                      np.array([1]))


STATS = ddata.ChannelStats((0.0,) * 4, (1.0,) * 4)


# ----------------------------------------------------------------------------- mixing

def real_draws(mixture: ddata.Mixture, epochs: int) -> list[bool]:
    return [mixture.item(d)[2] for d in range(epochs * len(mixture))]


def test_the_share_of_real_draws_is_f_for_a_seed():
    real, generated = [item(i) for i in range(100)], [item(i) for i in range(100, 500)]
    draws = 200  # epochs of 100: 20,000 draws
    for f in (0.05, 0.5):
        mixture = ddata.Mixture(real, generated, f, STATS, seed=3, flip=0.5)
        share = np.mean(real_draws(mixture, draws))
        # binomial standard deviation sqrt(f (1 - f) / 20000) <= 0.0036: 4 of them
        assert abs(share - f) < 4 * np.sqrt(f * (1 - f) / 20_000), (f, share)
        again = ddata.Mixture(real, generated, f, STATS, seed=3, flip=0.5)
        assert [mixture.item(d)[0].id for d in range(300)] == \
            [again.item(d)[0].id for d in range(300)]
        other = ddata.Mixture(real, generated, f, STATS, seed=4, flip=0.5)
        assert [mixture.item(d)[0].id for d in range(300)] != \
            [other.item(d)[0].id for d in range(300)]
    zero_shot = ddata.Mixture(real, generated, 0.0, STATS, seed=3, flip=0.5)
    assert not any(real_draws(zero_shot, 3)) and len(zero_shot) == 100
    flips = [ddata.Mixture(real, generated, 0.5, STATS, 3, 0.5).item(d)[1] for d in range(4000)]
    assert abs(np.mean(flips) - 0.5) < 0.04


def test_real_only_visits_every_real_image_once_per_epoch_in_a_new_order():
    real = [item(i) for i in range(10)]
    mixture = ddata.Mixture(real, [], 1.0, STATS, seed=0, flip=0.0)
    epochs = [[mixture.item(e * 10 + i)[0].id for i in range(10)] for e in range(3)]
    assert all(sorted(e) == sorted(r.id for r in real) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_mixing_generated_without_any_is_refused_with_what_to_add():
    with pytest.raises(SetupError, match="data/generated=cityscapes"):
        ddata.Mixture([item(0)], [], 0.05, STATS, seed=0, flip=0.5)


def test_batches_hold_one_orientation_and_every_draw_once():
    items = [item(i, width=64, height=48) if i % 3 else item(i, width=48, height=64)
             for i in range(30)]
    mixture = ddata.Mixture(items, [], 1.0, STATS, seed=1, flip=0.0)
    batches = ddata.epoch_batches(mixture, epoch=1, batch_size=4)
    assert sorted(d for b in batches for d in b) == list(range(30, 60))
    full = [b for b in batches if len(b) == 4]
    # 20 landscape and 10 portrait draws: 5 + 2 full batches, then the 2 portrait left over
    assert len(full) == 7 and len(batches) == 8
    for b in full:
        assert len({mixture.item(d)[0].width >= mixture.item(d)[0].height for d in b}) == 1
    # two processes take alternate draws of each batch; a last batch smaller than the number
    # of processes is dropped
    assert len(ddata.epoch_batches(mixture, 1, 4, world=4)) == 7
    sampler = list(ddata.Batches(mixture, 4, epochs=2, start=9, rank=1, world=2))
    assert sampler[0] == ddata.epoch_batches(mixture, 1, 4)[1][1::2]
    assert len(sampler) == 16 - 9


# ----------------------------------------------------------------------------- images, statistics

def test_statistics_of_a_known_mixture(tmp_path):
    """Source A: every pixel of channel c is a_c; source B: b_c. Drawn with probabilities f and
    1 - f, channel c has mean f a_c + (1 - f) b_c and standard deviation sqrt(f (1 - f)) |a_c - b_c|."""
    a, b = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.2, 0.1, 0.9])
    sources = []
    for name, value in (("a", a), ("b", b)):
        items = []
        for i in range(3):
            path = tmp_path / f"{name}{i}.npy"
            write_npy(path, np.broadcast_to(value[:, None, None], (4, 6, 8)))
            items.append(item(i, path=path, width=8, height=6))
        sources.append(items)
    stats = ddata.channel_statistics([(sources[0], 0.25), (sources[1], 0.75)], None, seed=0)
    expected = 0.25 * a + 0.75 * b
    np.testing.assert_allclose(stats.mean, expected, atol=2e-5)
    spread = np.sqrt(0.25 * 0.75) * np.abs(a - b)
    np.testing.assert_allclose(stats.std, np.where(spread > 0, spread, 1.0), atol=2e-5)
    # probability 0: the source is not read (a missing file would fail)
    only_a = ddata.channel_statistics([(sources[0], 1.0), ([item(9)], 0.0)], 2, seed=0)
    np.testing.assert_allclose(only_a.mean, a, atol=2e-5)


def test_to_detector_normalises_each_channel_then_averages_the_greens():
    x = np.stack([np.full((2, 3), v, np.float32) for v in (0.2, 0.4, 0.6, 0.8)])
    stats = ddata.ChannelStats((0.1, 0.2, 0.4, 0.4), (0.1, 0.2, 0.1, 0.2))
    y = ddata.to_detector(x, stats)
    # R (0.2-0.1)/0.1 = 1; G1 (0.4-0.2)/0.2 = 1, G2 (0.6-0.4)/0.1 = 2 -> 1.5; B (0.8-0.4)/0.2 = 2
    assert y.shape == (3, 2, 3)
    torch.testing.assert_close(y[:, 0, 0], torch.tensor([1.0, 1.5, 2.0]))
    with pytest.raises(SetupError, match="data.input differs"):
        ddata.to_detector(x[:3], stats)


def test_generated_raw_reads_alike_from_dng_hdf5_and_npy(tmp_path):
    """sample.py's pred/ in each format: the same packed RAW up to the 16-bit rounding (npy,
    hdf5) and the camera's levels (DNG)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 12, 16)).astype(np.float32)
    camera = Camera.from_images({"i": {"make": "Testmaker", "model": "Synthetic 1", "cfa": "GRBG",
                              "black_level": [64.0, 64.0, 64.0, 64.0], "white_level": 4095.0,
                              "samples": ["i"]}})
    loaded = {}
    for fmt in ("dng", "hdf5", "npy"):
        path = write_prediction(tmp_path / fmt / "img", x, camera, fmt)[0]
        loaded[fmt] = ddata.load_image(item(0, path=path, width=16, height=12))
    np.testing.assert_allclose(loaded["npy"], x, atol=1 / 65535)
    np.testing.assert_array_equal(loaded["hdf5"], loaded["npy"])
    np.testing.assert_allclose(loaded["dng"], x, atol=0.5 / (4095 - 64) + 1e-6)


def test_a_broken_generated_file_is_named(tmp_path):
    path = tmp_path / "pred" / "x.npy"
    path.parent.mkdir()
    path.write_bytes(b"not numpy")
    with pytest.raises(Exception, match="x.npy"):
        ddata.load_image(item(0, path=path))


def test_a_bad_training_image_is_named_and_replaced_by_another_of_its_source(tmp_path, caplog):
    good = []
    for i in range(3):
        write_npy(tmp_path / f"g{i}.npy", np.full((4, 48, 64), 0.25 * i, np.float32))
        good.append(item(i, path=tmp_path / f"g{i}.npy"))
    (tmp_path / "bad.npy").write_bytes(b"cut")
    bad = item(3, path=tmp_path / "bad.npy")
    mixture = ddata.Mixture([bad], good + [bad], 0.0, STATS, seed=0, flip=0.0)
    draw = next(d for d in range(100) if mixture.item(d)[0] is bad)
    x, target, real = mixture[draw]
    assert x.shape == (3, 48, 64) and real == 0
    assert "bad.npy" in caplog.text and "other images in its place" in caplog.text
    assert caplog.text.count("bad.npy") == 1  # named once, however often it is drawn
    assert torch.equal(x, mixture[draw][0])  # the same replacement every time
    only_bad = ddata.Mixture([bad], [bad], 0.0, STATS, seed=0, flip=0.0)
    with pytest.raises(SetupError, match="bad.npy.*nor could 8 other images"):
        only_bad[0]


def test_learning_rate_warms_up_then_steps_down_at_the_milestones():
    from omegaconf import OmegaConf

    o = OmegaConf.create({"lr": 0.02, "warmup_iters": 500, "warmup_factor": 0.001,
                          "milestones": [32, 44], "gamma": 0.1})
    assert learning_rate(o, 0, 0) == pytest.approx(0.02 * 0.001)
    assert learning_rate(o, 250, 0) == pytest.approx(0.02 * (0.001 + 0.999 * 0.5))
    assert learning_rate(o, 500, 1) == pytest.approx(0.02)
    assert learning_rate(o, 10_000, 31) == pytest.approx(0.02)
    assert learning_rate(o, 10_000, 32) == pytest.approx(0.002)
    assert learning_rate(o, 10_000, 44) == pytest.approx(0.0002)


# ----------------------------------------------------------------------------- backbone

def test_a_local_resnet50_state_dict_initialises_the_backbone_frozen(tmp_path):
    from torchvision.models import resnet50
    from torchvision.ops import FrozenBatchNorm2d

    torch.manual_seed(0)
    weights = resnet50().state_dict()
    torch.save(weights, tmp_path / "resnet50.pth")
    detector = build_detector(96, 160, str(tmp_path / "resnet50.pth"))
    body = detector.backbone.body
    torch.testing.assert_close(body.layer3[1].conv2.weight, weights["layer3.1.conv2.weight"])
    torch.testing.assert_close(body.bn1.running_var, weights["bn1.running_var"])
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    assert all(p.requires_grad for p in body.layer1.parameters())  # all stages trainable
    assert isinstance(build_detector(96, 160).backbone.body.bn1, torch.nn.BatchNorm2d)


def test_a_backbone_file_that_is_not_resnet50_is_named(tmp_path):
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(SetupError, match="other.pth: not a ResNet-50"):
        build_detector(96, 160, str(tmp_path / "other.pth"))
    with pytest.raises(SetupError, match="junk.pth: not a readable state dict"):
        build_detector(96, 160, str(tmp_path / "junk.pth"))
    with pytest.raises(SetupError, match="no such file"):
        build_detector(96, 160, str(tmp_path / "none.pth"))
    with pytest.raises(SetupError, match="a folder, not a file"):
        build_detector(96, 160, str(tmp_path))
    from torchvision.models import resnet50

    weights = resnet50().state_dict()
    weights["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(weights, tmp_path / "nan.pth")
    with pytest.raises(SetupError, match="nan.pth: tensor layer2.0.conv1.weight holds values "
                                         "that are not finite"):
        build_detector(96, 160, str(tmp_path / "nan.pth"))


# ----------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Synthetic NOD (6 train, 3 test) and Cityscapes (3 train) scenes, prepared, and
    Cityscapes-RAW generated in one DDIM step by a small diffusion model trained for 2 steps
    on the NOD images (as the README's pipeline, with tiny settings)."""
    root = tmp_path_factory.mktemp("detection")
    nod_scenes(root / "NOD", "nikon", train=6, test=3)
    cityscapes_scenes(root / "cityscapes", train=3)
    data = root / "data"
    assert cli(["prepare", "nod", "--root", str(root / "NOD"), "--camera", "nikon", "--h416",
                "--out", str(data / "nod_nikon_h416")]) == 0
    assert cli(["prepare", "cityscapes", "--root", str(root / "cityscapes"), "--out",
                str(data / "cityscapes_h416")]) == 0
    cli(["train", "dataset=folder", f"dataset.root={data / 'nod_nikon_h416'}",
         f"general.out={root / 'runs'}", "general.run=tiny", "model.preset=small",
         "model.prior=none", "optim.crop=32", "optim.batch_size=2", "optim.max_steps=2",
         "log.val_every=1000", "log.preview_every=1000", "system.workers=0"])
    cli(["sample", "dataset=folder", f"dataset.root={data / 'nod_nikon_h416'}",
         f"checkpoint={root / 'runs' / 'tiny' / 'checkpoint.pt'}",
         f"dataset.val.root={data / 'cityscapes_h416'}", "dataset.val.split=train",
         "save_pred=true", "rgb_only=true", "pred_format=npy",
         "diffusion_val.timestep_respacing=ddim1", f"out={root / 'generated'}",
         "system.workers=0"])
    assert len(list((root / "generated" / "pred").glob("*.npy"))) == 3
    return root


def detect(world: Path, command: str, *overrides) -> int:
    common = [f"general.data_root={world / 'data'}", f"general.out={world / 'detect'}",
              "data.real.max_items=4", "detector.min_size=96", "detector.max_size=160",
              "optim.epochs=1", "optim.batch_size=2", "optim.warmup_iters=1",
              "optim.milestones=[1]", "system.workers=0", "log.every=1",
              "log.preview_images=2"]
    try:
        return cli(["detect", command, *common, *overrides])
    except SystemExit as e:  # Hydra's own errors, and ours from inside its task
        return e.code



def generated(world: Path, f: float) -> list[str]:
    return ["data/generated=cityscapes", f"data.generated.pred={world / 'generated'}",
            f"data.real_fraction={f}"]


@pytest.fixture(scope="module")
def real_run(world) -> Path:
    """The real-only run (trained here unless an earlier test did: a rerun of a trained run
    only says so)."""
    assert detect(world, "train") == 0
    return world / "detect" / "nod_nikon_h416-n4-s0"


def stats_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("setting, run_name, real_share", [
    ("real", "nod_nikon_h416-n4-s0", 1.0),
    ("mix", "nod_nikon_h416-n4-cityscapes_h416-f0.05-s0", None),
    ("zero-shot", "nod_nikon_h416-n4-cityscapes_h416-f0-s0", 0.0),
    ("rgb", "nod_nikon_h416-n4-rgb-s0", 1.0),
])
def test_each_setting_trains_validates_and_evaluates(world, setting, run_name, real_share):
    overrides = {"real": [], "mix": generated(world, 0.05), "zero-shot": generated(world, 0.0),
                 "rgb": ["data.input=rgb"]}[setting]
    assert detect(world, "train", *overrides) == 0
    run = world / "detect" / run_name
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1 and checkpoint["iteration"] == 2  # 4 images, batches of 2
    assert len(checkpoint["stats"]["mean"]) == (3 if setting == "rgb" else 4)
    assert checkpoint["config"]["data"]["real_fraction"] == {"mix": 0.05, "zero-shot": 0.0}.get(
        setting, 1.0)
    lines = stats_lines(run)
    shares = [r["train/real_share"] for r in lines if "train/real_share" in r]
    assert len(shares) == 2 and all(np.isfinite(r.get("train/loss", 0)) for r in lines)
    if real_share is not None:
        assert shares == [real_share] * 2
    val = [r for r in lines if "val/AP" in r]
    assert len(val) == 1 and 0 <= val[0]["val/AP"] <= 1
    assert Image.open(run / "previews" / "001.png").size == (640, 2 * 416)
    assert (run / "tb").is_dir() and (run / "config.yaml").is_file()
    assert "starts from random weights" in (run / "train.log").read_text()

    assert detect(world, "eval", *overrides) == 0
    out = run / "eval" / "nod_nikon_h416-test"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["per_class"]) == {"person", "bicycle", "car"}
    assert summary["images"] == 3 and 0 <= summary["AP"] <= 1
    assert summary["AP"] == pytest.approx(val[0]["val/AP"])  # the same weights, the same AP
    detections = json.loads((out / "detections.json").read_text())
    assert all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in detections)
    assert Image.open(out / "pr_curves.png").size[0] > 600
    assert (out / "previews.png").is_file()


def test_stopping_and_rerunning_gives_the_uninterrupted_weights(world):
    """1 epoch, then a rerun with 2, against 2 in one go: the same weights and momenta."""
    mix = generated(world, 0.5)
    assert detect(world, "train", *mix, "optim.epochs=2", "general.run=whole") == 0
    assert detect(world, "train", *mix, "optim.epochs=1", "general.run=parts") == 0
    assert detect(world, "train", *mix, "optim.epochs=2", "general.run=parts") == 0
    a, b = (torch.load(world / "detect" / r / "checkpoint.pt", weights_only=True)
            for r in ("whole", "parts"))
    assert a["iteration"] == b["iteration"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    for k, state in a["optimizer"]["state"].items():
        torch.testing.assert_close(state["momentum_buffer"],
                                   b["optimizer"]["state"][k]["momentum_buffer"], rtol=0, atol=0)
    assert a["stats"] == b["stats"]
    # another recipe in the same run folder is refused, naming what changed
    assert detect(world, "train", *mix, "optim.epochs=2", "general.run=parts",
                  "optim.lr=0.01") == 2


def test_detector_checkpoint_loads_for_evaluation(world, real_run):
    model, state = load_detector(real_run / "checkpoint.pt", "cpu")
    assert not model.training and state["config"]["detector"]["min_size"] == 96
    with pytest.raises(SetupError, match="not a detector checkpoint"):
        load_detector(world / "runs" / "tiny" / "checkpoint.pt", "cpu")


def test_a_bad_validation_image_or_checkpoint_is_one_line_naming_the_file(world, real_run,
                                                                        tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(world / "data" / "nod_nikon_h416", data / "nod_nikon_h416")
    test_id = (data / "nod_nikon_h416" / "test.txt").read_text().split()[0]
    (data / "nod_nikon_h416" / "raw" / f"{test_id}.npy").write_bytes(b"cut")
    checkpoint = real_run / "checkpoint.pt"
    assert detect(world, "eval", f"general.data_root={data}", f"checkpoint={checkpoint}",
                  f"out={tmp_path / 'eval'}") == 2
    err = capsys.readouterr().err
    assert f"{test_id}.npy" in err and "Traceback" not in err
    # a class without boxes in the validation split: no AP for it, the epoch is saved
    annotations = data / "nod_nikon_h416" / "annotations" / "test.json"
    doc = json.loads(annotations.read_text())
    doc["annotations"] = [a for a in doc["annotations"] if a["category_id"] != 2]
    annotations.write_text(json.dumps(doc))
    (data / "nod_nikon_h416" / "test.txt").write_text(
        "\n".join((data / "nod_nikon_h416" / "test.txt").read_text().split()[1:]) + "\n")
    assert detect(world, "train", f"general.data_root={data}", f"general.out={tmp_path}") == 0
    run = tmp_path / "nod_nikon_h416-n4-s0"
    val = [r for r in stats_lines(run) if "val/AP" in r]
    assert "val/AP_car" in val[0] and "val/AP_bicycle" not in val[0]
    (tmp_path / "cut.pt").write_bytes(checkpoint.read_bytes()[:1000])
    assert detect(world, "eval", f"checkpoint={tmp_path / 'cut.pt'}") == 2
    err = capsys.readouterr().err
    assert "cut.pt: not a readable detector checkpoint" in err and "Traceback" not in err


def test_settings_that_cannot_work_are_one_line_errors(world, real_run, capsys):
    assert detect(world, "train", "data.real_fraction=0.05") == 2
    assert "data/generated=cityscapes" in capsys.readouterr().err
    assert detect(world, "train", "data/generated=cityscapes", "data.real_fraction=0") == 2
    assert "data.generated.pred is not set" in capsys.readouterr().err
    assert detect(world, "train", *generated(world, 0)[:1], f"data.generated.pred={world}/none",
                  "data.real_fraction=0") == 2
    assert "no such folder" in capsys.readouterr().err
    assert detect(world, "train", "data.real.max_items=50") == 2
    assert "choose 1 to 6" in capsys.readouterr().err
    assert detect(world, "train", "data=nod_sony") == 2
    err = capsys.readouterr().err
    assert "prepare nod --root NOD_DIR --camera sony --h416" in err and "Traceback" not in err
    assert detect(world, "eval", "general.run=never") == 2
    assert "no detector checkpoint" in capsys.readouterr().err
    assert detect(world, "train", "optim.batch_size=0", "log.every=-1") == 2
    assert "optim.batch_size=0, log.every=-1: must be >= 1" in capsys.readouterr().err
    # a generated set that f = 1 never draws from is not part of the recipe: the real-only
    # run of test_each_setting... is the same run, and is trained
    assert detect(world, "train", *generated(world, 1.0)) == 0


def test_multirun_through_the_submitit_launcher_with_two_tasks(world, tmp_path):
    """`-m` with submitit's local executor in place of SLURM's: two tasks train with DDP."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "rawdiffusion.cli", "detect", "train",
         f"general.data_root={world / 'data'}", f"general.out={tmp_path}",
         "data.real.max_items=4", "detector.min_size=96", "detector.max_size=160",
         "optim.epochs=1", "optim.batch_size=2", "system.workers=0",
         "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "-m"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run = tmp_path / "nod_nikon_h416-n4-s0"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 2
    assert "2 process(es) on cpu" in (run / "train.log").read_text()


def test_torchrun_two_processes_train_one_checkpoint(world):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "-m", "rawdiffusion.cli", "detect", "train", f"general.data_root={world / 'data'}",
         f"general.out={world / 'ddp'}", "data.real.max_items=4", "detector.min_size=96",
         "detector.max_size=160", "optim.epochs=1", "optim.batch_size=2", "system.workers=0"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    state = torch.load(world / "ddp" / "nod_nikon_h416-n4-s0" / "checkpoint.pt",
                       weights_only=True)
    assert state["iteration"] == 2
    assert PreparedDataset(world / "data" / "nod_nikon_h416").kind == "paired"
