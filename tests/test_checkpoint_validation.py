"""Checkpoints are validated before any work: every broken, foreign or malicious file is one
line naming the file and what is wrong, in load_checkpoint, load_model, loading.load,
`rawdiffusion export` / `convert`, and train.py / sample.py; no pickle ever executes."""

import os
import pickle
import zipfile

import pytest
import torch

from rawdiffusion import evaluation, hydra_cli, training
from rawdiffusion.checkpoint import (CheckpointError, export_checkpoint, load_checkpoint,
                                     load_model, save_checkpoint)
from rawdiffusion.cli import main
from rawdiffusion.errors import UserError
from rawdiffusion import loading
from rawdiffusion.model import UNet

TINY = dict(channels=16, channel_mult=(1, 2), num_blocks=1, attn_ds=(2,), guide="edsr",
            guide_channels=8, spade_hidden=8)
CAMERA = {"cfa": "RGGB", "make": "Acme", "model": "One", "black_level": [64.0, 65.0, 66.0, 67.0],
          "white_level": 4095.0, "wb": [2.0, 1.0, 1.5], "color_matrix": None}
NOISE = {"iso": 100.0, "shot": [1e-4] * 4, "read_gained": [1e-7] * 4, "read_fixed": [0.0] * 4,
         "isos": [100.0]}


def state(**changes) -> dict:
    torch.manual_seed(0)
    net = UNet(**TINY)
    good = {"step": 1, "config": {"model": {"preset": "small"}}, "model_config": net.config,
            "model": net.state_dict(), "ema": None, "camera": dict(CAMERA)}
    return {k: v for k, v in {**good, **changes}.items() if v is not ...}  # ...: key dropped


def saved(tmp_path, name="c.pt", **changes):
    save_checkpoint(tmp_path / name, state(**changes))
    return tmp_path / name


