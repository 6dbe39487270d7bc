"""Training: the seed's commands, a tiny prepared dataset end to end, exact resumption (also
after kill -9), the NaN guard, DDP with torchrun and the submitit launcher.

Everything runs the small preset on 32 px crops of a synthetic dataset, on one CPU thread per
process: bit-exact comparisons need the same thread count everywhere, and a second test run on
the same cores would otherwise slow both down many times over.
"""

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from PIL import Image

from conftest import SHARED_RAW, require_shared, synthetic_raw
from rawdiffusion import config, training, training_data
from rawdiffusion.checkpoint import load_checkpoint, load_model
from rawdiffusion.cli import main as cli
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.paired import prepare_folder
from rawdiffusion.datasets.subsample import draw_images
from rawdiffusion.diffusion import Diffusion
from rawdiffusion.io import CFA_ORDERS, write_dng
from rawdiffusion.model import UNet
from rawdiffusion.errors import SetupError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
ENV.pop("RAWDIFFUSION_DATA", None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """4 synthetic DNGs (all Bayer orders) prepared in 2x2 grids: 3 training images (12 samples
    of 32x64 packed pixels), 1 test image (4 samples)."""
    root = tmp_path_factory.mktemp("tiny")
    for i in range(4):
        write_dng(root / "src" / f"img{i}.dng", synthetic_raw(CFA_ORDERS[i], 128, 256, seed=i))
    prepare_folder(root / "src", root / "prepared", name="tiny", test_fraction=0.25, grid=2)
    return root / "prepared"


def settings(data: Path, out: Path, **changes) -> list[str]:
    """Overrides for a few seconds of training on `data`; changes like optim__lr=1e-3."""
    s = {"dataset": "folder", "dataset.root": data, "general.out": out, "model.preset": "small",
         "optim.crop": 32, "optim.batch_size": 2, "optim.max_steps": 12, "general.save_every": 4,
         "log.every": 2, "log.preview_every": 1000, "log.val_every": 1000, "log.val_images": 2,
         "diffusion_val.timestep_respacing": "ddim2", "system.workers": 0}
    s.update({k.replace("__", "."): v for k, v in changes.items()})
    return [f"{k}={v}" for k, v in s.items()]


def compose_config(overrides):
    config.register()
    with initialize(version_base="1.3", config_path=None):
        return compose(config_name="train", overrides=[str(o) for o in overrides])


def train(overrides) -> Path:
    return training.main(compose_config(overrides))


def python(*args, cwd, timeout=180, **kwargs):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=ENV, text=True,
                          capture_output=True, timeout=timeout, **kwargs)


def records(run_dir: Path, key: str) -> list[dict]:
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if key in r]


def assert_same_weights(a: dict, b: dict):
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k, state in a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], b["optimizer"]["state"][k]["exp_avg_sq"]), k


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory) -> dict:
    """The checkpoint of 12 steps trained in one go."""
    run_dir = train(settings(tiny, tmp_path_factory.mktemp("runs")))
    return load_checkpoint(run_dir / training.CHECKPOINT)


# ----------------------------------------------------------------------------- configuration

def test_every_seed_dataset_composes_and_names_the_command_that_prepares_it(tmp_path):
    names = [n + s for n in config.SOURCES for s in ("", config.SUBSAMPLE)]  # every seed dataset
    assert {"fivek_nikon", "fivek_canon", "nod_nikon", "nod_sony", "fivek_nikon_subsample",
            "nod_nikon_h416_subsample", "nod_sony_h416_subsample"} <= set(names)
    for name in names:
        overrides = [f"dataset={name}", "general.seed=0", f"general.data_root={tmp_path}"]
        if name.endswith("_subsample"):
            overrides.append("dataset.train.max_items=25")
        cfg = compose_config(overrides)
        source = name.removesuffix("_subsample")
        assert cfg.dataset.train.root == cfg.dataset.val.root == f"{tmp_path}/{source}"
        assert cfg.dataset.val.split == "test"
        with pytest.raises(SetupError) as error:
            training.main(cfg)
        assert f"{config.SOURCES[source]} --out {tmp_path}/{source}" in str(error.value)


