"""The figures: labels above the images, and a comparison rendering in which a faithful RAW
looks like its photo (LibRaw's auto-brightness off)."""

import dataclasses

import numpy as np
import pytest

from conftest import synthetic_raw
from rawdiffusion.figures import (BACKGROUND, GAP, label_band, labelled, render_for_comparison,
                                  table, wrapped)
from rawdiffusion.io import render_srgb, write_dng


def text_pixels(band: np.ndarray) -> int:
    """Pixels of a band brighter than its background: the drawn text."""
    return int((band.max(axis=-1) > BACKGROUND + 100).sum())


def test_a_label_wraps_to_its_column_and_the_band_fits_the_longest():
    label = "the RAW data itself, as the sensor records it: no white balance, gamma 1/5"
    assert len(wrapped(label, 1000)) == 1
    lines = wrapped(label, 120)
    assert len(lines) > 2 and " ".join(lines) == label
    wide, narrow = label_band(["photo", label], [1000, 1000]), label_band(["photo", label],
                                                                          [120, 120])
    assert wide.shape[1] == 2000 + GAP and narrow.shape[1] == 240 + GAP
    assert narrow.shape[0] > wide.shape[0]  # more lines, a taller band
    # each label stays within its column: the gap between the columns holds no text
    assert text_pixels(narrow[:, 120:120 + GAP]) == 0
    assert text_pixels(narrow[:, :120]) > 0 and text_pixels(narrow[:, 120 + GAP:]) > 0


def test_labelled_images_sit_whole_under_their_band():
    rng = np.random.default_rng(0)
    cells = [rng.integers(0, 256, (30, w, 3), dtype=np.uint8) for w in (40, 50)]
    figure = labelled(cells, ["photo", "the DNG"])
    band = label_band(["photo", "the DNG"], [40, 50])
    assert figure.shape == (band.shape[0] + 30, 40 + GAP + 50, 3)
    assert text_pixels(figure[:band.shape[0]]) > 0
    np.testing.assert_array_equal(figure[band.shape[0]:, :40], cells[0])
    np.testing.assert_array_equal(figure[band.shape[0]:, 40 + GAP:], cells[1])


def test_a_table_scales_rows_to_one_height_and_pads_columns_to_the_widest():
    rows = [[np.zeros((20, 30, 3), np.uint8), np.zeros((10, 10, 3), np.uint8)],
            [np.zeros((40, 40, 3), np.uint8), np.zeros((20, 40, 3), np.uint8)]]
    figure = table(rows, ["a", "b"], height=20)
    band = label_band(["a", "b"], [30, 40])  # columns: max(30, 20) and max(20, 40) wide
    assert figure.shape == (band.shape[0] + 2 * (GAP + 20), 30 + GAP + 40, 3)


def test_a_faithful_raw_renders_as_bright_as_its_photo(tmp_path):
    """The training guides' situation: a RAW image that clips more than 1 % of its pixels (the
    left half here, as each shipped-model training file clips 1.2 to 4.7 %) is rendered by
    LibRaw's defaults (auto-brightness at scale 1) into a photo; a generator faithful to that
    RAW, given the photo's unclipped right half, makes exactly that half of the RAW. The
    figures' rendering of it matches the photo's half within 3 % in mean code, where LibRaw's
    default rendering brightens it (it picks a gain that clips 1 % of this image)."""
    scene = synthetic_raw(height=64, width=128, black=(64, 64, 64, 64))
    mosaic = scene.mosaic.astype(float)
    mosaic[:, 64:] = 64 + (mosaic[:, 64:] - 64) * 0.4  # a darker right half, nothing clipped
    mosaic[:, :64] = scene.white_level  # a clipped left half
    raw = dataclasses.replace(scene, mosaic=np.round(mosaic).astype(np.uint16))
    photo = render_srgb(raw)[:, 64:].astype(float)  # as prepare renders a training guide
    half = dataclasses.replace(raw, mosaic=raw.mosaic[:, 64:].copy(), path="")
    path = tmp_path / "half.dng"
    write_dng(path, half)
    inside = np.s_[4:-4, 4:-4]  # away from the cut, where demosaicking saw other neighbours
    ratio = render_for_comparison(path)[inside].mean() / photo[inside].mean()
    assert ratio == pytest.approx(1, abs=0.03)
    assert render_srgb(dataclasses.replace(half, path=str(path)))[inside].mean() \
        / photo[inside].mean() > 1.1

