import json

import numpy as np
import pytest

from rawdiffusion import unprocess as upi
from rawdiffusion.camera import Camera

# A made-up camera in the checkpoint's `camera` format, with a plausible DNG ColorMatrix.
CAMERA = {
    "cfa": "RGGB", "make": "Acme", "model": "X1", "black_level": [64.0] * 4,
    "white_level": 1023.0, "wb": [2.0, 1.0, 1.5],
    "color_matrix": [[0.70, -0.15, -0.05], [-0.45, 1.25, 0.20], [-0.08, 0.18, 0.60]],
}

PARAMS = {"generic": upi.generic_params(), "camera": upi.camera_params(Camera(**CAMERA))}


def process(packed: np.ndarray, params: upi.UnprocessParams) -> np.ndarray:
    """The oracle: packed RAW -> sRGB by the pipeline `unprocess` inverts (Brooks'
    process.py `process`, plus the brightening and tone curve that they leave to their loss).

    packed: (4, h, w) in [0, 1], channels R, G1, G2, B.
    Returns (h, w, 3) float64 in [0, 1].

    Steps: the greens averaged (no demosaicking: one RGB pixel per packed site); gains
    [red_gain, 1, blue_gain] * rgb_gain; clip to [0, 1], as Brooks do before demosaicking,
    so that saturated RAW (which `safe_invert_gains` kept near 1) renders white instead of
    taking the white-balance tint; colour correction with the inverse of
    `params.rgb_to_cam`; clip to [0, 1]; gamma compression x ** (1 / 2.2); smoothstep.
    """
    packed = np.asarray(packed, dtype=np.float64)
    if packed.ndim != 3 or packed.shape[0] != 4:
        raise ValueError(f"expected packed RAW (4, h, w), got shape {packed.shape}")
    r, g1, g2, b = packed
    cam = np.stack([r, (g1 + g2) / 2, b], axis=-1)
    gains = np.array([params.red_gain, 1.0, params.blue_gain]) * params.rgb_gain
    cam = np.clip(cam * gains, 0.0, 1.0)
    x = np.clip(cam @ np.linalg.inv(params.rgb_to_cam).T, 0.0, 1.0)
    x = np.maximum(x, 1e-8) ** (1.0 / upi.GAMMA)
    return upi.smoothstep(x)


@pytest.mark.parametrize("name", PARAMS)
def test_round_trip_float(name):
    params = PARAMS[name]
    rgb = np.random.default_rng(0).uniform(0.05, 0.7, size=(16, 24, 3))
    back = process(upi.unprocess(rgb, params), params)
    np.testing.assert_allclose(back, rgb, atol=1e-5)


@pytest.mark.parametrize("name", PARAMS)
def test_round_trip_uint8_image(name):
    params = PARAMS[name]
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([13 + 165 * x / 47, 13 + 165 * y / 31, 100 + 40 * np.sin(x * y / 50)], -1)
    rgb = rgb.round().astype(np.uint8)
    back = process(upi.unprocess(rgb, params), params)
    np.testing.assert_allclose(back * 255, rgb, atol=1e-3)


def test_tone_curve_golden_and_inverse():
    assert upi.smoothstep(np.array(0.5)) == pytest.approx(0.5)
    assert upi.smoothstep(np.array(0.25)) == pytest.approx(0.15625)
    # 0.5 - sin(asin(0.5) / 3) = 0.5 - sin(pi / 18)
    assert upi.inverse_smoothstep(np.array(0.25)) == pytest.approx(0.3263518223330697, abs=1e-12)
    y = np.linspace(0, 1, 101)
    np.testing.assert_allclose(upi.smoothstep(upi.inverse_smoothstep(y)), y, atol=1e-12)
    np.testing.assert_allclose(upi.inverse_smoothstep(upi.smoothstep(y)), y, atol=1e-7)


def test_generic_params_golden():
    p = upi.generic_params()
    assert p.rgb_gain == pytest.approx(1.25)
    assert (p.red_gain, p.blue_gain) == (pytest.approx(2.15), pytest.approx(1.7))
    m = np.array(p.xyz_to_cam)
    assert m[0, 0] == pytest.approx(0.753075)   # (1.0234 + 0.4913 + 0.838 + 0.6596) / 4
    assert m[0, 1] == pytest.approx(-0.205475)  # (-0.2969 - 0.0541 - 0.263 - 0.2079) / 4
    assert m[2, 2] == pytest.approx(0.6052)     # (0.6406 + 0.7183 + 0.5438 + 0.5181) / 4


