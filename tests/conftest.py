"""Shared fixtures: synthetic RAW images, and the real files of ../shared/data/raw.

Tests that need the real files skip with a visible reason when they are absent, and fail
instead when RAWDIFFUSION_REQUIRE_SHARED=1 (CI sets it).
"""

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from rawdiffusion.io import RawImage

SHARED_RAW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "raw"

# What ../shared/data/raw/README.md says of each file: CFA order, black, white, width, height.
SHARED_FILES = {
    "dng/gopro_hero6_GOPR0024.dng": ("RGGB", 0, 16383, 4000, 3000),
    "dng/gopro_fusion_front_GPFR7066.dng": ("RGGB", 0, 16383, 3104, 3000),
    "dng/gopro_fusion_back_GPBK7066.dng": ("RGGB", 0, 16383, 3104, 3000),
    "bayer/nikon_d750_rose_768x512_rggb.raw": ("RGGB", 600, 15520, 768, 512),
    "bayer/infiniteisp_indoor1_2592x1536_8bit_grbg.raw": ("GRBG", 12, 255, 2592, 1536),
    "bayer/infiniteisp_outdoor1_2592x1536_8bit_grbg.raw": ("GRBG", 12, 255, 2592, 1536),
    "bayer/infiniteisp_outdoor2_2592x1536_8bit_grbg.raw": ("GRBG", 12, 255, 2592, 1536),
    "bayer/infiniteisp_outdoor3_2592x1536_8bit_grbg.raw": ("GRBG", 12, 255, 2592, 1536),
    "bayer/infiniteisp_outdoor4_2592x1536_8bit_grbg.raw": ("GRBG", 12, 255, 2592, 1536),
    "bayer/infiniteisp_colorchecker_1920x1080_12bit_bggr.raw": ("BGGR", 0, 4095, 1920, 1080),
    "bayer/openisp_chart_1920x1080_10bit_rggb.raw": ("RGGB", 0, 1023, 1920, 1080),
    "bayer/nokia_n900_2592x304_10bit_grbg.pgm": ("GRBG", 25, 1023, 2592, 304),
}


@pytest.fixture(autouse=True)
def logging_left_as_found():
    """A Hydra job run in this process configures logging: a handler writing to the sys.stdout
    of that test, closed after it, and the root at INFO. Each test leaves the root logger as it
    found it (pytest's own handlers are pytest's to manage)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


def require_shared(path: Path = SHARED_RAW) -> Path:
    """`path` inside ../shared/data/raw, or skip (fail under RAWDIFFUSION_REQUIRE_SHARED=1)."""
    if not path.exists():
        reason = f"real RAW data absent: {path} (../shared/data/raw beside the checkout)"
        if os.environ.get("RAWDIFFUSION_REQUIRE_SHARED") == "1":
            pytest.fail(reason + " but RAWDIFFUSION_REQUIRE_SHARED=1")
        pytest.skip(reason)
    return path


@pytest.fixture
def shared_raw() -> Path:
    return require_shared()


def synthetic_raw(cfa="RGGB", height=96, width=128, seed=0, white=4095,
                  black=(64, 65, 66, 67), wb=(2.0, 1.0, 1.5), matrix=True) -> RawImage:
    """A smooth random scene mosaicked in `cfa`: a RawImage with every field set."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.05, 0.9, (height // 16 + 2, width // 16 + 2))
    smooth = np.kron(coarse, np.ones((16, 16)))[:height, :width]
    noise = rng.normal(0, 0.01, (height, width))
    levels = np.asarray(black, dtype=float).reshape(2, 2)
    tile_black = np.tile(levels, (height // 2 + 1, width // 2 + 1))[:height, :width]
    mosaic = np.clip(smooth + noise, 0, 1) * (white - tile_black) + tile_black
    cm = np.array([[1.1, -0.3, -0.1], [-0.4, 1.3, 0.1], [-0.05, 0.15, 0.6]]) if matrix else None
    return RawImage(mosaic=np.round(mosaic).astype(np.uint16), cfa=cfa, black_level=black,
                    white_level=white, wb=wb, color_matrix=cm, make="Testmaker",
                    model="Synthetic 1")