def test_subsample_without_max_items_says_what_to_set():
    cfg = compose_config(["dataset=fivek_canon_subsample"])
    with pytest.raises(SetupError, match=r"dataset.train.max_items=\.\.\. \(the number of "):
        training.main(cfg)


def test_seed_defaults_are_the_paper_recipe():
    cfg = compose_config(["dataset=fivek_nikon"])
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.decay_steps, cfg.optim.batch_size,
            cfg.optim.crop, cfg.optim.ema_decay) == (1e-4, 0.0, 70_000, 4, 256, 0.0)
    assert cfg.model.preset == "paper" and cfg.diffusion_val.timestep_respacing == "ddim24"
    assert compose_config(["dataset/val=nod_sony", "dataset=nod_nikon"]).dataset.val.root \
        .endswith("/nod_sony")


def test_seed_commands_verbatim_fail_with_the_prepare_command(tmp_path):
    """train.py, `rawdiffusion train` and the SLURM form, in fresh processes, without data."""
    commands = {
        "train.py": [REPO / "train.py", "dataset=fivek_nikon", "general.seed=0"],
        "cli": ["-m", "rawdiffusion.cli", "train", "dataset=nod_sony_h416_subsample",
                "dataset.train.max_items=100"],
    }
    if shutil.which("srun") is None:  # on a SLURM cluster this would really submit
        commands["slurm"] = [REPO / "train.py", "dataset=fivek_nikon", "general.seed=0",
                             "hydra.launcher.partition=P", "-m"]
    procs = {k: subprocess.Popen([sys.executable, *map(str, c)], cwd=tmp_path, env=ENV, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for k, c in commands.items()}
    out = {k: (p.communicate(timeout=120)[0], p.returncode) for k, p in procs.items()}
    assert out["train.py"][1] == 2
    assert ("error: training data: " in out["train.py"][0]
            and "rawdiffusion prepare fivek --root FIVEK_DIR --camera nikon --out "
                "data/fivek_nikon`" in out["train.py"][0]), out["train.py"][0]
    assert out["cli"][1] == 2
    assert "prepare nod --root NOD_DIR --camera sony --h416 --out data/nod_sony_h416" \
        in out["cli"][0]
    if "slurm" in out:  # composed; the SLURM launcher needs a cluster, and says how to go on
        assert out["slurm"][1] == 2 and out["slurm"][0] == (
            "error: -m runs each job on SLURM (hydra/launcher=rawdiffusion_slurm) and this "
            "machine has no srun; to run the jobs here one after another, add "
            "hydra/launcher=basic\n")


# ----------------------------------------------------------------------------- data

def test_max_items_keeps_whole_images_and_the_epoch_length(tiny):
    ds = PreparedDataset(tiny)
    full = training_data.TrainSamples(ds, "train", 32, seed=3)
    few = training_data.TrainSamples(ds, "train", 32, seed=3, max_items=1)
    assert len(full) == len(few) == len(full.ids) == 12
    image = draw_images([i for i, e in ds.images.items() if e["split"] == "train"], 1, 3)[0]
    assert sorted(few.ids) == sorted(ds.images[image]["samples"])
    assert np.bincount(few.order(0)).tolist() == [3, 3, 3, 3]
    assert sorted(full.order(0)) == list(range(12)) and not np.array_equal(full.order(0),
                                                                            full.order(1))
    raw, rgb = few[17]
    assert raw.shape == (4, 32, 32) and rgb.shape == (3, 32, 32)
    assert raw.min() >= -1 and raw.max() <= 1 and rgb.min() >= -1 and rgb.max() <= 1
    # A draw depends on (seed, draw number) only, never on what was drawn before.
    again = training_data.TrainSamples(ds, "train", 32, seed=3, max_items=1)[17]
    assert torch.equal(raw, again[0]) and torch.equal(rgb, again[1])
    with pytest.raises(SetupError, match="max_items=4: .* has 3 train images"):
        training_data.TrainSamples(ds, "train", 32, seed=3, max_items=4)


def test_draws_split_each_step_between_processes():
    take = lambda rank: list(itertools.islice(iter(training_data.Draws(3, 4, rank, 2)), 4))  # noqa
    assert take(0) == [12, 13, 16, 17] and take(1) == [14, 15, 18, 19]


# ----------------------------------------------------------------------------- training

def test_prepared_folder_trains_logs_previews_checkpoints_and_resumes(tiny, tmp_path):
    changes = dict(optim__max_steps=4, general__save_every=2, log__preview_every=2,
                   log__val_every=4)
    run_dir = train(settings(tiny, tmp_path, **changes))
    assert run_dir == tmp_path / "tiny-small-s0"
    assert [r["step"] for r in records(run_dir, "train/loss")] == [2, 4]
    val = records(run_dir, "val/psnr")
    assert [r["step"] for r in val] == [4]
    assert {"val/mse", "val/ssim", "val/pearson", "val/psnr_rggb", "val/ssim_rggb"} <= set(val[0])
    previews = sorted((run_dir / "previews").iterdir())
    assert [p.name for p in previews] == ["0000002.png", "0000004.png"]
    assert np.asarray(Image.open(previews[0])).shape == (2 * 32, 3 * 32, 3)  # 2 rows, 3 panels
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert "starting" in (run_dir / "train.log").read_text()

    # A checkpoint is plain data: it loads with weights_only=True and rebuilds the model.
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and isinstance(state["config"], dict)
    assert state["config"]["model"]["preset"] == "small"
    assert state["config"]["dataset"]["train"]["root"] == str(tiny)
    assert state["camera"]["make"] == "Testmaker" and state["camera"]["cfa"] in CFA_ORDERS
    net = UNet(**state["model_config"])
    net.load_state_dict(state["model"])
    loaded, _ = load_model(run_dir / "checkpoint.pt")
    assert loaded.conv_in.weight.is_contiguous(memory_format=torch.channels_last)  # CPU speed
    x, rgb = torch.rand(1, 4, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    t = torch.tensor([500])
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                  loaded.state_dict().values(), strict=True))
    with torch.no_grad():  # NHWC convolutions add and round in another order
        assert torch.allclose(net(x, t, rgb=rgb), loaded(x, t, rgb=rgb), atol=1e-6)

    # The same command with more steps continues the run, keeping the camera's noise model
    # (these synthetic DNGs have no ISO: the run stored none; here it is given one).
    assert "noise" not in state["camera"]
    noise = {"iso": 100.0, "shot": [1e-4] * 4, "read_gained": [1e-7] * 4,
             "read_fixed": [0.0] * 4, "isos": [100.0, 200.0]}
    torch.save({**state, "camera": {**state["camera"], "noise": noise}},
               run_dir / "checkpoint.pt")
    changes["optim__max_steps"] = 6
    assert train(settings(tiny, tmp_path, **changes)) == run_dir
    assert [r["step"] for r in records(run_dir, "train/loss")] == [2, 4, 6]
    assert "resuming" in (run_dir / "train.log").read_text()
    resumed = load_checkpoint(run_dir / "checkpoint.pt")
    assert resumed["step"] == 6 and resumed["camera"]["noise"] == noise

    # Another recipe in the same run directory is refused, naming the difference.
    with pytest.raises(SetupError, match=r"optim.lr: 0.0001 -> 0.001.*general.run=NAME"):
        train(settings(tiny, tmp_path, optim__lr=1e-3, optim__max_steps=8))


