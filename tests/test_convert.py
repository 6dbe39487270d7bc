"""RGB -> RAW conversion with a checkpoint: outputs, resumption, sharding, clear errors."""

import errno
import hashlib
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from rawdiffusion.camera import Camera, CameraError
from rawdiffusion.checkpoint import file_digest, load_model, save_checkpoint
from rawdiffusion.diffusion import Diffusion, derived_seed
from rawdiffusion import atomic, cli
from rawdiffusion.convert import ConversionFailed, convert
from rawdiffusion.errors import UserError
from rawdiffusion.figures import GAP, PHOTO, RAW_DATA, RENDERED, label_band
from rawdiffusion.generator import RawGenerator
from rawdiffusion.processes import merge_manifests
from rawdiffusion.images import halve_area
from rawdiffusion.io import read_packed, read_raw
from rawdiffusion.model import build_model

CAMERA = {"cfa": "GRBG", "make": "Testmaker", "model": "Synthetic 1",
          "black_level": [64.0, 65.0, 66.0, 67.0], "white_level": 4095.0,
          "wb": [2.0, 1.0, 1.5], "color_matrix": None}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small-preset checkpoint whose zero-initialised output layers are randomised, so that
    its samples depend on the guide and the noise."""
    torch.manual_seed(0)
    net = build_model("small")
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "config": {}, "model_config": net.config,
                           "model": net.state_dict(), "ema": None, "camera": CAMERA})
    return path


def generator(path, steps=2, **kw):
    net, state = load_model(path)
    return RawGenerator(net, Diffusion(), Camera.from_dict(state["camera"]), file_digest(path),
                        steps=steps, **kw)


def photos(folder, sizes=((64, 96), (48, 80), (40, 56))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_convert_writes_the_cameras_dng_previews_and_manifest(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    assert convert(sources, out, generator(checkpoint, tile=16, overlap=8), seed=0,
                   figure=True) == (3, 0)
    raw = read_raw(out / "photo0.dng")
    assert raw.mosaic.shape == (64, 96)  # a photo's pixels become as many RAW pixels
    assert (raw.cfa, raw.white_level, raw.make) == ("GRBG", 4095, "Testmaker")
    assert raw.black_level == (65, 64, 67, 66)  # packed R, G1, G2, B levels at GRBG positions
    assert raw.mosaic.min() >= 64 and raw.mosaic.max() <= 4095
    assert (out / "photo0.png").is_file() and (out / "photo0_compare.png").is_file()
    records = [json.loads(line) for line in merge_manifests(out).read_text().splitlines()]
    assert [r["output"] for r in records] == sorted(str(out / f"photo{i}.dng") for i in range(3))
    assert {r["checkpoint"] for r in records} == {file_digest(checkpoint)}
    assert {r["steps"] for r in records} == {2}


def test_a_killed_conversion_resumes_to_identical_outputs(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), seed=7)
    first = {p.name: p.read_bytes() for p in out.glob("photo*")}
    # as if killed after the first image: the others' outputs never appeared
    for name in ("photo1.dng", "photo1.png", "photo2.dng", "photo2.png"):
        (out / name).unlink()
    stamp = (out / "photo0.dng").stat().st_mtime_ns
    assert convert(sources, out, generator(checkpoint), seed=7) == (2, 1)
    assert (out / "photo0.dng").stat().st_mtime_ns == stamp  # finished work is not redone
    assert {p.name: p.read_bytes() for p in out.glob("photo*")} == first


def test_a_large_photo_shows_its_denoising_steps_over_all_tiles(checkpoint, tmp_path,
                                                                 monkeypatch):
    """A 12 MP photo takes minutes: a second bar counts its steps, tiles x DDIM steps."""
    import rawdiffusion.generation as module

    bars = []

    class Recorder:
        def __init__(self, *args, total=None, disable=False, **kwargs):
            self.total, self.disable, self.n, self.desc = total, disable, 0, kwargs.get("desc")
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def reset(self, total=None):
            self.total, self.n = total, 0

        def update(self, n=1):
            self.n += n

    monkeypatch.setattr(module, "tqdm", Recorder)
    # a 64 x 96 photo: a 32 x 48 guide in 16-pixel tiles overlapping by 4 is 3 x 4 tiles
    convert(photos(tmp_path / "in")[:1], tmp_path / "out", generator(checkpoint, tile=16,
                                                                     overlap=4), seed=0)
    images, steps = bars
    assert (images.total, images.n) == (1, 1)
    assert steps.desc.strip() == "photo0.png" and not steps.disable
    assert steps.total == steps.n == 3 * 4 * 2


def test_sharded_processes_produce_what_one_process_does(checkpoint, tmp_path, monkeypatch):
    sources = photos(tmp_path / "in")
    convert(sources, tmp_path / "one", generator(checkpoint), seed=3, fmt="npy")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        convert(sources, tmp_path / "two", generator(checkpoint), seed=3, fmt="npy")
    for i in range(3):
        np.testing.assert_array_equal(read_packed(tmp_path / "one" / f"photo{i}.npy"),
                                      read_packed(tmp_path / "two" / f"photo{i}.npy"))
    assert len(merge_manifests(tmp_path / "two").read_text().splitlines()) == 3


def test_hdf5_output_in_the_reference_layout(checkpoint, tmp_path):
    import h5py

    convert(photos(tmp_path / "in")[:1], tmp_path / "out", generator(checkpoint), 0, fmt="hdf5")
    with h5py.File(tmp_path / "out" / "photo0.h5") as f:
        assert f["raw"].shape == (32, 48, 4) and f["raw"].dtype == np.uint16


def test_unreadable_image_is_named_and_leaves_nothing(checkpoint, tmp_path):
    bad = tmp_path / "in" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        convert([bad], tmp_path / "out", generator(checkpoint), 0)
    assert not any(p.name.startswith("broken") for p in (tmp_path / "out").iterdir())


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="x.pt: not a readable checkpoint"):
        load_model(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a rawdiffusion checkpoint"):
        load_model(tmp_path / "other.pt")


def test_camera_raw_inverts_normalisation_exactly():
    x = np.random.default_rng(0).uniform(0, 1, (4, 6, 8)).astype(np.float32)
    raw = Camera.from_dict(CAMERA).raw(x)
    assert raw.mosaic.shape == (12, 16)
    from rawdiffusion import bayer

    levels = bayer.packed_levels(raw.black_level, raw.cfa)
    assert levels.tolist() == CAMERA["black_level"]
    back = bayer.normalise(bayer.pack(raw.mosaic, raw.cfa), levels, raw.white_level)
    np.testing.assert_allclose(back, x, atol=0.5 / (4095 - 67))


def test_a_folder_with_bad_photos_converts_the_others_and_reports_each(checkpoint, tmp_path,
                                                                      capsys):
    folder = tmp_path / "in"
    photos(folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")  # sorts first
    Image.fromarray(np.zeros((10, 40, 3), np.uint8)).save(folder / "photo1b.png")  # too small
    out = tmp_path / "out"
    assert cli.main(["convert", str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
                     "--cpu"]) == 1
    captured = capsys.readouterr()
    assert "3 image(s) converted, 0 already done, 2 failed" in captured.out
    lines = captured.err.splitlines()
    assert lines[-3:] == [
        "2 file(s) failed:",
        f"  {folder / 'broken.jpg'}: not a readable image (UnidentifiedImageError: cannot "
        f"identify image file '{folder / 'broken.jpg'}')",
        f"  {folder / 'photo1b.png'}: image of 40x10 is too small (the dng output needs 22 "
        "pixels a side)"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [str(folder / f"photo{i}.png") for i in range(3)]
    assert sorted(p.name for p in out.glob("broken*")) == []


def test_the_library_raises_after_converting_the_others(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    (tmp_path / "in" / "bad.png").write_bytes(b"junk")
    with pytest.raises(ConversionFailed, match=r"^2 converted, 1 failed: .*bad\.png: not a "
                                               r"readable image") as e:
        convert([sources[0], tmp_path / "in" / "bad.png", sources[2]], tmp_path / "out",
                generator(checkpoint), 0, fmt="npy")
    assert (e.value.done, e.value.skipped, len(e.value.failures)) == (2, 0, 1)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == ["photo0.npy", "photo2.npy"]


def test_max_pixels_refuses_a_photo_over_it(checkpoint, tmp_path, capsys):
    sources = photos(tmp_path / "in", sizes=((40, 56),))
    with pytest.raises(ConversionFailed, match=r"photo0\.png: 56x40 is 2240 pixels, over the "
                                               r"limit of 2239 \(convert --max-pixels"):
        convert(sources, tmp_path / "out", generator(checkpoint), 0, max_pixels=2239)
    assert cli.main(["convert", str(sources[0]), "--checkpoint", str(checkpoint), "--out",
                     str(tmp_path / "out"), "--max-pixels", "2240", "--cpu"]) == 0


def test_two_photos_of_one_name_are_both_named(checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "a.jpg"):
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / name)
    sources = sorted(folder.iterdir())
    with pytest.raises(UserError, match=f"^{folder / 'a.jpg'} and {folder / 'a.png'} would "
                                         f"both be written as {tmp_path / 'out' / 'a'}"):
        convert(sources, tmp_path / "out", generator(checkpoint), 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("steps, reason", [
    ("0", "the ddim sampler takes 1 to 1000 steps, got 0"),
    ("-3", "the ddim sampler takes 1 to 1000 steps, got -3"),
    ("1001", "the ddim sampler takes 1 to 1000 steps, got 1001"),
    ("x", "must be an integer, got 'x'")])
def test_step_counts_that_cannot_work_are_refused_naming_the_option(tmp_path, capsys, steps,
                                                                     reason):
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", str(tmp_path), "--out", str(tmp_path / "out"), "--steps", steps])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"rawdiffusion convert: error: argument --steps: {reason} (see rawdiffusion convert "
        "--help)"]
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused_in_one_line(checkpoint, tmp_path, capsys):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    (tmp_path / "out").write_text("a file")
    assert cli.main(["convert", str(sources[0]), "--checkpoint", str(checkpoint), "--out",
                     str(tmp_path / "out"), "--cpu"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'out'}: a file, not a folder; the "
                                       "outputs need a folder\n")


def test_nothing_to_convert_writes_nothing(checkpoint, tmp_path):
    with pytest.raises(UserError, match="^no images to convert$"):
        convert([], tmp_path / "out", generator(checkpoint), 0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value, words", [
    ("black_level", [5000.0] * 4, "camera: impossible levels: black_level 5000 is not below "
                                  "white_level 4095"),
    ("cfa", "RGBX", "camera.cfa: input should be 'RGGB', 'BGGR', 'GRBG' or 'GBRG'"),
    ("wb", [2.0, 0.0, 1.5], "camera.wb[1]: input should be greater than 0 (got 0.0)"),
    ("white_level", None, "camera.white_level: field required")])
def test_a_camera_no_dng_can_hold_is_refused_before_any_work(checkpoint, tmp_path, capsys, field,
                                                             value, words):
    """A Camera is checked when it is made, so every camera a generator has can be written as
    a DNG; a checkpoint holding another is refused before anything is written."""
    camera = {k: v for k, v in {**CAMERA, field: value}.items() if v is not None}
    with pytest.raises(CameraError) as e:
        Camera.from_dict(camera)
    assert words in str(e.value)
    state = torch.load(checkpoint, weights_only=True)
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, {**{k: v for k, v in state.items() if k != "format"}, "camera": camera})
    source = photos(tmp_path / "in", sizes=((32, 32),))[0]
    assert cli.main(["convert", str(source), "--checkpoint", str(bad), "--out",
                     str(tmp_path / "out"), "--cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: ") and words in err
    assert not (tmp_path / "out").exists()


def test_the_manifest_holds_the_full_sha256_and_a_rerun_knows_old_16_digit_ones(checkpoint,
                                                                               tmp_path):
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert file_digest(checkpoint) == sha and len(sha) == 64
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), 0, fmt="npy")
    manifest = merge_manifests(out)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {r["checkpoint"] for r in records} == {sha}
    # as written by a version that kept 16 hex digits: still this checkpoint's work
    manifest.write_text("".join(json.dumps(dict(r, checkpoint=sha[:16])) + "\n"
                                for r in records))
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (0, 3)
    manifest.write_text("".join(json.dumps(dict(r, checkpoint="0" * 16)) + "\n"
                                for r in records))
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (3, 0)


def test_merging_removes_the_parts_and_keeps_earlier_runs(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    convert(sources[:1], out, generator(checkpoint), 0, fmt="npy")
    merge_manifests(out)
    assert sorted(p.name for p in out.glob("manifest*")) == ["manifest.jsonl"]
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (2, 1)
    merge_manifests(out)
    assert sorted(p.name for p in out.glob("manifest*")) == ["manifest.jsonl"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [str(s) for s in sources]



def test_a_negative_seed_is_refused_naming_the_option(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", str(tmp_path), "--out", str(tmp_path / "out"), "--seed", "-5"])
    assert e.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "rawdiffusion convert: error: argument --seed: must be an integer >= 0, got -5 (see "
        "rawdiffusion convert --help)"]


def test_export_of_a_baseline_file_says_what_it_is(tmp_path, capsys):
    from rawdiffusion.baselines import FORMAT

    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": FORMAT, "kind": "linear"}))
    assert cli.main(["export", str(path), "--out", str(tmp_path / "e.pt")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {path}: a baseline file, already small and shareable as it is; export takes a "
        "training checkpoint")
    assert not (tmp_path / "e.pt").exists()


def test_a_hand_edited_manifest_is_named_with_its_line_and_foreign_part_records_are_redone(
        checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), 0, fmt="npy")
    manifest = merge_manifests(out)
    good = manifest.read_text()
    for bad, problem in (("not json{", "not JSON"), ('{"a": 1}', "no 'source' field"),
                         ("[1]", "no 'source' field")):
        manifest.write_text(good + bad + "\n")
        with pytest.raises(UserError, match=rf"^{manifest}: line 2 is not a manifest record "
                                            rf"\({problem}.*delete it to convert everything"):
            convert(sources, out, generator(checkpoint), 0, fmt="npy")
    manifest.unlink()
    (out / "manifest.part0.jsonl").write_text('null\n{"a": 1}\n')  # not records: ignored
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (1, 0)


def test_a_manifest_that_is_a_folder_is_refused_before_any_output(checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    (tmp_path / "out" / "manifest.jsonl").mkdir(parents=True)
    with pytest.raises(UserError, match=r"manifest.jsonl: not a file; convert records"):
        convert(sources, tmp_path / "out", generator(checkpoint), 0)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.jsonl"]


def test_an_empty_output_is_made_again(checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), 0)
    first = (out / "photo0.dng").read_bytes()
    (out / "photo0.dng").write_bytes(b"")  # cut by something else than convert
    assert convert(sources, out, generator(checkpoint), 0) == (1, 0)
    assert (out / "photo0.dng").read_bytes() == first


def test_an_out_folder_that_cannot_be_made_names_the_option(checkpoint, tmp_path, capsys):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    assert cli.main(["convert", str(sources[0]), "--checkpoint", str(checkpoint), "--out",
                     str(sources[0] / "sub"), "--cpu"]) == 2
    assert capsys.readouterr().err == (f"error: --out {sources[0] / 'sub'}: cannot make this "
                                       "folder (Not a directory)\n")


@pytest.mark.parametrize("guide", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                   np.zeros((8, 8, 3), np.float32)])
def test_a_guide_that_is_not_8_bit_rgb_is_refused_by_the_api(checkpoint, guide):
    with pytest.raises(ValueError, match=r"expected an RGB guide \(h, w, 3\) uint8, got shape"):
        generator(checkpoint).generate_from_guide(guide, seed=0)


def test_info_names_a_preview_folder_that_cannot_be_made(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert cli.main(["info", str(tmp_path / "x.dng"), "--preview",
                     str(tmp_path / "afile" / "sub")]) == 2
    assert capsys.readouterr().err == (f"error: --preview {tmp_path / 'afile' / 'sub'}: cannot "
                                       "make this folder (Not a directory)\n")


def test_batches_of_tiles_and_photos_give_the_same_raw_up_to_1_in_65535(checkpoint, tmp_path):
    """Tiles of one photo and of several go through the model together: the 16-bit output
    does not depend on the batch size, up to float rounding (at most 1 in 65535)."""
    sources = photos(tmp_path / "in")  # three sizes: tiles of three sizes
    outputs = {}
    for batch_size, workers in ((1, 0), (3, 1), (16, 0)):
        out = tmp_path / f"b{batch_size}"
        convert(sources, out, generator(checkpoint, tile=16, overlap=4, batch_size=batch_size),
                seed=5, fmt="npy", workers=workers)
        outputs[batch_size] = [np.round(read_packed(out / f"photo{i}.npy") * 65535)
                               for i in range(3)]
    for batch_size in (3, 16):
        for one, many in zip(outputs[1], outputs[batch_size]):
            assert one.shape == many.shape and np.abs(one - many).max() <= 1


@pytest.mark.parametrize("sampler", ["dpmpp2m", "unipc"])
def test_a_multistep_sampler_is_recorded_and_samples_otherwise_than_ddim(checkpoint, tmp_path,
                                                                         sampler):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    results = {}
    for k, name in enumerate(("ddim", sampler, sampler)):
        out = tmp_path / f"{name}{k}"
        convert(sources, out, generator(checkpoint, steps=4, sampler=name), 0, fmt="npy")
        results.setdefault(name, []).append(read_packed(out / "photo0.npy"))
        record = json.loads(merge_manifests(out).read_text())
        assert (record["sampler"], record["steps"]) == (name, 4)
    assert np.array_equal(*results[sampler])  # deterministic
    assert np.abs(results[sampler][0] - results["ddim"][0]).max() > 1e-4


def test_bf16_autocast_samples_close_to_float32(checkpoint, tmp_path):
    from rawdiffusion.images import halve_area, read_rgb

    guide = halve_area(read_rgb(photos(tmp_path / "in", sizes=((32, 48),))[0]))
    full = generator(checkpoint).generate_from_guide(guide, seed=1)
    half = generator(checkpoint, bf16=True).generate_from_guide(guide, seed=1)
    assert half.dtype == np.float32 and half.shape == full.shape
    assert 0 < np.abs(half - full).max() < 0.05  # bf16 rounds (8 bits of mantissa), no more


def test_a_rerun_with_another_sampler_steps_or_seed_redoes_the_photos(checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((32, 32),))
    out = tmp_path / "out"
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (1, 0)
    assert convert(sources, out, generator(checkpoint), 0, fmt="npy") == (0, 1)  # the same
    for gen, seed in ((generator(checkpoint, steps=3), 0),
                      (generator(checkpoint, steps=3, sampler="unipc"), 0),
                      (generator(checkpoint, steps=3, sampler="unipc"), 4)):
        assert convert(sources, out, gen, seed, fmt="npy") == (1, 0)
    record = json.loads(merge_manifests(out).read_text())
    assert (record["steps"], record["sampler"], record["seed"]) == (3, "unipc",
                                                                   derived_seed(4, 0))


def test_step_counts_a_sampler_cannot_take_are_refused_naming_the_argument(checkpoint):
    from rawdiffusion.errors import SettingError, SetupError
    from rawdiffusion.loading import load

    with pytest.raises(SetupError, match=r"^steps=1000: the unipc sampler takes 1 to 999 "
                                         r"steps$") as e:
        load(checkpoint, steps=1000, sampler="unipc")
    assert isinstance(e.value, SettingError) and (e.value.name, e.value.value) == ("steps", 1000)
    for steps in (0, 1001):
        with pytest.raises(SetupError, match=rf"^steps={steps}: the ddim sampler takes 1 to 1000"):
            load(checkpoint, steps=steps)
    assert load(checkpoint, steps=1000, sampler="dpmpp2m").steps == 1000


def test_generate_from_guides_wants_one_seed_per_guide(checkpoint):
    guide = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="2 guides but 1 seeds: one seed per guide"):
        generator(checkpoint).generate_from_guides([guide, guide], [0])


def test_a_damaged_output_is_made_again_by_its_recorded_size_and_digest(checkpoint, tmp_path):
    """The manifest records each output's size and SHA-256: a rerun redoes a photo whose
    output was cut or changed since (a full disk, another program), and only that photo."""
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), 0)
    first = {p.name: p.read_bytes() for p in out.glob("photo*")}
    record = json.loads(merge_manifests(out).read_text().splitlines()[0])
    assert record["files"]["photo0.dng"] == {"bytes": len(first["photo0.dng"]), "sha256":
                                             hashlib.sha256(first["photo0.dng"]).hexdigest()}
    assert record["files"].keys() == {"photo0.dng", "photo0.png"}
    (out / "photo0.dng").write_bytes(first["photo0.dng"][:1000])  # truncated
    changed = bytearray(first["photo1.png"])
    changed[-20] ^= 1  # the same size, another byte
    (out / "photo1.png").write_bytes(changed)
    assert convert(sources, out, generator(checkpoint), 0) == (2, 1)
    assert {p.name: p.read_bytes() for p in out.glob("photo*")} == first
    assert convert(sources, out, generator(checkpoint), 0) == (0, 3)


def test_records_of_older_versions_without_digests_still_count_their_outputs(checkpoint,
                                                                            tmp_path):
    sources = photos(tmp_path / "in", sizes=((32, 32), (32, 48)))
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), 0, figure=True)
    manifest = merge_manifests(out)
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert records[0]["files"].keys() == {"photo0.dng", "photo0.png", "photo0_compare.png"}
    manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "files"}) + "\n"
                                for r in records))
    (out / "photo1.dng").write_bytes(b"")  # an empty output: cut, made again
    assert convert(sources, out, generator(checkpoint), 0, figure=True) == (1, 1)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc/self/fd")
def test_a_full_disk_at_the_manifest_record_names_the_file(checkpoint, tmp_path, capsys,
                                                          monkeypatch):
    """The disk fills when convert appends a photo's record to its manifest part: one line
    naming the part file and saying the disk is full (it said only '[Errno 28] No space left
    on device'); a rerun with space converts the photo whose record was lost."""
    sources = photos(tmp_path / "in", sizes=((32, 48),))
    out = tmp_path / "out"
    real_write = os.write

    def full_at_the_manifest(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("manifest.part0.jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "write", full_at_the_manifest)
    args = ["convert", str(sources[0]), "--checkpoint", str(checkpoint), "--out", str(out),
            "--cpu"]
    assert cli.main(args) == 2
    part = out / "manifest.part0.jsonl"
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: {part}: record not appended, the disk is full (no space left on the device "
        f"of {out}); free space and rerun")
    monkeypatch.setattr(atomic.os, "write", real_write)
    assert cli.main(args) == 0
    assert "1 image(s) converted, 0 already done" in capsys.readouterr().out


def test_the_figure_shows_photo_rendering_and_raw_under_their_labels(checkpoint, tmp_path):
    """<name>_compare.png: a band of labels, then the photo halved (unchanged), the DNG as
    LibRaw renders it and the RAW preview, at the packed RAW's size; without a DNG (npy) the
    rendering's column is left out."""
    sources = photos(tmp_path / "in", sizes=((48, 64),))
    convert(sources, tmp_path / "dng", generator(checkpoint), 0, figure=True)
    convert(sources, tmp_path / "npy", generator(checkpoint), 0, fmt="npy", figure=True)
    photo = halve_area(np.asarray(Image.open(sources[0])))
    for fmt, labels in (("dng", [PHOTO, RENDERED, RAW_DATA]), ("npy", [PHOTO, RAW_DATA])):
        figure = np.asarray(Image.open(tmp_path / fmt / "photo0_compare.png"))
        band = label_band(labels, [32] * len(labels))
        assert band.shape[0] > 24  # a label of several lines at this width
        assert figure.shape == (band.shape[0] + 24, len(labels) * 32 + (len(labels) - 1) * GAP, 3)
        np.testing.assert_array_equal(figure[:band.shape[0]], band)
        np.testing.assert_array_equal(figure[band.shape[0]:, :32], photo)
