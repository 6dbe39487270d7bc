"""A photo pipeline calibrated from RAW + photo pairs and undone before generation
(rawdiffusion pipeline fit, convert --pipeline, rd.load(pipeline=...)): a known transform of
the canonical rendering is recovered, a photo turned and cropped still pairs with its RAW, the
identity stays the identity, the file round-trips, generation undoes it before the colour
map, manifests record it, and bad input is one line."""

import hashlib
import json
import re

import numpy as np
import pytest
import torch

import rawdiffusion as rd
from rawdiffusion import cli
from rawdiffusion.convert import convert
from rawdiffusion.images import halve_area, read_rgb, write_png
from rawdiffusion.io import read_raw, write_dng
from rawdiffusion.loading import open_generator
from rawdiffusion.pipeline import KNOTS, Pipeline, PipelineError, fit_pipeline, load_pipeline, \
    save_pipeline
from rawdiffusion.processes import merge_manifests
from rawdiffusion.renderings import CANONICAL, render
from rawdiffusion.settings import Settings
from conftest import synthetic_raw
from test_white_balance import CAMERA, linear_baseline, photos

# A pipeline as a camera's JPEG engine might be: brighter mid-tones, more saturation, warmer.
KNOWN = Pipeline(torch.linspace(0, 1, KNOTS, dtype=torch.float64).pow(0.8).expand(3, KNOTS),
                 torch.tensor([[1.15, -0.1, -0.05], [-0.05, 1.1, -0.05], [-0.05, -0.1, 1.15]],
                              dtype=torch.float64),
                 torch.tensor([0.95, 0.9, 0.8], dtype=torch.float64), {})


def as_photo(pipeline: Pipeline, image: np.ndarray) -> np.ndarray:
    codes = torch.tensor(image).permute(2, 0, 1)[None]
    return pipeline.apply(codes)[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A synthetic DNG, its canonical rendering, and the KNOWN pipeline's photo of it."""
    root = tmp_path_factory.mktemp("pipeline")
    write_dng(root / "scene.dng", synthetic_raw(height=192, width=256, seed=3))
    canonical = render(read_raw(root / "scene.dng"), CANONICAL)
    write_png(root / "scene.png", as_photo(KNOWN, canonical))
    return root / "scene.dng", root / "scene.png", canonical


def test_a_known_pipeline_is_undone(pair):
    raw, photo, canonical = pair
    fitted = fit_pipeline([(raw, photo)], progress=lambda line: None)
    guide, target = halve_area(read_rgb(photo)), halve_area(canonical)
    undone = as_photo(fitted, guide)
    before = np.abs(guide.astype(int) - target).mean()
    after = np.abs(undone.astype(int) - target).mean()
    assert before > 8 and after < 1, (before, after)
    assert fitted.fitted_on["fit_psnr"] > fitted.fitted_on["identity_psnr"] + 15
    assert fitted.fitted_on["pairs"] == [[str(raw.resolve()), str(photo.resolve())]]


def test_a_photo_turned_and_cropped_still_pairs_with_its_raw(pair, tmp_path):
    raw, photo, canonical = pair
    turned = np.rot90(read_rgb(photo), -1)[3:-3, 2:-2]  # portrait, a few border pixels lost
    write_png(tmp_path / "turned.png", np.ascontiguousarray(turned))
    fitted = fit_pipeline([(raw, tmp_path / "turned.png")], progress=lambda line: None)
    undone = as_photo(fitted, halve_area(read_rgb(photo)))
    assert np.abs(undone.astype(int) - halve_area(canonical)).mean() < 2


def test_the_canonical_rendering_itself_gives_the_identity(pair, tmp_path):
    raw, _, canonical = pair
    write_png(tmp_path / "canonical.png", canonical)
    fitted = fit_pipeline([(raw, tmp_path / "canonical.png")], progress=lambda line: None)
    guide = halve_area(canonical)  # the colours the fit saw
    assert np.abs(as_photo(fitted, guide).astype(int) - guide).max() <= 1


def test_the_file_round_trips_and_names_its_digest(tmp_path):
    save_pipeline(tmp_path / "p.json", KNOWN)
    loaded = load_pipeline(tmp_path / "p.json")
    assert loaded.digest == hashlib.sha256((tmp_path / "p.json").read_bytes()).hexdigest()
    codes = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 8, 9),
                                                               dtype=np.uint8))
    assert torch.equal(loaded.apply(codes), KNOWN.apply(codes))
    assert torch.equal(loaded.apply(codes.float()), KNOWN.apply(codes))


@pytest.fixture
def files(tmp_path):
    save_pipeline(tmp_path / "p.json", KNOWN)
    return {"baseline": linear_baseline(tmp_path / "b.json", CAMERA),
            "pipeline": tmp_path / "p.json"}