def test_stopping_and_rerunning_gives_the_uninterrupted_weights(tiny, tmp_path, uninterrupted):
    train(settings(tiny, tmp_path, optim__max_steps=5))
    run_dir = train(settings(tiny, tmp_path))
    assert_same_weights(load_checkpoint(run_dir / "checkpoint.pt"), uninterrupted)


def test_kill_9_then_rerun_gives_the_uninterrupted_weights(tiny, tmp_path, uninterrupted):
    """kill -9 right after the first checkpoint lands, then the same command again."""
    command = [sys.executable, REPO / "train.py",
               *settings(tiny, tmp_path / "runs", system__workers=1)]
    checkpoint = tmp_path / "runs" / "tiny-small-s0" / "checkpoint.pt"
    proc = subprocess.Popen(command, cwd=tmp_path, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its data loader worker
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert load_checkpoint(checkpoint)["step"] < 12

    result = python(*command[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_weights(load_checkpoint(checkpoint), uninterrupted)
    steps = [r["step"] for r in records(checkpoint.parent, "train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # no records left from the kill


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    calls, loss = itertools.count(), Diffusion.loss

    def loss_that_diverges_at_step_5(self, *args, **kwargs):
        value, terms = loss(self, *args, **kwargs)
        return (value * float("nan") if next(calls) >= 4 else value), terms

    monkeypatch.setattr(Diffusion, "loss", loss_that_diverges_at_step_5)
    with pytest.raises(SetupError, match=r"loss became nan between steps 4 and 6; stopping\. "
                                            r"The last good checkpoint \(step 4\) stays in .*; "
                                            r"to train with a lower optim\.lr, start a new run "
                                            r"with general\.run=NAME\.$"):
        train(settings(tiny, tmp_path, general__save_every=2))
    state = load_checkpoint(tmp_path / "tiny-small-s0" / "checkpoint.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(p).all() for p in state["model"].values())
    # Before any checkpoint: none is named, and a rerun with a lower rate starts afresh.
    calls = itertools.count()
    with pytest.raises(SetupError, match=r"loss became nan between steps 4 and 6; stopping\. "
                                            r"No checkpoint was saved yet"):
        train(settings(tiny, tmp_path / "b", general__save_every=10))
    assert not (tmp_path / "b" / "tiny-small-s0" / "checkpoint.pt").exists()
    monkeypatch.setattr(Diffusion, "loss", loss)
    run_dir = train(settings(tiny, tmp_path / "b", general__save_every=10, optim__lr=1e-5))
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 12


def test_ema_and_gradient_checkpointing(tiny, tmp_path):
    plain = train(settings(tiny, tmp_path / "a", optim__max_steps=2))
    checkpointed = train(settings(tiny, tmp_path / "b", optim__max_steps=2,
                                  system__checkpointing=True))
    # Recomputing activations in the backward pass changes memory, not results.
    assert_same_weights(load_checkpoint(plain / "checkpoint.pt"),
                        load_checkpoint(checkpointed / "checkpoint.pt"))

    # One step with EMA decay 0.5: the EMA is halfway between the initial and the new weights.
    run_dir = train(settings(tiny, tmp_path / "c", optim__max_steps=1, optim__ema_decay=0.5,
                             model__prior="none"))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    torch.manual_seed(0)  # general.seed: the initial weights
    initial = training.model_from_config(
        compose_config(["model.preset=small", "model.prior=none"]).model)
    for k, w0 in initial.state_dict().items():
        torch.testing.assert_close(state["ema"][k], (w0 + state["model"][k]) / 2)
    net, _ = load_model(run_dir / "checkpoint.pt")  # sampling uses the EMA weights
    assert all(torch.equal(v, state["ema"][k]) for k, v in net.state_dict().items())


def test_torchrun_two_cpu_processes_train_and_save_one_checkpoint(tiny, tmp_path):
    result = python("-m", "torch.distributed.run", "--nproc_per_node", 2, "--standalone",
                    REPO / "train.py", *settings(tiny, tmp_path, optim__max_steps=2),
                    cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in tmp_path.rglob("*.pt")] == ["checkpoint.pt"]
    run_dir = tmp_path / "tiny-small-s0"
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    assert "2 process(es) on cpu" in (run_dir / "train.log").read_text()
    assert [r["step"] for r in records(run_dir, "train/loss")] == [2]


def test_multirun_through_the_submitit_launcher_with_two_tasks(tiny, tmp_path):
    """`-m` with submitit's local executor instead of SLURM's: the job is pickled and run as
    two tasks, which train together with DDP, as a multi-GPU SLURM job would."""
    result = python(REPO / "train.py", *settings(tiny, tmp_path, optim__max_steps=2),
                    "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", "-m",
                    cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "tiny-small-s0"
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 2
    assert "2 process(es) on cpu" in (run_dir / "train.log").read_text()


def test_the_shared_gopro_folder_trains_and_resumes(tmp_path):
    """The real files: `rawdiffusion prepare folder` on ../shared/data/raw/dng, then training."""
    raw_dir = require_shared(SHARED_RAW / "dng")
    assert cli(["prepare", "folder", "--raw-dir", str(raw_dir), "--out", str(tmp_path / "gopro"),
                "--name", "gopro", "--workers", "2"]) == 0
    changes = dict(optim__crop=64, optim__max_steps=2, general__save_every=1,
                   log__preview_every=2, log__val_images=2)
    run_dir = train(settings(tmp_path / "gopro", tmp_path / "runs", **changes))
    assert run_dir.name == "gopro-small-s0"
    # The camera (GoPro FUSION: the front lens trains, the HERO6 is another sensor) with the
    # noise model of its training image at ISO 100.
    camera = load_checkpoint(run_dir / "checkpoint.pt")["camera"]
    assert (camera["model"], camera["noise"]["isos"]) == ("FUSION", [100.0])
    assert camera["noise"]["shot"] == pytest.approx([1.75e-4, 1.55e-4, 1.52e-4, 1.85e-4],
                                                    rel=0.02)
    assert (run_dir / "previews" / "0000002.png").is_file()
    assert [r["step"] for r in records(run_dir, "train/loss")] == [1, 2]
    changes["optim__max_steps"] = 3
    train(settings(tmp_path / "gopro", tmp_path / "runs", **changes))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["step"] == 3 and state["camera"] == camera


def test_a_general_out_that_is_a_file_or_a_checkpoint_path_that_is_a_folder_is_refused(
        tiny, tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SetupError, match=r"general.out=.*afile: a file; run folders are made"):
        train(settings(tiny, tmp_path / "afile"))
    (tmp_path / "runs" / "tiny-small-s0" / "checkpoint.pt").mkdir(parents=True)
    with pytest.raises(SetupError, match=r"checkpoint.pt: not a file; training writes its "):
        train(settings(tiny, tmp_path / "runs"))


def test_an_exported_checkpoint_is_never_resumed_and_never_replaces_its_run(tiny, tmp_path,
                                                                           capsys):
    """An export keeps no optimiser state: onto its own run it is refused, and put in a run
    folder by hand it is named instead of failing inside the optimiser."""
    run_dir = train(settings(tiny, tmp_path, optim__max_steps=2, general__save_every=2))
    checkpoint = run_dir / "checkpoint.pt"
    before = checkpoint.read_bytes()
    assert cli(["export", str(checkpoint), "--out", str(checkpoint)]) == 2
    assert "the checkpoint itself; an export keeps no optimiser" in capsys.readouterr().err
    assert checkpoint.read_bytes() == before
    assert cli(["export", str(checkpoint), "--out", str(tmp_path / "shared.pt")]) == 0
    shutil.copy(tmp_path / "shared.pt", checkpoint)
    with pytest.raises(SetupError, match=r"checkpoint.pt: an exported checkpoint \(weights for "
                                         r"sampling, no optimiser state\)"):
        train(settings(tiny, tmp_path, optim__max_steps=4, general__save_every=2))


@pytest.mark.parametrize("changes, message", [
    ({"diffusion_val__timestep_respacing": "ddim1001"},
     r"diffusion_val.timestep_respacing=ddim1001: the ddim sampler takes 1 to 1000 steps"),
    ({"optim__max_steps": 30, "optim__decay_steps": 20},
     r"optim.max_steps=30 is past optim.decay_steps=20, where the learning rate reaches 0"),
    ({"optim__lr": -1.0}, r"^optim.lr=-1.0: must be in \(0, 1\] \(the paper's is 1e-4\)$"),
    ({"optim__lr": 1e38}, r"^optim.lr=1e\+38: must be in \(0, 1\]"),
    ({"optim__weight_decay": -1.0}, r"^optim.weight_decay=-1.0: must be >= 0$"),
    ({"optim__batch_size": 0}, r"^optim.batch_size=0: must be >= 1$"),
    ({"optim__max_steps": -1, "log__every": 0},
     r"^optim.max_steps=-1, log.every=0: must be >= 1$"),
    ({"general__seed": -1}, r"^general.seed=-1: must be >= 0$"),
])
def test_settings_that_would_fail_or_do_nothing_later_are_refused_first(tiny, tmp_path, changes,
                                                                          message):
    with pytest.raises(SetupError, match=message):
        train(settings(tiny, tmp_path, **changes))
    assert not any(tmp_path.iterdir())  # before any work