class Payload:
    """Unpickling it calls open(path, "w"): the file appears if the pickle is executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def broken_weights(which):
    weights = UNet(**TINY).state_dict()
    if which == "missing":
        del weights["conv_out.weight"]
    elif which == "shape":
        weights["conv_out.weight"] = torch.zeros(4, 16, 1, 1)
    else:
        weights["conv_out.bias"] = torch.tensor([0.0, float("nan"), 0.0, 0.0])
    return weights


def checkpoint_cases(tmp_path) -> dict:
    """name: (path, the whole message after '<path>: ')."""
    (tmp_path / "random.pt").write_bytes(os.urandom(4096).replace(b"PK", b"pk"))
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"format": "rawdiffusion-checkpoint/1"}))
    with zipfile.ZipFile(tmp_path / "other.zip.pt", "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    unreadable = "not a readable checkpoint: "
    cases = {
        "random": ("random.pt", unreadable + "not a PyTorch zip archive (truncated, or another "
                                             "kind of file)"),
        "plain pickle": ("plain.pt", unreadable + "a plain pickle, not a PyTorch zip archive "
                                                  "(left unpickled)"),
        "zip": ("other.zip.pt", unreadable + "a zip archive without the data.pkl of a PyTorch "
                                             "checkpoint"),
        "no model": (saved(tmp_path, "nomodel.pt", model=...), "incomplete checkpoint: no 'model'"),
        "missing weight": (saved(tmp_path, "missing.pt", model=broken_weights("missing")),
                           "model: no 'conv_out.weight' (1 weight(s) of model_config's network "
                           "missing)"),
        "shape": (saved(tmp_path, "shape.pt", model=broken_weights("shape")),
                  "model: 'conv_out.weight' has shape (4, 16, 1, 1), model_config's network "
                  "(4, 16, 3, 3)"),
        "nan": (saved(tmp_path, "nan.pt", ema=broken_weights("nan")),
                "ema: 'conv_out.bias' holds non-finite values (NaN or inf)"),
        "guide": (saved(tmp_path, "guide.pt", model_config={**TINY, "guide": "vgg"}),
                  "model_config: guide 'vgg' is not one of edsr, rrdb, nafnet"),
        "preset key": (saved(tmp_path, "presetkey.pt", model_config={**TINY, "preset": "huge"}),
                       "model_config: unknown key 'preset'"),
        "preset": (saved(tmp_path, "preset.pt", config={"model": {"preset": "huge"}}),
                   "config: model.preset 'huge' is not one of paper, small"),
        "black above white": (saved(tmp_path, "levels.pt", camera={**CAMERA, "white_level": 65}),
                              "camera: impossible levels: black_level 65 is not below "
                              "white_level 65"),
        "zero gain": (saved(tmp_path, "gain.pt", camera={**CAMERA, "wb": [2.0, 0.0, 1.5]}),
                      "camera.wb[1]: input should be greater than 0 (got 0.0)"),
        "negative gain": (saved(tmp_path, "neg.pt", camera={**CAMERA, "wb": [-2.0, 1.0, 1.5]}),
                          "camera.wb[0]: input should be greater than 0 (got -2.0)"),
        "cfa": (saved(tmp_path, "cfa.pt", camera={**CAMERA, "cfa": "RGBW"}),
                "camera.cfa: input should be 'RGGB', 'BGGR', 'GRBG' or 'GBRG' (got \"RGBW\")"),
        "noise shot": (saved(tmp_path, "shot.pt", camera={**CAMERA, "noise": {
            **NOISE, "shot": [1e-4, float("nan"), 1e-4, 1e-4]}}),
            "camera.noise.shot[1]: input should be a finite number (got NaN)"),
        "noise iso": (saved(tmp_path, "iso.pt", camera={**CAMERA, "noise": {**NOISE, "iso": 0}}),
                      "camera.noise.iso: input should be greater than 0 (got 0)"),
        "noise key": (saved(tmp_path, "row.pt", camera={**CAMERA, "noise": {**NOISE, "rows": 1}}),
                      "camera.noise.rows: extra inputs are not permitted (got 1)"),
    }
    return {name: (tmp_path / path, words) for name, (path, words) in cases.items()}


def test_bad_checkpoints_are_one_line_naming_file_and_reason(tmp_path):
    for name, (path, expected) in checkpoint_cases(tmp_path).items():
        for load in (load_checkpoint, load_model, loading.load):
            with pytest.raises(CheckpointError) as info:
                load(path)
            assert str(info.value) == f"{path}: {expected}", (name, load.__name__)


def test_a_malicious_pickle_never_executes(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))  # what executing the payload does
    assert control.exists()
    marker = tmp_path / "executed"
    torch.save({"format": "rawdiffusion-checkpoint/1", "model": Payload(marker)},
               tmp_path / "evil.pt")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload(marker)))
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(info.value) and str(info.value).startswith(
            f"{tmp_path / name}: not a readable checkpoint: ")
    assert not marker.exists()


def test_the_malicious_zip_names_what_it_holds(tmp_path):
    torch.save({"model": Payload(tmp_path / "executed")}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    assert str(info.value) == (f"{tmp_path / 'evil.pt'}: not a readable checkpoint: it holds "
                               "io.open, not only tensors and plain values (refused "
                               "unexecuted: checkpoints load with weights_only=True)")
    assert not (tmp_path / "executed").exists()


def test_good_checkpoints_and_networks_without_a_camera_still_load(tmp_path):
    net, loaded = load_model(saved(tmp_path))
    assert loaded["camera"] == CAMERA and isinstance(net, UNet)
    assert loading.load(saved(tmp_path), device="cpu").camera.noise is None  # of before noise
    noisy = loading.load(saved(tmp_path, "noisy.pt", camera={**CAMERA, "noise": NOISE}),
                         device="cpu").camera
    assert noisy.noise.to_dict() == NOISE and noisy.to_dict() == {**CAMERA, "noise": NOISE}
    load_model(saved(tmp_path, "nocamera.pt", camera={}))  # networks saved by tests
    with pytest.raises(CheckpointError, match=r"nocamera.pt: camera: none recorded"):
        loading.load(tmp_path / "nocamera.pt")


def test_export_and_convert_report_one_line_and_exit_2(tmp_path, capsys):
    bad = saved(tmp_path, "gain.pt", camera={**CAMERA, "wb": [2.0, 0.0, 1.5]})
    reason = "camera.wb[1]: input should be greater than 0 (got 0.0)"
    assert main(["export", str(bad), "--out", str(tmp_path / "shared.pt")]) == 2
    assert capsys.readouterr().err == f"error: {bad}: {reason}\n"
    assert not (tmp_path / "shared.pt").exists()
    (tmp_path / "photo.png").write_bytes(b"")
    assert main(["convert", str(tmp_path / "photo.png"), "--checkpoint", str(bad), "--out",
                 str(tmp_path / "out"), "--cpu"]) == 2
    assert capsys.readouterr().err == f"error: {bad}: {reason}\n"
    export_checkpoint(saved(tmp_path), tmp_path / "fine.pt")  # a good one exports
    export_checkpoint(saved(tmp_path, "noisy.pt", camera={**CAMERA, "noise": NOISE}),
                      tmp_path / "noisy-shared.pt")  # with its noise model
    assert load_checkpoint(tmp_path / "noisy-shared.pt")["camera"]["noise"] == NOISE


def test_a_fifo_or_a_device_as_checkpoint_is_refused_unread(tmp_path, capsys):
    """A FIFO blocked the container check for good, /dev/zero made it read without end."""
    from malformed_corpus import no_hang

    os.mkfifo(tmp_path / "pipe.pt")
    (tmp_path / "loop.pt").symlink_to(tmp_path / "loop.pt")
    (tmp_path / "photo.png").write_bytes(b"")
    cases = {tmp_path / "pipe.pt": "a FIFO (named pipe), not a checkpoint file",
             "/dev/zero": "a character device, not a checkpoint file",
             tmp_path / "loop.pt": "a symlink loop"}
    for path, reason in cases.items():
        message = f"{path}: not a readable checkpoint: {reason}"
        with no_hang(30):
            with pytest.raises(CheckpointError) as info:
                load_checkpoint(path)
            assert str(info.value) == message
            assert main(["convert", str(tmp_path / "photo.png"), "--checkpoint", str(path),
                         "--out", str(tmp_path / "out"), "--cpu"]) == 2
        assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("module", [training, evaluation])
def test_train_and_sample_entry_points_report_one_line_and_exit_2(module, tmp_path, monkeypatch,
                                                                  capsys):
    """Resumption (training) and sample.py load through load_checkpoint; their Hydra tasks turn
    a CheckpointError, a UserError, into one line and exit status 2."""
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    assert issubclass(CheckpointError, UserError) and issubclass(CheckpointError, ValueError)
    monkeypatch.setattr(module, "main", lambda cfg: load_checkpoint(bad))
    with pytest.raises(SystemExit) as info:
        hydra_cli._Task(module.__name__)(None)
    assert info.value.code == 2
    assert capsys.readouterr().err == (f"error: {bad}: not a readable checkpoint: a plain "
                                       "pickle, not a PyTorch zip archive (left unpickled)\n")