def test_generation_undoes_the_pipeline_before_the_map_and_the_manifest_says_so(files,
                                                                                 tmp_path):
    sources = photos(tmp_path / "in", sizes=((48, 64), (40, 56)))
    plain = open_generator(files["baseline"], Settings(), torch.device("cpu"))
    gen = open_generator(files["baseline"], Settings(), torch.device("cpu"), files["pipeline"])
    guide = halve_area(read_rgb(sources[0]))
    direct = plain.generate_from_guides([as_photo(KNOWN, guide)], [5])[0]
    assert np.array_equal(gen.generate_from_guides([guide], [5])[0], direct)
    batch = torch.tensor(read_rgb(sources[0])).permute(2, 0, 1)[None]
    assert np.array_equal(gen.generate(batch, seed=0)[0].numpy(),
                          plain.generate_from_guides([as_photo(KNOWN, guide)],
                                                     [gen_seed(0)])[0])
    assert not np.array_equal(plain.generate_from_guides([guide], [5])[0], direct)
    # convert records the pipeline; a rerun with it skips, without it redoes
    out = tmp_path / "out"
    assert convert(sources, out, gen, seed=0) == (2, 0)
    records = [json.loads(line) for line in merge_manifests(out).read_text().splitlines()]
    assert {r["pipeline"] for r in records} == {load_pipeline(files["pipeline"]).digest}
    assert convert(sources, out, gen, seed=0) == (0, 2)
    assert convert(sources, out, plain, seed=0) == (2, 0)
    assert all(json.loads(line)["pipeline"] is None
               for line in merge_manifests(out).read_text().splitlines())
    # the Python API takes it too
    raw = rd.load(files["baseline"], pipeline=files["pipeline"])(read_rgb(sources[0]))
    assert np.array_equal(raw.packed, gen(read_rgb(sources[0])).packed)


def gen_seed(i):
    from rawdiffusion.diffusion import derived_seed
    return derived_seed(0, i)


