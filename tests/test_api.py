"""The public API: `import rawdiffusion as rd; gen = rd.load(); raw = gen(photo);
raw.write_dng(path)` from any folder, with the shipped checkpoint, and what it promises."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rawdiffusion as rd
from rawdiffusion import cli
from rawdiffusion.baselines import save_baseline
from rawdiffusion.diffusion import derived_seed
from rawdiffusion.images import halve_area
from rawdiffusion.io import read_raw
from rawdiffusion.prior import ColourMap

REPO = Path(__file__).resolve().parents[1]


def photo(height=48, width=64, seed=0) -> np.ndarray:
    """A smooth random photo: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    return np.array(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def gen():
    return rd.load(device="cpu")


def test_the_three_lines_run_verbatim_from_any_folder(tmp_path):
    np.save(tmp_path / "photo.npy", photo())
    code = "\n".join([
        "import numpy as np",
        "photo = np.load('photo.npy')",
        "import rawdiffusion as rd",
        "gen = rd.load()",
        "raw = gen(photo)",
        "raw.write_dng('out.dng')"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    raw = read_raw(tmp_path / "out.dng")
    assert raw.mosaic.shape == (48, 64) and (raw.make, raw.cfa) == ("GoPro", "RGGB")


def test_importing_rawdiffusion_imports_no_torch():
    code = "import sys, rawdiffusion; sys.exit(int('torch' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ,
                          "PYTHONPATH": str(REPO)}).returncode == 0


@pytest.mark.parametrize("size, mosaic", [((48, 64), (48, 64)), ((37, 51), (36, 50))])
def test_a_photo_of_h_x_w_gives_an_h_x_w_bayer_mosaic(gen, size, mosaic):
    raw = gen(photo(*size))
    assert isinstance(raw, rd.RawImage) and raw.mosaic.shape == mosaic
    assert raw.mosaic.dtype == np.uint16 and raw.packed.shape == (4, mosaic[0] // 2,
                                                                  mosaic[1] // 2)


def test_packed_is_what_the_dng_holds_and_gen_writes_what_convert_writes(gen, tmp_path):
    picture = photo(seed=1)
    raw = gen(picture, seed=3)
    raw.write_dng(tmp_path / "api.dng")
    back = read_raw(tmp_path / "api.dng")
    assert np.array_equal(back.mosaic, raw.mosaic)
    assert back.packed.dtype == np.float32 and np.array_equal(back.packed, raw.packed)
    assert 0 <= raw.packed.min() and raw.packed.max() <= 1
    Image.fromarray(picture).save(tmp_path / "photo.png")
    assert cli.main(["convert", str(tmp_path / "photo.png"), "--out", str(tmp_path / "out"),
                     "--seed", "3", "--cpu"]) == 0
    assert (tmp_path / "out" / "photo.dng").read_bytes() == (tmp_path / "api.dng").read_bytes()


def test_generate_on_a_batch_equals_each_photos_packed_raw(gen):
    """Image i of a batch draws the noise of derived_seed(seed, i), as convert's i-th photo;
    a RawImage holds whole raw numbers, so its packed RAW is the batch's, rounded."""
    photos = [photo(seed=2), photo(seed=3)]
    codes = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2)
    rounding = 0.5 / (gen.camera.white_level - max(gen.camera.black_level)) + 1e-6
    expected = [gen(photos[0], seed=5).packed,
                gen.camera.raw(gen.generate_from_guide(halve_area(photos[1]),
                                                       derived_seed(5, 1))).packed]
    for batch in (codes, codes.float() / 255):
        x = gen.generate(batch, seed=5)
        assert x.shape == (2, 4, 24, 32) and x.dtype == torch.float32
        assert x.device == torch.device("cpu")
        for got, want in zip(x, expected):
            np.testing.assert_allclose(got.numpy(), want, atol=rounding, rtol=0)


def test_a_pil_image_a_path_and_an_array_give_the_same_raw(gen, tmp_path):
    picture = photo(seed=4)
    Image.fromarray(picture).save(tmp_path / "photo.png")
    from_array = gen(picture).mosaic
    assert np.array_equal(gen(Image.fromarray(picture)).mosaic, from_array)
    assert np.array_equal(gen(tmp_path / "photo.png").mosaic, from_array)
    assert np.array_equal(gen(str(tmp_path / "photo.png")).mosaic, from_array)


def test_a_baseline_file_loads_as_a_generator_too(gen, tmp_path):
    weights = torch.zeros(4, 4, dtype=torch.float64)
    weights[1:] = 0.5 * torch.eye(3, 4, dtype=torch.float64)  # R -> R, G -> G1, B -> G2
    save_baseline(tmp_path / "map.json", "linear", gen.camera, ColourMap("linear", weights))
    baseline = rd.load(tmp_path / "map.json")
    raw = baseline(photo())
    assert raw.mosaic.shape == (48, 64) and baseline.steps is None
    x = baseline.generate(torch.from_numpy(photo()).permute(2, 0, 1)[None])
    np.testing.assert_allclose(x[0].numpy(), raw.packed, atol=0.5 / 16383 + 1e-6, rtol=0)


@pytest.mark.parametrize("arguments, words", [
    (dict(steps=0), "steps=0: the ddim sampler takes 1 to 1000 steps"),
    (dict(steps=1000, sampler="unipc"), "steps=1000: the unipc sampler takes 1 to 999 steps"),
    (dict(sampler="euler"), "sampler='euler': choose one of ddim, dpmpp2m, unipc"),
    (dict(tile=100), "tile=100: this network needs a multiple of 8, at least 16"),
    (dict(overlap=256), "overlap=256: must be below the tile size 256"),
    (dict(batch_size=0), "batch_size=0: must be an integer >= 1"),
    (dict(dtype=torch.float16), "dtype='float16': choose torch.float32 or torch.bfloat16"),
    (dict(iso=-100), "iso=-100: a whole number from 1 to 4294967295 (the DNG's EXIF ISO speed), "
                     "or draw (an ISO per image drawn from the training images')"),
    (dict(exposure=float("nan")), "exposure=nan: a number of EV from -64 to 64 (0: as "
                                  "generated, -2: a quarter of the light), or draw (one per "
                                  "image drawn from the training images')"),
    (dict(white_balance=(2, 0, 1)), "white_balance=(2, 0, 1): three white-balance gains R,G,B "
                                    "above 0 (the scene's as-shot multipliers, green 1; R/G and "
                                    "B/G from 1/1000 to 1000), or draw (one per image drawn from "
                                    "the training images')"),
    (dict(white_balance="auto"), "white_balance='auto': three white-balance gains R,G,B above 0 "
                                 "(the scene's as-shot multipliers, green 1; R/G and B/G from "
                                 "1/1000 to 1000), or draw (one per image drawn from the "
                                 "training images')")])
def test_load_names_the_argument_that_cannot_work(arguments, words):
    with pytest.raises(rd.SettingError) as e:
        rd.load(device="cpu", **arguments)
    assert str(e.value) == words and e.value.name == next(iter(arguments))


@pytest.mark.parametrize("call, words", [
    (lambda gen: gen(np.zeros((8, 8), np.uint8)), "photo: an array of shape (8, 8) and dtype "
                                                  "uint8; expected (H, W, 3) uint8 sRGB codes"),
    (lambda gen: gen(np.zeros((1, 8, 3), np.uint8)), "photo: 8x1 pixels; at least 2x2"),
    (lambda gen: gen([1, 2, 3]), "photo: a list; expected an (H, W, 3) uint8 array"),
    (lambda gen: gen(photo(), seed=-1), "seed=-1: must be an integer >= 0"),
    (lambda gen: gen.generate(torch.zeros(1, 4, 8, 8)), "batch: a tensor of shape (1, 4, 8, 8)"),
    (lambda gen: gen.generate(torch.full((1, 3, 8, 8), 255.0)),
     "batch: float values from 255 to 255; expected photos in [0, 1]")])
def test_a_call_names_the_argument_that_cannot_be_used(gen, call, words):
    with pytest.raises(rd.SettingError) as e:
        call(gen)
    assert str(e.value).startswith(words)


def test_convert_and_the_demo_default_to_the_loaders_settings():
    """One place defines the defaults (settings.DEFAULTS): rd.load's and the commands'."""
    parser = cli.build_parser()
    convert = parser.parse_args(["convert", "photo.png", "--out", "out"])
    assert (convert.steps, convert.sampler, convert.tile, convert.overlap, convert.batch_size,
            convert.seed, convert.bf16, convert.iso, convert.exposure, convert.white_balance) == (
        rd.DEFAULTS.steps, rd.DEFAULTS.sampler, rd.DEFAULTS.tile, rd.DEFAULTS.overlap,
        rd.DEFAULTS.batch_size, rd.DEFAULTS.seed, False, None, 0.0, None)
    assert parser.parse_args(["demo"]).steps == rd.DEFAULTS.steps == 1
    assert rd.DEFAULTS == rd.Settings(steps=1, sampler="ddim", tile=256, overlap=64,
                                      batch_size=1, seed=0, dtype="float32", iso=None,
                                      exposure=0.0, white_balance=None)
    noisy = parser.parse_args(["convert", "photo.png", "--out", "out", "--iso", "draw",
                               "--exposure", "-2"])
    assert (noisy.iso, noisy.exposure) == ("draw", -2.0)
    assert parser.parse_args(["convert", "p.png", "--out", "o", "--iso", "1600"]).iso == 1600
    relit = parser.parse_args(["convert", "p.png", "--out", "o", "--white-balance", "2.1,1,1.6"])
    assert relit.white_balance == (2.1, 1.0, 1.6)
    assert parser.parse_args(["convert", "p.png", "--out", "o", "--white-balance",
                              "draw"]).white_balance == "draw"


# The weights of the shipped checkpoint as trained (SHA-256 over names, dtypes and bytes):
# storing its noise model and white balances (rawdiffusion export --calibrate) left them as
# they were (the same digest as the run's plain export).
SHIPPED_WEIGHTS = "dfa23304aad3299ca5446a1c3d6c47175b981131ed8e55edb02cacfb81b0df54"


def test_the_shipped_model_has_a_noise_model_and_its_weights_unchanged(gen):
    import hashlib

    from rawdiffusion.checkpoint import load_checkpoint

    state = load_checkpoint(rd.loading.shipped_checkpoint())
    digest = hashlib.sha256()
    for name in sorted(state["model"]):
        value = state["model"][name].contiguous()
        digest.update(name.encode() + str(value.dtype).encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    assert digest.hexdigest() == SHIPPED_WEIGHTS and state["ema"] is None
    noise = gen.camera.noise  # calibrated from the Fusion front DNG, the camera's training image
    assert noise.isos == (100.0,) and noise.iso_range == (100.0, 100.0)
    assert noise.shot == pytest.approx((1.751e-4, 1.546e-4, 1.523e-4, 1.852e-4), rel=1e-3)
    raw = rd.load(device="cpu", iso=100)(photo(), seed=1)
    assert raw.iso == 100 and raw.noise_profile[0] == pytest.approx((1.751e-4, 1.731e-7),
                                                                   rel=1e-3)
    assert not np.array_equal(raw.mosaic, gen(photo(), seed=1).mosaic)