@pytest.mark.parametrize("name", PARAMS)
def test_rgb_to_cam(name):
    params = PARAMS[name]
    m = params.rgb_to_cam
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    assert np.linalg.cond(m) < 10  # well conditioned: the oracle's inverse of it is exact
    # The same as Brooks' computation with their typed sRGB -> XYZ, up to its rounding.
    brooks_rgb2xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                               [0.2126729, 0.7151522, 0.0721750],
                               [0.0193339, 0.1191920, 0.9503041]])
    ref = np.array(params.xyz_to_cam) @ brooks_rgb2xyz
    np.testing.assert_allclose(m, ref / ref.sum(axis=1, keepdims=True), atol=2e-3)


@pytest.mark.parametrize("name", PARAMS)
def test_grey_undoes_white_balance(name):
    params = PARAMS[name]
    for level in (0.2, 0.5, 0.7):
        r, g1, g2, b = upi.unprocess(np.full((2, 2, 3), level), params)[:, 0, 0]
        assert g1 == g2
        assert r / g1 == pytest.approx(1 / params.red_gain, rel=1e-5)
        assert b / g1 == pytest.approx(1 / params.blue_gain, rel=1e-5)
        linear = upi.inverse_smoothstep(np.array(level)) ** 2.2
        assert g1 == pytest.approx(linear / params.rgb_gain, rel=1e-5)


def test_highlights_stay_saturated_and_render_white():
    params = upi.generic_params()
    packed = upi.unprocess(np.full((2, 2, 3), 255, np.uint8), params)
    np.testing.assert_array_equal(packed, 1.0)  # the safe gains do not dim white
    np.testing.assert_allclose(process(packed, params), 1.0, atol=1e-12)


def test_safe_gains_plain_below_inflection_relaxed_above():
    params = upi.generic_params()
    gains = np.array([1 / 2.15, 1, 1 / 1.7]) / 1.25
    np.testing.assert_allclose(upi.safe_invert_gains(np.full(3, 0.9), params), 0.9 * gains)
    np.testing.assert_allclose(upi.safe_invert_gains(np.ones(3), params), 1.0)
    mid = upi.safe_invert_gains(np.full(3, 0.95), params) / 0.95  # mask = 0.25
    np.testing.assert_allclose(mid, 0.25 + 0.75 * gains)


def test_camera_params_from_metadata():
    p = upi.camera_params(Camera(**{**CAMERA, "wb": [4.0, 2.0, 3.0]}))  # green gain not 1
    assert (p.rgb_gain, p.red_gain, p.blue_gain) == (1.0, 2.0, 1.5)
    np.testing.assert_array_equal(np.array(p.xyz_to_cam), CAMERA["color_matrix"])


@pytest.mark.parametrize("missing", ["color_matrix", "wb"])
def test_camera_params_refuses_incomplete_camera(missing):
    with pytest.raises(ValueError, match="Acme X1 has none: use --kind upi"):
        upi.camera_params(Camera(**{**CAMERA, missing: None}))
    with pytest.raises(ValueError, match="Acme X1"):
        upi.camera_params(Camera(**{k: v for k, v in CAMERA.items() if k != missing}))


def test_output_shape_dtype_range():
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    packed = upi.unprocess(rgb, upi.generic_params())
    assert packed.shape == (4, 5, 7) and packed.dtype == np.float32
    assert packed.min() >= 0.0 and packed.max() <= 1.0
    np.testing.assert_array_equal(packed[1], packed[2])
    out = process(packed, upi.generic_params())
    assert out.shape == (5, 7, 3) and out.min() >= 0.0 and out.max() <= 1.0


def test_unprocess_is_deterministic():
    rgb = np.random.default_rng(2).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    params = upi.generic_params()
    np.testing.assert_array_equal(upi.unprocess(rgb, params), upi.unprocess(rgb, params))


def test_wrong_shapes_raise():
    params = upi.generic_params()
    with pytest.raises(ValueError):
        upi.unprocess(np.zeros((4, 4), np.uint8), params)
    with pytest.raises(ValueError):
        process(np.zeros((3, 4, 4)), params)
    with pytest.raises(ValueError):
        upi.UnprocessParams(xyz_to_cam=np.eye(2), rgb_gain=1, red_gain=2, blue_gain=1.5)


def test_params_json_round_trip():
    for params in PARAMS.values():
        d = json.loads(json.dumps(params.to_dict()))
        assert upi.UnprocessParams.from_dict(d) == params
        assert isinstance(d["xyz_to_cam"][0][0], float)