def one_line(capsys, *args) -> str:
    assert cli.main([str(a) for a in args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1, err
    return err[0]


def test_a_photo_of_another_picture_is_one_line(pair, tmp_path, capsys):
    raw, _, _ = pair
    write_png(tmp_path / "small.png", np.zeros((50, 60, 3), dtype=np.uint8))
    line = one_line(capsys, "pipeline", "fit", "--pair", raw, tmp_path / "small.png", "--out",
                    tmp_path / "p.json")
    assert "small.png: 60 x 50 pixels, but its RAW renders 256 x 192: not the same picture" in line
    assert not (tmp_path / "p.json").exists()


def usable(**changes) -> dict:
    """A valid pipeline file's content (the identity) with `changes`."""
    return {"format": "rawdiffusion-pipeline/1", "knots": [list(np.linspace(0, 1, KNOTS))] * 3,
            "matrix": np.eye(3).tolist(), "gains": [1, 1, 1], **changes}


def test_the_identity_file_loads(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(usable()))
    assert torch.equal(load_pipeline(tmp_path / "p.json").matrix,
                       torch.eye(3, dtype=torch.float64))


def test_an_empty_pipeline_path_and_a_pipeline_as_checkpoint_are_one_line(files, tmp_path,
                                                                           capsys):
    with pytest.raises(PipelineError, match="pipeline: an empty path"):
        load_pipeline("")
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    line = one_line(capsys, "convert", photo, "--checkpoint", files["pipeline"], "--out",
                    tmp_path / "out")
    assert f"{files['pipeline']}: a photo pipeline file" in line and "give it as --pipeline" in line


@pytest.mark.parametrize("content, words", [
    (None, "no such file"), ("not json", "not a pipeline file"),
    ({"format": "other"}, "not a pipeline file"),
    ({"format": "rawdiffusion-pipeline/1", "knots": [[0.5] * KNOTS] * 3},
     "knots, matrix and gains"),
    ({"format": "rawdiffusion-pipeline/1", "knots": [list(np.linspace(1, 0, KNOTS))] * 3,
      "matrix": np.eye(3).tolist(), "gains": [1, 1, 1]}, "a tone curve that decreases"),
    ({"format": "rawdiffusion-pipeline/1", "knots": [list(np.linspace(0, 1, KNOTS))] * 3,
      "matrix": np.eye(3).tolist(), "gains": [1, 0, 1]}, "a gain not above 0"),
    ({"format": "rawdiffusion-pipeline/1", "knots": [list(np.linspace(0, 1, KNOTS))] * 2,
      "matrix": np.eye(3).tolist(), "gains": [1, 1, 1]}, "knots: (2, 16), not (3, 16)"),
    # values that parse but would make garbage: a black or one-colour photo, huge numbers
    (usable(knots=[[0.0] * KNOTS] * 3), "a tone curve that rises less than 0.05"),
    (usable(matrix=np.zeros((3, 3)).tolist()), "a determinant within 0.01 of 0"),
    (usable(matrix=(np.eye(3) * 1e20).tolist()), "a matrix with a value beyond 100"),
    (usable(gains=[1, 1, 1e308]), "a gain outside [0.01, 100]"),
    (usable(gains=[True, 1, 1]), "not true or false"),
    (usable(knots=[list(np.linspace(0, 1, KNOTS)), [0.5] * 5, [0.5] * 5]),
     "lists of numbers of shapes (3, 16), (3, 3) and (3,)"),
    # another of the project's files given as a pipeline
    ({"format": "rawdiffusion-baseline/1"}, "a baseline file, not a pipeline file; give it as "
                                            "--checkpoint"),
    (b"PK\x03\x04 a zip, as torch.save writes", "a checkpoint, not a pipeline file")])
def test_a_pipeline_file_that_cannot_be_used_is_one_line(files, tmp_path, capsys, content,
                                                         words):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(PipelineError, match=re.escape(words)):
        load_pipeline(path)
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    line = one_line(capsys, "convert", photo, "--checkpoint", files["baseline"], "--out",
                    tmp_path / "out", "--pipeline", path)
    assert str(path) in line and words in line
    assert not (tmp_path / "out").exists()


def test_pipeline_fit_writes_the_file_and_says_how_well_it_fits(pair, tmp_path, capsys):
    raw, photo, _ = pair
    assert cli.main(["pipeline", "fit", "--pair", str(raw), str(photo), "--out",
                     str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'p.json'}: fitted on 1 pair(s)")
    fitted = load_pipeline(tmp_path / "p.json").fitted_on
    assert f"against their canonical renderings {fitted['identity_psnr']:.2f} dB, undone " \
           f"{fitted['fit_psnr']:.2f} dB" in out
    # the same pairs give the same file
    assert cli.main(["pipeline", "fit", "--pair", str(raw), str(photo), "--out",
                     str(tmp_path / "again.json")]) == 0
    assert (tmp_path / "p.json").read_bytes() == (tmp_path / "again.json").read_bytes()


def test_a_mirrored_photo_pairs_with_its_raw_and_a_poor_fit_is_said(pair, tmp_path, caplog):
    """A RAW whose orientation flag mirrors it: its photo is the mirror of the rendering."""
    raw, photo, canonical = pair
    write_png(tmp_path / "mirrored.png", np.ascontiguousarray(read_rgb(photo)[::-1]))
    fitted = fit_pipeline([(raw, tmp_path / "mirrored.png")], progress=lambda line: None)
    undone = as_photo(fitted, halve_area(read_rgb(photo)))
    assert np.abs(undone.astype(int) - halve_area(canonical)).mean() < 1
    assert "pairs fit poorly" not in caplog.text
    noise = np.random.default_rng(0).integers(0, 256, canonical.shape, dtype=np.uint8)
    write_png(tmp_path / "other.png", noise)  # another picture of the same size
    fit_pipeline([(raw, tmp_path / "other.png")], progress=lambda line: None)
    assert "the pairs fit poorly" in caplog.text


@pytest.mark.parametrize("value", [123, ["p.json"]])
def test_load_names_a_pipeline_that_is_not_a_path(value):
    with pytest.raises(rd.SettingError) as e:
        rd.load(pipeline=value)
    assert e.value.name == "pipeline"


def test_pipeline_fit_refuses_what_would_weigh_double_lose_colour_or_replace_an_input(
        pair, tmp_path, capsys):
    raw, photo, canonical = pair
    line = one_line(capsys, "pipeline", "fit", "--pair", raw, photo, "--pair", raw, photo,
                    "--out", tmp_path / "p.json")
    assert "is given twice" in line
    grey = np.repeat(canonical.mean(-1, keepdims=True).astype(np.uint8), 3, -1)
    write_png(tmp_path / "grey.png", grey)
    line = one_line(capsys, "pipeline", "fit", "--pair", raw, tmp_path / "grey.png", "--out",
                    tmp_path / "p.json")
    assert "grey.png: a greyscale photo" in line
    before = photo.read_bytes()
    line = one_line(capsys, "pipeline", "fit", "--pair", raw, photo, "--out", photo)
    assert "one of the --pair files" in line and photo.read_bytes() == before
    line = one_line(capsys, "pipeline", "fit", "--pair", raw, photo, "--out",
                    tmp_path / "no" / "p.json")
    assert f"its folder {tmp_path / 'no'} does not exist" in line
    assert not list(tmp_path.glob("*.json"))


def test_the_poor_fit_warning_names_the_pair_that_fits_poorly(pair, tmp_path, caplog):
    raw, photo, canonical = pair
    noise = np.random.default_rng(1).integers(0, 256, canonical.shape, dtype=np.uint8)
    write_png(tmp_path / "other.png", noise)
    fit_pipeline([(raw, photo), (raw, tmp_path / "other.png")], progress=lambda line: None)
    assert "the pairs fit poorly" in caplog.text
    assert f"worst first: {tmp_path / 'other.png'} " in caplog.text
