"""The main job, `rawdiffusion demo`, with the shipped checkpoint: outputs, and colours kept."""

import json
from pathlib import Path

import numpy as np
import pytest

from rawdiffusion.demo import OVERVIEW_HEIGHT, PHOTOS, run_demo
from rawdiffusion.figures import (GAP, PHOTO, RAW_DATA, RENDERED, label_band,
                                  render_for_comparison)
from rawdiffusion.loading import load, shipped_checkpoint
from rawdiffusion.settings import DEFAULTS
from rawdiffusion.checkpoint import file_digest
from rawdiffusion.images import halve_area, read_rgb
from rawdiffusion.io import read_raw, render_srgb


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert run_demo(out) == 0
    return out


def test_demo_writes_every_output_and_a_manifest(demo_out):
    for photo in PHOTOS:
        stem = photo.rsplit(".", 1)[0]
        for name in (f"{stem}.dng", f"{stem}.png", f"{stem}_compare.png"):
            assert (demo_out / name).is_file()
    assert (demo_out / "overview.png").is_file()
    records = [json.loads(line) for line in (demo_out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == len(PHOTOS) and {r["steps"] for r in records} == {DEFAULTS.steps}


def test_the_manifest_names_the_installed_photos_and_its_parts_are_gone(demo_out):
    """Sources a user can find (scikit-image's own files, not a deleted temporary copy), the
    checkpoint's full SHA-256, and no manifest.part*.jsonl left beside the manifest."""
    records = [json.loads(line) for line in (demo_out / "manifest.jsonl").read_text().splitlines()]
    sources = [Path(r["source"]) for r in records]
    assert sorted(p.name for p in sources) == sorted(PHOTOS)
    assert all(p.is_file() and p.parent.name == "data" and p.parent.parent.name == "skimage"
               for p in sources)
    assert {r["checkpoint"] for r in records} == {file_digest(shipped_checkpoint())}
    assert len(records[0]["checkpoint"]) == 64
    assert sorted(p.name for p in demo_out.glob("manifest*")) == ["manifest.jsonl"]


def test_a_red_cup_stays_red_when_the_dng_is_rendered(demo_out):
    """The colour prior's purpose: the coffee photo's red cup and saucer, turned into the GoPro's
    RAW and rendered by LibRaw with the camera's own metadata, are still red (the paper's model
    shipped before rendered them grey-brown)."""
    photo = halve_area(_coffee())
    rendered = halve_area(render_srgb(read_raw(demo_out / "coffee.dng")))
    h, w = min(photo.shape[0], rendered.shape[0]), min(photo.shape[1], rendered.shape[1])
    photo, rendered = photo[:h, :w].astype(float), rendered[:h, :w].astype(float)
    red = (photo[..., 0] > 1.6 * photo[..., 1]) & (photo[..., 0] > 1.6 * photo[..., 2]) \
        & (photo[..., 0] > 80)
    assert red.mean() > 0.05  # the cup and saucer: a good part of the picture
    r, g, b = rendered[red].T
    still_red = (r > 1.3 * g) & (r > 1.3 * b)
    assert still_red.mean() > 0.8


def _photo(name: str) -> np.ndarray:
    from importlib import resources

    with resources.as_file(resources.files("skimage") / "data" / name) as path:
        return read_rgb(path)


def _coffee() -> np.ndarray:
    return _photo("coffee.png")


def test_the_overview_has_one_row_per_photo_under_the_column_labels(demo_out):
    overview = read_rgb(demo_out / "overview.png")
    def width(h, w):
        return round(w * OVERVIEW_HEIGHT / h)

    shapes = [_photo(name).shape[:2] for name in PHOTOS]
    widths = [max(width(h, w) for h, w in shapes)]  # the photos; the RAW has even sides
    widths += [max(width(h // 2 * 2, w // 2 * 2) for h, w in shapes)] * 2
    band = label_band([PHOTO, RENDERED, RAW_DATA], widths)
    assert overview.shape == (band.shape[0] + len(PHOTOS) * (GAP + OVERVIEW_HEIGHT),
                              sum(widths) + 2 * GAP, 3)
    np.testing.assert_array_equal(overview[:band.shape[0]], band)


@pytest.mark.parametrize("name", PHOTOS)
def test_the_figures_show_each_dng_as_bright_as_its_photo(demo_out, name):
    """The shipped model's DNGs, rendered as the figures render them (auto-brightness off),
    have their photos' mean 8-bit code within 4 % (measured: 0.998 to 1.022); LibRaw's default
    rendering brightened the cat and the rocket by 29 % and 25 %."""
    photo = _photo(name)
    rendered = render_for_comparison(demo_out / f"{Path(name).stem}.dng")
    assert rendered.mean() / photo[:rendered.shape[0], :rendered.shape[1]].mean() \
        == pytest.approx(1, abs=0.04)


def test_flat_patches_come_out_flat_without_halos_or_dark_borders():
    """The artefacts of the paper's model shipped before (embossed edges, wood grain in flat
    areas, darker border columns) are absent: a guide of three flat colours gives three flat
    RAW levels, edges that stay between them, and border columns like the interior."""

    gen = load(shipped_checkpoint(), device="cpu", steps=2)
    guide = np.zeros((64, 96, 3), np.uint8)
    guide[:, :48] = (200, 40, 30)  # red
    guide[:, 48:] = (60, 120, 200)  # blue
    guide[20:44, 20:76] = (128, 128, 128)  # a grey box across the edge
    x = gen.generate_from_guide(guide, seed=0).astype(np.float64)  # (4, 64, 96) in [0, 1]
    regions = {"red": x[:, 2:18, 2:46], "blue": x[:, 2:18, 50:94], "grey": x[:, 22:42, 22:74]}
    levels = np.stack([r.mean(axis=(1, 2)) for r in regions.values()])  # (3, 4)
    for name, region in regions.items():
        assert region.std(axis=(1, 2)).max() < 1e-3, name  # flat (1e-3: 1/4 % of the range)
    assert np.abs(levels[0] - levels[1]).max() > 0.1  # the colours differ in the RAW
    # edges between levels: no over- or undershoot beyond the flat levels (no halo)
    assert (x >= levels.min(axis=0)[:, None, None] - 2e-3).all()
    assert (x <= levels.max(axis=0)[:, None, None] + 2e-3).all()
    # the outermost 3 columns and rows are as flat as the interior
    for edge in (x[:, 2:18, :3], x[:, 2:18, -3:], x[:, :3, 2:46], x[:, -3:, 50:94]):
        assert edge.std(axis=(1, 2)).max() < 1e-3
    np.testing.assert_allclose(x[:, 2:18, :3].mean(axis=(1, 2)), levels[0], atol=1e-3)
    np.testing.assert_allclose(x[:, 2:18, -3:].mean(axis=(1, 2)), levels[1], atol=1e-3)
