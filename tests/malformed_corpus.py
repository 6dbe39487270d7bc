"""A corpus of malformed and unusual inputs for every command, and a runner that checks them.

    python tests/malformed_corpus.py OUT_DIR    # build the corpus in OUT_DIR, run it, print a table

`build(root)` writes the inputs into `root` (truncated and random RAW files, sidecars that lie,
broken photos, checkpoints and baseline files, bad options; a few good inputs among them) and
returns one `Case` per command line to run. `run_case` runs one (in this process through
`rawdiffusion.cli.main`; train.py and sample.py as subprocesses) and `problems` says what the
run got wrong against the issue's rule: no traceback, no exit status 0 on bad input, the error
in one line naming the file, no partial or temporary files, no good work lost.

The real RAW files of ../shared/data/raw are only read: truncated copies go into `root`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import logging
import os
import pickle
import re
import struct
import subprocess
import sys
import traceback
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_RAW = REPO.parent / "shared" / "data" / "raw"
SHARED_DNG = SHARED_RAW / "dng" / "gopro_fusion_back_GPBK7066.dng"  # the smallest of the three
PARTIAL_PATTERNS = ("*.part*", "*.tmp*", ".*tmp*")
SCRIPTS = ("sample.py", "train.py")
# how the package's own error lines begin (argparse: "rawdiffusion convert: error: ...")
OWN_PREFIXES = ("error: ", "skipped ", "  ", "rawdiffusion", "train.py", "sample.py")


@dataclass
class Case:
    """One command line of the corpus.

    name: unique id; command: "info", "prepare folder", "convert", "export", "baseline fit",
    "sample.py" or "train.py"; args: the argv after `rawdiffusion` (for the scripts: after the
    script); kind: which group of malformed inputs it belongs to.
    bad: True for bad input (must exit non-zero), False for good input (must exit 0), None
    for unusual input where either is right (0 with its outputs, or a one-line error).
    names: what the error must name (paths; for a sidecar dump its path without suffix, which
    both the dump and its sidecar start with; for an option its --name).
    out: the output folder, which must hold no partial or temporary files afterwards.
    expect: files the run must have written (good work, also beside bad inputs).
    absent: files that must not exist afterwards (outputs of bad inputs).
    """

    name: str
    command: str
    args: list[str]
    kind: str
    bad: bool | None = True
    names: tuple[str, ...] = ()
    out: str | None = None
    expect: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    @property
    def subprocess(self) -> bool:
        return self.command in SCRIPTS


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    traceback: bool = False


# ----------------------------------------------------------------------------- small writers

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(path: Path, samples: np.ndarray, colour_type: int) -> None:
    """A 16-bit PNG written by hand: samples (H, W, C) uint16."""
    h, w = samples.shape[:2]
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))


def claim_size(path: Path, width: int, height: int) -> None:
    """Rewrite a PNG's IHDR to claim width x height, with its CRC fixed."""
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@contextlib.contextmanager
def no_hang(seconds: int = 60):
    """Raise TimeoutError in the block after `seconds` (SIGALRM; main thread), so that a
    command that would block for good (opening a FIFO) fails its test instead of hanging the
    suite. Does nothing where there is no SIGALRM."""
    import signal

    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _random_bytes(n: int, seed: int) -> bytes:
    return _rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _photo(path: Path, h: int = 48, w: int = 64, seed: int = 0, **save) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, **save)
    return path


def _synthetic_raw(height=96, width=128, seed=0):
    """A smooth random Bayer scene (as tests/conftest.py's synthetic_raw)."""
    from rawdiffusion.io import RawImage

    rng = _rng(seed)
    coarse = rng.uniform(0.05, 0.9, (height // 16 + 2, width // 16 + 2))
    smooth = np.kron(coarse, np.ones((16, 16)))[:height, :width]
    mosaic = np.clip(smooth + rng.normal(0, 0.01, (height, width)), 0, 1) * (4095 - 64) + 64
    cm = np.array([[1.1, -0.3, -0.1], [-0.4, 1.3, 0.1], [-0.05, 0.15, 0.6]])
    return RawImage(mosaic=np.round(mosaic).astype(np.uint16), cfa="RGGB",
                    black_level=(64, 64, 64, 64), white_level=4095, wb=(2.0, 1.0, 1.5),
                    color_matrix=cm, make="Testmaker", model="Synthetic 1")


def _good_dng(path: Path, seed: int = 0) -> Path:
    from rawdiffusion.io import write_dng

    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, _synthetic_raw(seed=seed))
    return path


def _cfa_dng(path: Path, sensor: np.ndarray, black=0, white=4095, black_type="I", extra=()):
    """A minimal Bayer DNG written with tifffile: levels as given, unchecked."""
    import tifffile

    tags = [(33421, "H", 2, (2, 2)), (33422, "B", 4, b"\x00\x01\x01\x02"),
            (50706, "B", 4, b"\x01\x04\x00\x00"), (50717, "I", 1, white),
            (50714, black_type, 1, black), *extra]
    tifffile.imwrite(path, np.asarray(sensor, np.uint16), photometric=32803, extratags=tags,
                     metadata=None)
    return path


def bomb_dng(path: Path, width: int, height: int) -> Path:
    """A Bayer DNG of 64 x 64 pixels of data whose header declares width x height: a
    decompression bomb of a few KiB (ImageWidth and ImageLength rewritten in place)."""
    import tifffile

    _cfa_dng(path, _scene(64, 64))
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        where = {code: (tags[code].valueoffset, int(tags[code].dtype)) for code in (256, 257)}
    data = bytearray(path.read_bytes())
    for code, value in ((256, width), (257, height)):
        offset, dtype = where[code]
        fmt = "<H" if dtype == 3 else "<I"  # SHORT or LONG, little-endian as tifffile writes
        data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


def _scene(h=48, w=64, seed=0, low=100, high=4000):
    return _rng(seed).integers(low, high, (h, w)).astype(np.uint16)


# ----------------------------------------------------------------------------- the corpus

CAMERA = {"cfa": "RGGB", "make": "Acme", "model": "One", "black_level": [64.0, 65.0, 66.0, 67.0],
          "white_level": 4095.0, "wb": [2.0, 1.0, 1.5], "color_matrix": None}
NOISE = {"iso": 100.0, "shot": [1e-4] * 4, "read_gained": [1e-7] * 4, "read_fixed": [0.0] * 4,
         "isos": [100.0]}  # a camera's noise model (noise.NoiseModel)
TINY = dict(channels=16, channel_mult=(1, 2), num_blocks=1, attn_ds=(2,), guide="edsr",
            guide_channels=8, spade_hidden=8)
LINEAR_WEIGHTS = [[0.02, 0.01, 0.01, 0.03], [0.5, 0.1, 0.1, 0.02], [0.3, 0.6, 0.6, 0.2],
                  [0.05, 0.1, 0.1, 0.6]]
SIDECAR = {"width": 10, "height": 6, "dtype": "uint16 little-endian", "cfa_pattern": "RGGB",
           "black_level": 10, "white_level": 1023}


class _Payload:
    """Unpickling it would create a file: a checkpoint that must never be executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class Builder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.cases: list[Case] = []

    def dir(self, *parts) -> Path:
        d = self.root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def out(self, name: str) -> Path:
        """A fresh output folder path for a case (not created)."""
        return self.root / "out" / name

    def add(self, name, command, args, kind, **kw) -> Case:
        args = [str(a) for a in args]
        for k in ("names", "expect", "absent"):
            if k in kw:
                kw[k] = tuple(str(p) for p in kw[k])
        if "out" in kw and kw["out"] is not None:
            kw["out"] = str(kw["out"])
        case = Case(name, command, args, kind, **kw)
        assert name not in {c.name for c in self.cases}, name
        self.cases.append(case)
        return case


def build(root: Path) -> list[Case]:
    """Write the corpus into `root` (created) and return its cases."""
    b = Builder(root)
    b.root.mkdir(parents=True, exist_ok=True)
    good = _build_shared_inputs(b)
    _raw_files(b, good)
    _sidecars(b)
    _prepare(b, good)
    _photos(b, good)
    _checkpoints(b, good)
    _baseline_files(b, good)
    _baseline_fit(b, good)
    _options(b, good)
    _scripts(b, good)
    _not_files(b, good)
    _raw_limits(b, good)
    return b.cases


def _build_shared_inputs(b: Builder) -> dict:
    """The good inputs the bad ones are mixed with."""
    from rawdiffusion.baselines import save_baseline
    from rawdiffusion.prior import ColourMap
    from rawdiffusion.camera import Camera
    from rawdiffusion.checkpoint import save_checkpoint

    good = {}
    good["dng"] = _good_dng(b.dir("good") / "good.dng")
    good["photo"] = _photo(b.dir("good") / "photo.png", 48, 64, seed=1)
    import torch

    good["baseline"] = b.dir("good") / "linear.json"
    save_baseline(good["baseline"], "linear", Camera(**CAMERA),
                  ColourMap("linear", torch.tensor(LINEAR_WEIGHTS, dtype=torch.float64)))
    good["ckpt_state"] = _tiny_state()
    good["ckpt"] = b.dir("good") / "tiny.pt"
    save_checkpoint(good["ckpt"], good["ckpt_state"])
    good["dataset"] = _paired_dataset(b.dir("good") / "dataset")
    return good


def _tiny_state(**changes) -> dict:
    import torch

    from rawdiffusion.model import UNet

    torch.manual_seed(0)
    net = UNet(**TINY)
    state = {"step": 1, "config": {"model": {"preset": "small"}}, "model_config": net.config,
             "model": net.state_dict(), "ema": None, "camera": dict(CAMERA)}
    return {k: v for k, v in {**state, **changes}.items() if v is not ...}


def _paired_dataset(root: Path, images: int = 3, size=(24, 32)) -> Path:
    """A prepared paired dataset (layout.py) of random guides and a linear camera's RAW."""
    from rawdiffusion import bayer
    from rawdiffusion.datasets import layout
    from rawdiffusion.images import write_png

    rng = _rng(5)
    black, white = (64.0, 65.0, 66.0, 67.0), 4095.0
    splits = {"train": [], "test": []}
    for i in range(images):
        image, ids = f"img{i}", []
        for k in range(2):
            sample_id = f"{image}_{k}"
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            lin = (rgb / 255.0) ** 2.2
            x = np.einsum("hwj,cj->chw", lin, np.array(LINEAR_WEIGHTS)[1:].T) + 0.02
            (root / "raw").mkdir(parents=True, exist_ok=True)
            np.save(root / "raw" / f"{sample_id}.npy",
                    bayer.denormalise(np.clip(x, 0, 1), black, white))
            write_png(root / "rgb" / f"{sample_id}.png", rgb)
            ids.append(sample_id)
        layout.write_json(layout.image_meta_path(root, image), {
            "source": f"/nowhere/{image}.dng", "make": "Acme", "model": "One", "cfa": "RGGB",
            "black_level": list(black), "white_level": white, "wb": [2.0, 1.0, 1.5],
            "color_matrix": None, "illuminant": None, "color_matrix2": None,
            "illuminant2": None, "width": 2 * size[1], "height": 2 * size[0],
            "sample_size": list(size), "samples": ids})
        splits["test" if i == images - 1 else "train"].append(image)
    layout.finish(root, root.name, "paired", {"by": "tests/malformed_corpus.py"}, splits)
    return root


# ----------------------------------------------------------------------------- RAW files

def _bad_raw_files(b: Builder) -> dict[str, Path]:
    """name -> a bad RAW file (no sidecar) in its own folder."""
    import tifffile

    files = {}

    def put(name, filename, data: bytes | None = None) -> Path:
        path = b.dir("raw", name) / filename
        if data is not None:
            path.write_bytes(data)
        files[name] = path
        return path

    for suffix in (".dng", ".nef", ".cr2", ".arw", ".raw", ".pgm"):
        put(f"empty{suffix}", f"empty{suffix}", b"")
    for i, (suffix, n) in enumerate([(".dng", 1), (".dng", 100), (".dng", 65536),
                                     (".nef", 4096), (".cr2", 4096), (".arw", 4096),
                                     (".orf", 4096), (".raw", 4096), (".raf", 4096)]):
        put(f"random{n}{suffix}", f"random{suffix}", _random_bytes(n, seed=i))
    put("text.nef", "text.nef", b"not a raw file\n")
    put("tiff-header-only.dng", "x.dng", b"II*\x00")
    put("tiff-header-garbage.dng", "x.dng", b"II*\x00" + _random_bytes(2000, 11))
    put("bigendian-header-garbage.nef", "x.nef", b"MM\x00*" + _random_bytes(2000, 12))
    put("jpeg-named.dng", "photo.dng", _photo(b.root / "tmp" / "p.jpg").read_bytes())
    put("png-named.nef", "photo.nef", _photo(b.root / "tmp" / "p.png").read_bytes())
    tifffile.imwrite(put("grey-tiff.dng", "grey.dng"), _scene())
    tifffile.imwrite(put("rgb-tiff.dng", "rgb.dng"), np.zeros((16, 16, 3), np.uint8),
                     photometric="rgb")
    tifffile.imwrite(put("linear-dng.dng", "linear.dng"), np.zeros((8, 8, 3), np.uint16),
                     photometric=34892, extratags=[(50706, "B", 4, b"\x01\x04\x00\x00")],
                     metadata=None)
    xtrans = bytes([1, 1, 0, 1, 1, 2, 1, 1, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1,
                    1, 1, 2, 1, 1, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1, 2, 0, 1])
    tifffile.imwrite(put("xtrans.dng", "xtrans.dng"), np.zeros((36, 48), np.uint16),
                     photometric=32803,
                     extratags=[(33421, "H", 2, (6, 6)), (33422, "B", 36, xtrans),
                                (50706, "B", 4, b"\x01\x04\x00\x00"), (50717, "I", 1, 4095)],
                     metadata=None)
    _cfa_dng(put("zeros.dng", "zeros.dng"), np.zeros((48, 64)))
    _cfa_dng(put("black-above-white.dng", "levels.dng"), _scene(), black=5000, white=4095)
    _cfa_dng(put("black-equals-white.dng", "levels.dng"), _scene(), black=4095, white=4095)
    _cfa_dng(put("white-zero.dng", "levels.dng"), _scene(), black=0, white=0)
    _cfa_dng(put("black-nan.dng", "levels.dng"), _scene(), black=(0, 0), black_type="2I")
    _cfa_dng(put("black-negative.dng", "levels.dng"), _scene(), black=(-8, 1), black_type="2i")
    _cfa_dng(put("white-huge.dng", "levels.dng"), _scene(), white=4_000_000_000)
    good = _good_dng(b.root / "tmp" / "good.dng").read_bytes()
    for frac in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
        cut = max(1, int(len(good) * frac))
        put(f"truncated-synthetic-{frac}.dng", "cut.dng", good[:cut])
    for cut in (8, 16, 64, 256):
        put(f"truncated-synthetic-at-{cut}.dng", "cut.dng", good[:cut])
    # the first IFD's offset pointing past the end of the file
    patched = bytearray(good)
    patched[4:8] = struct.pack("<I" if good[:2] == b"II" else ">I", len(good) + 12345)
    put("ifd-offset-past-end.dng", "ifd.dng", bytes(patched))
    if SHARED_DNG.is_file():
        size = SHARED_DNG.stat().st_size
        with open(SHARED_DNG, "rb") as f:
            for label, cut in (("8B", 8), ("1KiB", 1024), ("64KiB", 65536),
                               ("1MiB", 1 << 20), ("25pct", size // 4), ("50pct", size // 2),
                               ("90pct", size * 9 // 10), ("99pct", size * 99 // 100)):
                f.seek(0)
                put(f"truncated-shared-{label}.dng", "gopro_cut.dng", f.read(cut))
    d = b.dir("raw", "directory.dng") / "folder.dng"
    d.mkdir(exist_ok=True)
    files["directory.dng"] = d
    files["missing.dng"] = b.dir("raw", "missing.dng") / "gone.dng"
    return files


def _raw_files(b: Builder, good: dict) -> None:
    bad = _bad_raw_files(b)
    b.bad_raw = bad
    for name, path in bad.items():
        kind = "truncated RAW" if name.startswith("truncated") or name.startswith("ifd") else (
            "zero-byte file" if name.startswith("empty") else "bad RAW file")
        b.add(f"info/{name}", "info", ["info", path], kind, names=[path])
    # one good and several bad in one command: the good one printed, every bad one named
    mixed = [bad["empty.dng"], good["dng"], bad["random4096.nef"],
             bad["truncated-synthetic-0.5.dng"]]
    b.add("info/mixed", "info", ["info", *mixed], "mixed good and bad",
          names=[mixed[0], mixed[2], mixed[3]])
    b.add("info/good", "info", ["info", good["dng"]], "good input", bad=False)
    pv = b.out("info-preview-good")
    b.add("info/preview-good", "info", ["info", good["dng"], "--preview", pv], "good input",
          bad=False, out=pv, expect=[pv / "good.png"])
    pv = b.out("info-preview-mixed")
    b.add("info/preview-mixed", "info", ["info", bad["empty.dng"], good["dng"], "--preview", pv],
          "mixed good and bad", names=[bad["empty.dng"]], out=pv, expect=[pv / "good.png"],
          absent=[pv / "empty.png"])


# ----------------------------------------------------------------------------- sidecars

def _dump(folder: Path, meta, mosaic: np.ndarray | None = None, suffix=".raw",
          text: str | None = None) -> Path:
    """A 10x6 uint16 dump d.raw with a sidecar d.json holding `meta` (or `text`)."""
    if mosaic is None:
        mosaic = _rng(0).integers(20, 1000, (6, 10)).astype("<u2")
    path = folder / f"d{suffix}"
    path.write_bytes(mosaic.tobytes())
    (folder / "d.json").write_text(text if text is not None else json.dumps(meta))
    return path


DROP = object()

SIDECAR_CHANGES = {  # name: changes to SIDECAR (DROP: key removed)
    "missing-width": dict(width=DROP), "missing-height": dict(height=DROP),
    "missing-cfa": dict(cfa_pattern=DROP), "missing-black": dict(black_level=DROP),
    "missing-white": dict(white_level=DROP),
    "width-string": dict(width="abc"), "width-float": dict(width=10.5),
    "width-list": dict(width=[10]), "width-object": dict(width={"w": 10}),
    "height-bool": dict(height=True), "cfa-number": dict(cfa_pattern=5),
    "cfa-rgbw": dict(cfa_pattern="RGBW"), "cfa-xtrans": dict(cfa_pattern="GGRGGBGGBGGR"),
    "black-string": dict(black_level="abc"), "white-list": dict(white_level=[1, 2]),
    "white-string": dict(white_level="abc"), "dtype-float32": dict(dtype="float32"),
    "dtype-number": dict(dtype=16), "wb-string": dict(wb="daylight"), "wb-object": dict(wb={}),
    "width-null": dict(width=None), "height-null": dict(height=None),
    "white-null": dict(white_level=None), "black-null": dict(black_level=None),
    "cfa-null": dict(cfa_pattern=None), "dtype-null": dict(dtype=None),
    "black-negative": dict(black_level=-1), "white-negative": dict(white_level=-5),
    "white-zero": dict(white_level=0), "white-huge": dict(white_level=1e300),
    "black-huge": dict(black_level=1e300), "width-huge": dict(width=10**12),
    "height-zero": dict(height=0), "width-negative": dict(width=-10),
    "black-equals-white": dict(black_level=1023), "black-above-white": dict(black_level=5000),
    "black-four-one-above": dict(black_level=[10, 10, 10, 2000]),
    "black-three": dict(black_level=[1, 2, 3]), "black-empty-list": dict(black_level=[]),
    "wb-empty": dict(wb=[]), "wb-one": dict(wb=[1]), "wb-two": dict(wb=[2, 1]),
    "wb-four": dict(wb=[2, 1, 1, 1.5]), "wb-zero": dict(wb=[2, 0, 1.5]),
    "wb-negative": dict(wb=[-2, 1, 1.5]), "wb-string-gain": dict(wb=["abc", 1, 1]),
    "size-too-wide": dict(width=11), "size-too-tall": dict(height=7),
    "size-too-small": dict(width=9), "size-uint8-half": dict(dtype="uint8"),
    "size-swapped": dict(width=6, height=10, cfa_pattern="RGGB", black_level=10,
                         white_level=1023, make="swap"),  # same bytes, other shape: valid
}
SIDECAR_TEXT = {  # name: raw sidecar text
    "black-nan": json.dumps({**SIDECAR, "black_level": "NaN"}).replace('"NaN"', "NaN"),
    "white-nan": json.dumps({**SIDECAR, "white_level": "NaN"}).replace('"NaN"', "NaN"),
    "white-infinity": json.dumps({**SIDECAR, "white_level": "I"}).replace('"I"', "Infinity"),
    "white-1e999": json.dumps({**SIDECAR, "white_level": "X"}).replace('"X"', "1e999"),
    "wb-nan": json.dumps({**SIDECAR, "wb": [2, "N", 1]}).replace('"N"', "NaN"),
    "empty-sidecar": "", "not-json": "width=10 height=6", "json-list": "[1, 2]",
    "json-string": '"RGGB"', "json-null": "null", "truncated-json": json.dumps(SIDECAR)[:30],
    "binary-sidecar": "\udcff\udcfe\x00\x01garbage",
    "deeply-nested": "[" * 100000 + "]" * 100000,
}


def _sidecars(b: Builder) -> None:
    for name, changes in SIDECAR_CHANGES.items():
        folder = b.dir("sidecar", name)
        meta = {k: v for k, v in {**SIDECAR, **changes}.items() if v is not DROP}
        path = _dump(folder, meta)
        bad = name != "size-swapped"
        b.add(f"info/sidecar-{name}", "info", ["info", path], "bad sidecar", bad=bad,
              names=[folder / "d"] if bad else ())
    for name, text in SIDECAR_TEXT.items():
        folder = b.dir("sidecar", name)
        path = _dump(folder, None, text="")
        side = folder / "d.json"
        if name == "binary-sidecar":
            side.write_bytes(b"\xff\xfe\x00\x01garbage")
        else:
            side.write_text(text)
        b.add(f"info/sidecar-{name}", "info", ["info", path], "bad sidecar", names=[folder / "d"])
    # the sidecar is a directory, beside a dump and beside a DNG
    folder = b.dir("sidecar", "directory-sidecar")
    (folder / "d.raw").write_bytes(_rng(0).integers(20, 1000, (6, 10)).astype("<u2").tobytes())
    (folder / "d.json").mkdir(exist_ok=True)
    b.add("info/sidecar-directory", "info", ["info", folder / "d.raw"], "bad sidecar",
          names=[folder / "d"])
    folder = b.dir("sidecar", "directory-sidecar-dng")
    _good_dng(folder / "d.dng")
    (folder / "d.json").mkdir(exist_ok=True)
    b.add("info/sidecar-directory-dng", "info", ["info", folder / "d.dng"], "bad sidecar",
          names=[folder / "d"])
    # a flat dump (decodes to no image) and PGMs
    folder = b.dir("sidecar", "flat-dump")
    path = _dump(folder, SIDECAR, mosaic=np.full((6, 10), 10, "<u2"))
    b.add("info/sidecar-flat-dump", "info", ["info", path], "bad sidecar", names=[folder / "d"])
    folder = b.dir("sidecar", "pgm-bad-header")
    (folder / "d.pgm").write_bytes(b"P6\n10 6\n1023\n" + bytes(120))
    (folder / "d.json").write_text(json.dumps(SIDECAR))
    b.add("info/sidecar-pgm-bad-header", "info", ["info", folder / "d.pgm"], "bad sidecar",
          names=[folder / "d"])
    folder = b.dir("sidecar", "pgm-size-mismatch")
    (folder / "d.pgm").write_bytes(b"P5\n12 6\n1023\n" + bytes(144))
    (folder / "d.json").write_text(json.dumps(SIDECAR))
    b.add("info/sidecar-pgm-size-mismatch", "info", ["info", folder / "d.pgm"], "bad sidecar",
          names=[folder / "d"])
    folder = b.dir("sidecar", "pgm-maxval-zero")
    (folder / "d.pgm").write_bytes(b"P5\n10 6\n0\n" + bytes(60))
    (folder / "d.json").write_text(json.dumps({**SIDECAR, "dtype": "uint8", "black_level": 0,
                                               "white_level": 255}))
    b.add("info/sidecar-pgm-maxval-zero", "info", ["info", folder / "d.pgm"], "bad sidecar",
          names=[folder / "d"])


# ----------------------------------------------------------------------------- prepare folder

PREPARE_BAD = ("empty.dng", "random4096.nef", "text.nef", "grey-tiff.dng", "linear-dng.dng",
               "xtrans.dng", "zeros.dng", "black-above-white.dng", "truncated-synthetic-0.01.dng",
               "truncated-synthetic-0.5.dng", "truncated-synthetic-0.9.dng",
               "truncated-synthetic-at-16.dng", "ifd-offset-past-end.dng",
               "truncated-shared-50pct.dng", "truncated-shared-99pct.dng")
PREPARE_SIDECARS = ("wb-two", "black-null", "size-too-wide", "white-nan", "deeply-nested",
                    "not-json", "black-equals-white")


def _prepare_args(raw_dir, out, *extra) -> list:
    return ["prepare", "folder", "--raw-dir", raw_dir, "--out", out, "--workers", "1",
            "--grid", "1", "--test-fraction", "0", *extra]


def _prepare(b: Builder, good: dict) -> None:
    """A folder of one good DNG and one bad file each: the good one is prepared."""
    for name in PREPARE_BAD:
        src = b.bad_raw.get(name)
        if src is None:  # the shared DNG is absent
            continue
        folder = b.dir("prepare", name)
        (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
        (folder / src.name).write_bytes(src.read_bytes())
        out = b.out(f"prepare-{name}")
        b.add(f"prepare/{name}", "prepare folder", _prepare_args(folder, out),
              "mixed good and bad", names=[folder / src.name], out=out,
              expect=[out / "meta" / "a_good.json", out / "dataset.json"],
              absent=[out / "meta" / f"{src.stem}.json"])
    for name in PREPARE_SIDECARS:
        folder = b.dir("prepare", f"sidecar-{name}")
        (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
        src = b.root / "sidecar" / name
        for p in src.iterdir():
            (folder / p.name).write_bytes(p.read_bytes())
        out = b.out(f"prepare-sidecar-{name}")
        b.add(f"prepare/sidecar-{name}", "prepare folder", _prepare_args(folder, out),
              "mixed good and bad", names=[folder / "d"], out=out,
              expect=[out / "meta" / "a_good.json", out / "dataset.json"],
              absent=[out / "meta" / "d.json"])
    # a sidecar dump that is fine to read but too small to cut a patch from
    folder = b.dir("prepare", "tiny-dump")
    (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
    _dump(folder, SIDECAR)
    out = b.out("prepare-tiny-dump")
    b.add("prepare/tiny-dump", "prepare folder", _prepare_args(folder, out), "mixed good and bad",
          names=[folder / "d"], out=out, expect=[out / "meta" / "a_good.json"])
    # every file bad
    folder = b.dir("prepare", "all-bad")
    for i, name in enumerate(("empty.dng", "random4096.nef", "text.nef")):
        (folder / f"{i}{b.bad_raw[name].suffix}").write_bytes(b.bad_raw[name].read_bytes())
    out = b.out("prepare-all-bad")
    b.add("prepare/all-bad", "prepare folder", _prepare_args(folder, out), "bad RAW file",
          names=[folder / "0.dng", folder / "1.nef", folder / "2.nef"], out=out)
    # a good folder, and rerunning it
    folder = b.dir("prepare", "good")
    (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
    _good_dng(folder / "b_good.dng", seed=1)
    out = b.out("prepare-good")
    b.add("prepare/good", "prepare folder", _prepare_args(folder, out), "good input", bad=False,
          out=out, expect=[out / "meta" / "a_good.json", out / "meta" / "b_good.json"])


# ----------------------------------------------------------------------------- photos

def _photos(b: Builder, good: dict) -> None:
    import tifffile
    from PIL import Image

    d = b.dir("photos")
    photos = {}  # name: (path, bad)

    def add(name, path, bad):
        photos[name] = (path, bad)

    for suffix in (".png", ".jpg", ".tif", ".webp", ".bmp"):
        (d / f"zero{suffix}").write_bytes(b"")
        add(f"zero-byte{suffix}", d / f"zero{suffix}", True)
    png = _photo(d / "src.png", 48, 64, seed=2).read_bytes()
    jpg = _photo(d / "src.jpg", 48, 64, seed=3, quality=90).read_bytes()
    for label, cut in (("8", 8), ("33", 33), ("100", 100), ("half", len(png) // 2)):
        (d / f"cut{label}.png").write_bytes(png[:cut])
        add(f"truncated-png-{label}", d / f"cut{label}.png", True)
    (d / "noiend.png").write_bytes(png[:-12])
    add("png-without-iend", d / "noiend.png", None)
    for label, cut in (("2", 2), ("20", 20), ("200", 200), ("half", len(jpg) // 2),
                       ("without-eoi", len(jpg) - 2)):
        (d / f"cut{label}.jpg").write_bytes(jpg[:cut])
        # only the end-of-image marker missing: decoders show it whole
        add(f"truncated-jpeg-{label}", d / f"cut{label}.jpg",
            None if label == "without-eoi" else True)
    crc = bytearray(png)
    crc[29] ^= 0xFF  # IHDR's CRC
    (d / "badcrc.png").write_bytes(bytes(crc))
    add("png-bad-crc", d / "badcrc.png", True)
    (d / "text.png").write_text("this is not a png\n")
    add("text-named-png", d / "text.png", True)
    (d / "random.jpg").write_bytes(_random_bytes(5000, 21))
    add("random-named-jpg", d / "random.jpg", True)
    (d / "html.png").write_text("<html><body>404 Not Found</body></html>")
    add("html-named-png", d / "html.png", True)
    raw = b.bad_raw["truncated-synthetic-0.5.dng"].read_bytes()
    (d / "dng.tif").write_bytes(_good_dng(b.root / "tmp" / "g.dng").read_bytes())
    add("dng-named-tif", d / "dng.tif", None)
    (d / "cutdng.tif").write_bytes(raw)
    add("truncated-dng-named-tif", d / "cutdng.tif", True)
    # odd but readable photos: converted
    png16(d / "rgb16.png", _rng(4).integers(0, 65536, (40, 40, 3)).astype(np.uint16), 2)
    add("16-bit-rgb-png", d / "rgb16.png", False)
    png16(d / "grey16.png", _rng(4).integers(0, 65536, (40, 40, 1)).astype(np.uint16), 0)
    add("16-bit-grey-png", d / "grey16.png", False)
    tifffile.imwrite(d / "rgb16.tif", _rng(5).integers(0, 65536, (40, 40, 3)).astype(np.uint16),
                     photometric="rgb")
    add("16-bit-rgb-tiff", d / "rgb16.tif", False)
    # float photos are read as [0, 1]: beyond it (a photo scaled 0..255, infinities) refused
    tifffile.imwrite(d / "float.tif", _rng(6).uniform(-0.5, 1.5, (40, 40, 3)).astype(np.float32),
                     photometric="rgb")
    add("float-tiff", d / "float.tif", True)
    tifffile.imwrite(d / "float255.tif", _rng(6).uniform(0, 255, (40, 40, 3)).astype(np.float32),
                     photometric="rgb")
    add("float-tiff-0-to-255", d / "float255.tif", True)
    inf = _rng(6).uniform(0, 1, (40, 40, 3)).astype(np.float32)
    inf[3, 4] = np.inf
    tifffile.imwrite(d / "inf.tif", inf, photometric="rgb")
    add("float-tiff-with-inf", d / "inf.tif", True)
    tifffile.imwrite(d / "minusinf.tif", np.where(inf == np.inf, -np.inf, inf), photometric="rgb")
    add("float-tiff-with-minus-inf", d / "minusinf.tif", True)
    tifffile.imwrite(d / "float-rounded.tif", np.clip(_rng(6).uniform(-0.001, 1.001, (40, 40, 3)),
                                                      -0.001, 1.001).astype(np.float32),
                     photometric="rgb")
    add("float-tiff-rounding-beyond-0-and-1", d / "float-rounded.tif", False)
    tifffile.imwrite(d / "float-grey.tif", _rng(6).uniform(0, 1, (40, 40)).astype(np.float64))
    add("float64-grey-tiff", d / "float-grey.tif", False)
    nan = _rng(6).uniform(0, 1, (40, 40, 3)).astype(np.float32)
    nan[5:10] = np.nan
    tifffile.imwrite(d / "nan.tif", nan, photometric="rgb")
    add("float-tiff-with-nan", d / "nan.tif", None)
    tifffile.imwrite(d / "signed.tif", np.zeros((40, 40), np.int16))
    add("signed-int-tiff", d / "signed.tif", True)
    tifffile.imwrite(d / "pages.tif", _rng(7).integers(0, 256, (3, 40, 40, 3)).astype(np.uint8),
                     photometric="rgb")
    add("multipage-tiff", d / "pages.tif", None)
    tifffile.imwrite(d / "five.tif", _rng(7).integers(0, 256, (40, 40, 5)).astype(np.uint8),
                     photometric="minisblack", planarconfig="contig")
    add("five-sample-tiff", d / "five.tif", None)
    rgb = _rng(8).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb[..., 0]).save(d / "grey.png")
    add("greyscale-png", d / "grey.png", False)
    Image.fromarray(rgb).quantize(16).save(d / "palette.png")
    add("palette-png", d / "palette.png", False)
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(d / "rgba.png")
    add("rgba-png", d / "rgba.png", False)
    Image.fromarray(rgb[..., 0]).convert("LA").save(d / "la.png")
    add("grey-alpha-png", d / "la.png", False)
    Image.fromarray(rgb[..., 0]).convert("1").save(d / "bilevel.png")
    add("bilevel-png", d / "bilevel.png", False)
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    add("cmyk-jpeg", d / "cmyk.jpg", False)
    Image.fromarray(rgb[..., 0]).save(d / "grey.jpg")
    add("greyscale-jpeg", d / "grey.jpg", False)
    Image.fromarray(rgb).save(d / "photo.webp")
    add("webp", d / "photo.webp", False)
    Image.fromarray(rgb).save(d / "photo.bmp")
    add("bmp", d / "photo.bmp", False)
    (d / "png-named.jpg").write_bytes(png)
    add("png-named-jpg", d / "png-named.jpg", False)
    for orientation in (3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(d / f"exif{orientation}.jpg", exif=exif)
        add(f"exif-orientation-{orientation}", d / f"exif{orientation}.jpg", False)
    for orientation in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(d / f"exif{orientation}.png", exif=exif)
        add(f"exif-orientation-invalid-{orientation}", d / f"exif{orientation}.png", None)
    tifffile.imwrite(d / "exif-tiff.tif", _rng(9).integers(0, 65536, (40, 48)).astype(np.uint16),
                     extratags=[(0x0112, "H", 1, 6, True)])
    add("exif-orientation-16-bit-tiff", d / "exif-tiff.tif", False)
    # sizes
    for h, w in ((1, 1), (21, 21), (21, 64), (64, 21), (1, 500), (2, 2)):
        _photo(d / f"tiny{w}x{h}.png", h, w, seed=10)
        add(f"tiny-{w}x{h}", d / f"tiny{w}x{h}.png", True)
    _photo(d / "min22.png", 22, 22, seed=10)
    add("smallest-22x22", d / "min22.png", False)
    _photo(d / "odd.png", 45, 67, seed=10)
    add("odd-size-67x45", d / "odd.png", False)
    exif = Image.Exif()
    exif[0x0112] = 6  # 64x21 stored, 21 wide as viewed: too small either way
    Image.fromarray(_rng(11).integers(0, 256, (21, 64, 3), dtype=np.uint8)).save(
        d / "tiny-rotated.jpg", exif=exif)
    add("tiny-exif-rotated", d / "tiny-rotated.jpg", True)
    for side in (20000, 100000, 65535 * 2):
        _photo(d / f"huge{side}.png", 1, 1, seed=12)
        claim_size(d / f"huge{side}.png", side, side)
        add(f"huge-header-{side}", d / f"huge{side}.png", True)
    _photo(d / "liar.png", 2, 2, seed=12)
    claim_size(d / "liar.png", 3000, 2000)  # under the limit, 2x2 pixels of data
    add("lying-header-3000x2000", d / "liar.png", True)
    _photo(d / "wide.png", 1, 1, seed=12)
    claim_size(d / "wide.png", 2**31 - 1, 1)
    add("huge-header-width-2^31", d / "wide.png", True)

    for name, (path, bad) in photos.items():
        out = b.out(f"convert-{name}")
        stem = path.stem
        expect = [out / f"{stem}.dng", out / f"{stem}.png"] if bad is False else []
        absent = [out / f"{stem}.dng", out / f"{stem}.png"] if bad else []
        b.add(f"convert/photo-{name}", "convert",
              ["convert", path, "--checkpoint", good["baseline"], "--out", out, "--cpu"],
              "odd photo" if bad is not True else "bad photo", bad=bad,
              names=[path] if bad is not False else [], out=out, expect=expect, absent=absent)
        if name in ("zero-byte.png", "truncated-jpeg-200", "tiny-1x1", "huge-header-20000"):
            # the same with the reference layouts
            for fmt, suffix in (("npy", ".npy"), ("hdf5", ".h5")):
                out = b.out(f"convert-{name}-{fmt}")
                b.add(f"convert/photo-{name}-{fmt}", "convert",
                      ["convert", path, "--checkpoint", good["baseline"], "--out", out, "--cpu",
                       "--format", fmt], "bad photo", names=[path], out=out,
                      absent=[out / f"{stem}{suffix}", out / f"{stem}.png"])

    # folders mixing good and bad photos: the good ones are converted
    mixes = {
        "bad-first": ["zero-byte.png", "GOOD", "text-named-png"],
        "bad-last": ["GOOD", "truncated-png-100", "tiny-1x1", "huge-header-20000"],
        "mostly-bad": ["zero-byte.jpg", "random-named-jpg", "signed-int-tiff", "GOOD",
                       "png-bad-crc", "lying-header-3000x2000", "truncated-jpeg-200"],
        "odd-and-bad": ["16-bit-rgb-png", "float-tiff", "tiny-2x2", "exif-orientation-6",
                        "html-named-png", "GOOD"],
    }
    for mix, names in mixes.items():
        folder = b.dir("mixed", mix)
        bad_paths, good_stems = [], []
        for i, name in enumerate(names):
            src = good["photo"] if name == "GOOD" else photos[name][0]
            target = folder / f"{i}_{src.name}"
            target.write_bytes(src.read_bytes())
            (good_stems if name == "GOOD" or photos[name][1] is False else bad_paths).append(target)
        for fmt, suffix in (("dng", ".dng"), ("npy", ".npy")):
            out = b.out(f"convert-mixed-{mix}-{fmt}")
            b.add(f"convert/mixed-{mix}-{fmt}", "convert",
                  ["convert", folder, "--checkpoint", good["baseline"], "--out", out, "--cpu",
                   "--format", fmt], "mixed good and bad", names=bad_paths, out=out,
                  expect=[out / f"{p.stem}{suffix}" for p in good_stems]
                  + [out / f"{p.stem}.png" for p in good_stems] + [out / "manifest.jsonl"],
                  absent=[out / f"{p.stem}{suffix}" for p in bad_paths])
    # the same mixed folder with a real network (the tiny checkpoint): the good ones converted
    folder = b.root / "mixed" / "bad-first"
    out = b.out("convert-mixed-tiny-checkpoint")
    b.add("convert/mixed-bad-first-tiny-checkpoint", "convert",
          ["convert", folder, "--checkpoint", good["ckpt"], "--out", out, "--cpu"],
          "mixed good and bad", names=[folder / "0_zero.png", folder / "2_text.png"], out=out,
          expect=[out / "1_photo.dng", out / "1_photo.png", out / "manifest.jsonl"])
    # good photos: with the baseline, the tiny network and the shipped checkpoint
    for label, ckpt in (("baseline", good["baseline"]), ("tiny", good["ckpt"]), ("shipped", None)):
        out = b.out(f"convert-good-{label}")
        args = ["convert", good["photo"], "--out", out, "--cpu"]
        if ckpt is not None:
            args += ["--checkpoint", ckpt]
        b.add(f"convert/good-{label}", "convert", args, "good input", bad=False, out=out,
              expect=[out / "photo.dng", out / "photo.png", out / "manifest.jsonl"])
    out = b.out("convert-good-figure")
    b.add("convert/good-figure", "convert", ["convert", good["photo"], "--checkpoint",
                                              good["baseline"], "--out", out, "--cpu", "--figure"],
          "good input", bad=False, out=out, expect=[out / "photo_compare.png"])
    b.photos = photos


# ----------------------------------------------------------------------------- checkpoints

def _checkpoints(b: Builder, good: dict) -> None:
    import torch

    from rawdiffusion.checkpoint import save_checkpoint
    from rawdiffusion.model import UNet

    d = b.dir("ckpt")
    files = {}
    (d / "random.pt").write_bytes(_random_bytes(4096, 31).replace(b"PK", b"pk"))
    files["random-bytes"] = d / "random.pt"
    (d / "empty.pt").write_bytes(b"")
    files["zero-byte"] = d / "empty.pt"
    (d / "plain.pt").write_bytes(pickle.dumps({"format": "rawdiffusion-checkpoint/1"}))
    files["plain-pickle"] = d / "plain.pt"
    with zipfile.ZipFile(d / "other.pt", "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    files["zip-without-torch-data"] = d / "other.pt"
    data = good["ckpt"].read_bytes()
    for frac in (0.1, 0.5, 0.99):
        path = d / f"cut{frac}.pt"
        path.write_bytes(data[: int(len(data) * frac)])
        files[f"truncated-{frac}"] = path
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle:middle + 4096] = _random_bytes(4096, 32)
    (d / "damaged.pt").write_bytes(bytes(damaged))
    files["damaged-middle"] = d / "damaged.pt"
    torch.save({"weights": torch.zeros(1)}, d / "foreign.pt")
    files["foreign-torch-file"] = d / "foreign.pt"
    torch.save([1, 2, 3], d / "list.pt")
    files["torch-list"] = d / "list.pt"
    torch.save({"format": "rawdiffusion-checkpoint/1", "model": _Payload(b.root / "EXECUTED")},
               d / "evil.pt")
    files["malicious-pickle"] = d / "evil.pt"
    (d / "dir.pt").mkdir(exist_ok=True)
    files["directory"] = d / "dir.pt"
    files["missing"] = d / "gone.pt"

    def weights(which):
        w = UNet(**TINY).state_dict()
        if which == "missing":
            del w["conv_out.weight"]
        elif which == "reshaped":
            w["conv_out.weight"] = w["conv_out.weight"].reshape(4, -1, 1, 1)[:, :16]
        elif which == "extra":
            w["unexpected.weight"] = torch.zeros(3)
        elif which == "nan":
            w["conv_out.bias"] = torch.tensor([0.0, float("nan"), 0.0, 0.0])
        elif which == "inf":
            first = next(k for k, v in w.items() if v.is_floating_point())
            w[first] = torch.full_like(w[first], float("inf"))
        elif which == "int":
            w["conv_out.weight"] = w["conv_out.weight"].to(torch.int32)
        return w

    states = {
        "no-model": dict(model=...), "no-camera": dict(camera=...), "no-step": dict(step=...),
        "no-config": dict(config=...), "no-model-config": dict(model_config=...),
        "weight-removed": dict(model=weights("missing")),
        "weight-reshaped": dict(model=weights("reshaped")),
        "weight-extra": dict(model=weights("extra")),
        "weights-nan": dict(model=weights("nan")), "ema-nan": dict(ema=weights("nan")),
        "weights-inf": dict(model=weights("inf")), "weights-int": dict(model=weights("int")),
        "step-string": dict(step="1"), "model-a-list": dict(model=[1, 2]),
        "camera-a-list": dict(camera=[1]),
        "model-config-unknown-key": dict(model_config={**TINY, "preset": "huge"}),
        "model-config-bad-guide": dict(model_config={**TINY, "guide": "vgg"}),
        "model-config-negative-channels": dict(model_config={**TINY, "channels": -16}),
        "model-config-string-channels": dict(model_config={**TINY, "channels": "16"}),
        "config-bad-preset": dict(config={"model": {"preset": "huge"}}),
        "config-bad-objective": dict(config={"model": {"preset": "small", "objective": 5}}),
        "camera-empty": dict(camera={}),
        "camera-black-above-white": dict(camera={**CAMERA, "white_level": 65}),
        "camera-white-nan": dict(camera={**CAMERA, "white_level": float("nan")}),
        "camera-wb-zero": dict(camera={**CAMERA, "wb": [2.0, 0.0, 1.5]}),
        "camera-wb-two": dict(camera={**CAMERA, "wb": [2.0, 1.0]}),
        "camera-cfa-rgbw": dict(camera={**CAMERA, "cfa": "RGBW"}),
        "camera-no-white": dict(camera={k: v for k, v in CAMERA.items() if k != "white_level"}),
        "camera-black-three": dict(camera={**CAMERA, "black_level": [1.0, 2.0, 3.0]}),
        "camera-matrix-2x2": dict(camera={**CAMERA, "color_matrix": [[1.0, 0.0], [0.0, 1.0]]}),
        "camera-noise-negative": dict(camera={**CAMERA, "noise": {**NOISE, "shot": [-1.0] * 4}}),
        "camera-noise-a-list": dict(camera={**CAMERA, "noise": [1.0, 2.0]}),
        "camera-wbs-zero": dict(camera={**CAMERA, "wbs": [[2.0, 1.0, 1.5], [2.0, 0.0, 1.5]]}),
        "camera-wbs-two": dict(camera={**CAMERA, "wbs": [[2.0, 1.0]]}),
        "camera-exposures-huge": dict(camera={**CAMERA, "exposures": [0.1, 1e6]}),
    }
    for name, changes in states.items():
        path = d / f"{name}.pt"
        save_checkpoint(path, _tiny_state(**changes))
        files[name] = path
    # int32 weights load into a float network as the same numbers; a network without a camera
    # is a network (tests save them), only not one that can write RAW files
    unusual = {"convert": {"weights-int"}, "export": {"weights-int", "camera-empty"}}
    for name, path in files.items():
        kind = "broken checkpoint"
        out = b.out(f"convert-ckpt-{name}")
        bad = None if name in unusual["convert"] else True
        b.add(f"convert/ckpt-{name}", "convert",
              ["convert", good["photo"], "--checkpoint", path, "--out", out, "--cpu"], kind,
              bad=bad, names=[path] if bad else [], out=out,
              absent=([out / "photo.dng", out / "photo.png"] if bad else [])
              + ([b.root / "EXECUTED"] if name == "malicious-pickle" else []))
        out = b.out(f"export-{name}")
        bad = None if name in unusual["export"] else True
        b.add(f"export/{name}", "export", ["export", path, "--out", out / "shared.pt"], kind,
              bad=bad, names=[path] if bad else [], out=out,
              absent=([out / "shared.pt"] if bad else [])
              + ([b.root / "EXECUTED"] if name == "malicious-pickle" else []))
    b.bad_ckpt = files
    # good exports
    for label, path in (("tiny", good["ckpt"]),
                        ("shipped", REPO / "rawdiffusion" / "assets" / "gopro_small.pt")):
        out = b.out(f"export-good-{label}")
        b.add(f"export/good-{label}", "export", ["export", path, "--out", out / "shared.pt"],
              "good input", bad=False, out=out, expect=[out / "shared.pt"])
    # a baseline file, or a photo, is not an exportable checkpoint
    for label, path in (("baseline-json", good["baseline"]), ("photo", good["photo"]),
                        ("dng", good["dng"])):
        out = b.out(f"export-{label}")
        b.add(f"export/not-a-checkpoint-{label}", "export",
              ["export", path, "--out", out / "shared.pt"], "broken checkpoint", names=[path],
              out=out, absent=[out / "shared.pt"])


# ----------------------------------------------------------------------------- baseline files

def _baseline_files(b: Builder, good: dict) -> None:
    d = b.dir("baselines")
    base = json.loads(good["baseline"].read_text())
    variants = {  # name: the file's text
        "empty": "", "not-json": "{weights: 1", "json-list": "[1, 2, 3]", "json-null": "null",
        "truncated": good["baseline"].read_text()[:50],
        "deeply-nested": '{"format": ' + "[" * 100000 + "]" * 100000 + "}",
    }
    objects = {
        "no-format": {k: v for k, v in base.items() if k != "format"},
        "wrong-format": {**base, "format": "rawdiffusion-baseline/999"},
        "unknown-kind": {**base, "kind": "poly9"},
        "kind-number": {**base, "kind": 5},
        "kind-null": {**base, "kind": None},
        "kind-list": {**base, "kind": ["linear"]},
        "no-camera": {k: v for k, v in base.items() if k != "camera"},
        "camera-a-string": {**base, "camera": "Acme One"},
        "camera-empty": {**base, "camera": {}},
        "camera-cfa-rgbw": {**base, "camera": {**CAMERA, "cfa": "RGBW"}},
        "camera-black-above-white": {**base, "camera": {**CAMERA, "black_level": [5000.0] * 4}},
        "camera-wb-two": {**base, "camera": {**CAMERA, "wb": [2.0, 1.0]}},
        "camera-white-string": {**base, "camera": {**CAMERA, "white_level": "high"}},
        "camera-noise-no-isos": {**base, "camera": {**CAMERA, "noise": {
            k: v for k, v in NOISE.items() if k != "isos"}}},
        "camera-wbs-empty": {**base, "camera": {**CAMERA, "wbs": []}},
        "camera-wbs-infinite": {**base, "camera": {**CAMERA, "wbs": [[2.0, 1.0, "inf"]]}},
        "camera-exposures-empty": {**base, "camera": {**CAMERA, "exposures": []}},
        "camera-exposures-text": {**base, "camera": {**CAMERA, "exposures": ["bright"]}},
        "no-weights": {k: v for k, v in base.items() if k != "weights"},
        "weights-wrong-shape": {**base, "weights": [[1.0, 2.0], [3.0, 4.0]]},
        "weights-strings": {**base, "weights": [["a"] * 4] * 4},
        "weights-ragged": {**base, "weights": [[1.0] * 4, [1.0] * 3, [1.0] * 4, [1.0] * 4]},
        "weights-a-number": {**base, "weights": 1.0},
        "weights-huge": {**base, "weights": [[1e308] * 4] * 4},
        "upi-no-params": {k: v for k, v in {**base, "kind": "upi"}.items() if k != "weights"},
        "upi-params-wrong": {**{k: v for k, v in base.items() if k != "weights"}, "kind": "upi",
                             "params": {"xyz_to_cam": "x", "rgb_gain": None, "red_gain": 1,
                                        "blue_gain": 1}},
    }
    files = {}
    for name, text in variants.items():
        (d / f"{name}.json").write_text(text)
        files[name] = d / f"{name}.json"
    for name, obj in objects.items():
        (d / f"{name}.json").write_text(json.dumps(obj))
        files[name] = d / f"{name}.json"
    nan = json.dumps({**base, "weights": [[0.5] * 4] * 4}).replace("0.5", "NaN", 1)
    (d / "weights-nan.json").write_text(nan)
    files["weights-nan"] = d / "weights-nan.json"
    (d / "binary.json").write_bytes(_random_bytes(300, 41))
    files["binary"] = d / "binary.json"
    (d / "named-pt.pt").write_text(json.dumps({**base, "kind": "poly9"}))
    files["json-named-pt"] = d / "named-pt.pt"
    for name, path in files.items():
        out = b.out(f"convert-baseline-{name}")
        bad = None if name == "weights-huge" else True  # finite numbers: a white image
        b.add(f"convert/baseline-{name}", "convert",
              ["convert", good["photo"], "--checkpoint", path, "--out", out, "--cpu"],
              "broken baseline JSON", bad=bad, names=[path] if bad else [], out=out,
              absent=[out / "photo.dng", out / "photo.png"] if bad else [])
    b.bad_baseline = files


def _baseline_fit(b: Builder, good: dict) -> None:
    ds = good["dataset"]
    d = b.dir("fit")

    def copy_dataset(name) -> Path:
        target = d / name
        for p in ds.rglob("*"):
            if p.is_file():
                q = target / p.relative_to(ds)
                q.parent.mkdir(parents=True, exist_ok=True)
                q.write_bytes(p.read_bytes())
        return target

    cases = {}  # name: (dataset, kind, what must be named)
    cases["missing-dataset"] = (d / "gone", "linear", d / "gone")
    (d / "a-file").write_text("x")
    cases["dataset-a-file"] = (d / "a-file", "linear", d / "a-file")
    (d / "no-description").mkdir(exist_ok=True)
    cases["no-dataset-json"] = (d / "no-description", "linear", d / "no-description")
    for name, text in (("empty", ""), ("garbage", "{not json"), ("list", "[1]"),
                       ("wrong-format", json.dumps({"format": "x", "images": {}})),
                       ("deeply-nested", "[" * 100000 + "]" * 100000)):
        root = copy_dataset(f"description-{name}")
        (root / "dataset.json").write_text(text)
        cases[f"dataset-json-{name}"] = (root, "linear", root)
    root = copy_dataset("sample-missing")
    (root / "raw" / "img0_0.npy").unlink()
    cases["sample-npy-missing"] = (root, "linear", root / "raw" / "img0_0")
    root = copy_dataset("sample-garbage")
    (root / "raw" / "img0_0.npy").write_bytes(_random_bytes(500, 51))
    cases["sample-npy-garbage"] = (root, "linear", root / "raw" / "img0_0")
    root = copy_dataset("sample-wrong-shape")
    np.save(root / "raw" / "img0_0.npy", np.zeros((3, 5, 7), np.uint16))
    cases["sample-npy-wrong-shape"] = (root, "linear", root / "raw" / "img0_0")
    root = copy_dataset("png-empty")
    (root / "rgb" / "img0_1.png").write_bytes(b"")
    cases["sample-png-empty"] = (root, "linear", root / "rgb" / "img0_1")
    root = copy_dataset("split-missing")
    (root / "train.txt").unlink()
    cases["split-file-missing"] = (root, "linear", root)
    for kind in ("poly9", "", "poly3+poly2", "local", "upi-camera"):
        cases[f"kind-{kind or 'empty'}"] = (ds, kind, "--kind" if kind != "upi-camera" else ds)
    for name, (root, kind, named) in cases.items():
        out = b.out(f"fit-{name}")
        b.add(f"baseline fit/{name}", "baseline fit",
              ["baseline", "fit", root, "--kind", kind, "--out", out / "b.json"],
              "broken dataset or baseline option", names=[named], out=out, absent=[out / "b.json"])
    out = b.out("fit-split-nope")
    b.add("baseline fit/split-nope", "baseline fit",
          ["baseline", "fit", ds, "--kind", "linear", "--out", out / "b.json", "--split", "nope"],
          "bad option", names=["nope"], out=out, absent=[out / "b.json"])
    out = b.out("fit-out-a-folder")
    out.mkdir(parents=True, exist_ok=True)
    b.add("baseline fit/out-a-folder", "baseline fit",
          ["baseline", "fit", ds, "--kind", "linear", "--out", out], "bad option", names=[out],
          out=out)
    out = b.out("fit-out-under-a-file")
    out.mkdir(parents=True, exist_ok=True)
    (out / "file").write_text("x")
    b.add("baseline fit/out-under-a-file", "baseline fit",
          ["baseline", "fit", ds, "--kind", "linear", "--out", out / "file" / "b.json"],
          "bad option", names=[out / "file"], out=out)
    for kind in ("linear", "poly3+curves+local", "upi"):
        out = b.out(f"fit-good-{kind}")
        b.add(f"baseline fit/good-{kind}", "baseline fit",
              ["baseline", "fit", ds, "--kind", kind, "--out", out / "b.json"], "good input",
              bad=False, out=out, expect=[out / "b.json"])


# ----------------------------------------------------------------------------- options

def _options(b: Builder, good: dict) -> None:
    photo, base, ckpt = good["photo"], good["baseline"], good["ckpt"]
    d = b.dir("options")

    def convert(name, args, names, kind="bad option", **kw):
        out = kw.pop("out", b.out(f"convert-opt-{name}"))
        b.add(f"convert/option-{name}", "convert", ["convert", *args[0], "--out", out, "--cpu",
                                                     *args[1]],
              kind, names=names, out=out, **kw)

    for steps in ("0", "-1", "abc", "1.5"):
        convert(f"steps-{steps}", ([photo, "--checkpoint", base], ["--steps", steps]), ["--steps"])
    for value in ("0", "-5"):
        convert(f"max-pixels-{value}", ([photo, "--checkpoint", base], ["--max-pixels", value]),
                ["--max-pixels"])
    convert("max-pixels-below-photo", ([photo, "--checkpoint", base], ["--max-pixels", "100"]),
            [photo])
    for tile in ("0", "-8", "3"):
        convert(f"tile-{tile}", ([photo, "--checkpoint", ckpt], ["--tile", tile]), ["tile"])
    for overlap in ("-1", "9999"):
        convert(f"overlap-{overlap}", ([photo, "--checkpoint", ckpt], ["--overlap", overlap]),
                ["overlap"])
    convert("format-bogus", ([photo, "--checkpoint", base], ["--format", "tiff"]), ["--format"])
    convert("seed-abc", ([photo, "--checkpoint", base], ["--seed", "abc"]), ["--seed"])
    existing = d / "existing-file"
    existing.write_text("I am a file")
    b.add("convert/option-out-existing-file", "convert",
          ["convert", photo, "--checkpoint", base, "--out", existing, "--cpu"], "bad option",
          names=[existing])
    b.add("convert/option-input-missing", "convert",
          ["convert", d / "nope.png", "--checkpoint", base, "--out", b.out("c-missing"), "--cpu"],
          "nonexistent path", names=[d / "nope.png"], out=b.out("c-missing"))
    empty = b.dir("options", "empty-folder")
    b.add("convert/option-empty-folder", "convert",
          ["convert", empty, "--checkpoint", base, "--out", b.out("c-empty"), "--cpu"],
          "nonexistent path", names=[empty], out=b.out("c-empty"))
    txt = b.dir("options", "text-only")
    (txt / "notes.txt").write_text("no photos here")
    b.add("convert/option-folder-without-photos", "convert",
          ["convert", txt, "--checkpoint", base, "--out", b.out("c-txt"), "--cpu"],
          "nonexistent path", names=[txt], out=b.out("c-txt"))
    twins = b.dir("options", "twins")
    _photo(twins / "a.png", 32, 32)
    _photo(twins / "a.jpg", 32, 32)
    b.add("convert/option-two-photos-one-name", "convert",
          ["convert", twins, "--checkpoint", base, "--out", b.out("c-twins"), "--cpu"],
          "bad option", names=[twins / "a.jpg", twins / "a.png"], out=b.out("c-twins"))
    b.add("convert/option-checkpoint-missing", "convert",
          ["convert", photo, "--checkpoint", d / "gone.pt", "--out", b.out("c-ck"), "--cpu"],
          "nonexistent path", names=[d / "gone.pt"], out=b.out("c-ck"))
    b.add("convert/option-checkpoint-missing-json", "convert",
          ["convert", photo, "--checkpoint", d / "gone.json", "--out", b.out("c-ckj"), "--cpu"],
          "nonexistent path", names=[d / "gone.json"], out=b.out("c-ckj"))
    same = b.dir("options", "same")
    _photo(same / "p.png", 32, 32)
    b.add("convert/option-out-is-input-folder", "convert",
          ["convert", same, "--checkpoint", base, "--out", same, "--cpu"], "bad option",
          names=[same])  # its previews would be read as photos by a rerun
    # prepare folder
    raw_dir = b.dir("options", "raw")
    (raw_dir / "a.dng").write_bytes(good["dng"].read_bytes())
    _good_dng(raw_dir / "b.dng", seed=2)

    def prepare(name, extra, names, raw=raw_dir, **kw):
        out = kw.pop("out", b.out(f"prepare-opt-{name}"))
        args = ["prepare", "folder", "--raw-dir", raw, "--out", out, *extra]
        b.add(f"prepare/option-{name}", "prepare folder", args, kw.pop("kind", "bad option"),
              names=names, out=out, **kw)

    for grid in ("0", "-2", "abc"):
        prepare(f"grid-{grid}", ["--grid", grid, "--workers", "1"], ["--grid"])
    prepare("grid-too-big", ["--grid", "50", "--workers", "1", "--test-fraction", "0"],
            [raw_dir / "a.dng", raw_dir / "b.dng"])
    for fraction in ("1", "-0.1", "nan", "2", "abc"):
        prepare(f"test-fraction-{fraction}", ["--test-fraction", fraction, "--workers", "1",
                                              "--grid", "1"], ["test"])
    for workers in ("0", "-3", "abc"):
        prepare(f"workers-{workers}", ["--workers", workers, "--grid", "1"], ["--workers"],
                bad=None if workers == "0" else True)
    prepare("raw-dir-missing", ["--workers", "1"], [d / "nope"], raw=d / "nope",
            kind="nonexistent path")
    prepare("raw-dir-a-file", ["--workers", "1"], [existing], raw=existing,
            kind="nonexistent path")
    prepare("raw-dir-empty", ["--workers", "1"], [empty], raw=empty, kind="nonexistent path")
    prepare("raw-dir-only-text", ["--workers", "1"], [txt], raw=txt, kind="nonexistent path")
    prepare("out-existing-file", ["--workers", "1", "--grid", "1"], [existing], out=existing)
    # info
    b.add("info/option-missing", "info", ["info", d / "nope.dng"], "nonexistent path",
          names=[d / "nope.dng"])
    b.add("info/option-a-folder", "info", ["info", raw_dir], "nonexistent path", names=[raw_dir])
    b.add("info/option-preview-a-file", "info", ["info", good["dng"], "--preview", existing],
          "bad option", names=[existing])
    # export
    out = b.out("export-opt-out-dir")
    out.mkdir(parents=True, exist_ok=True)
    b.add("export/option-out-existing-folder", "export", ["export", ckpt, "--out", out],
          "bad option", names=[out], out=out)
    b.add("export/option-out-under-a-file", "export",
          ["export", ckpt, "--out", existing / "x.pt"], "bad option", names=[existing])
    b.add("export/option-checkpoint-missing", "export",
          ["export", d / "gone.pt", "--out", b.out("e-missing") / "x.pt"], "nonexistent path",
          names=[d / "gone.pt"], out=b.out("e-missing"))


# ----------------------------------------------------------------------------- scripts

def _scripts(b: Builder, good: dict) -> None:
    """train.py and sample.py: a few cases, each a subprocess (seconds each)."""
    ds = good["dataset"]
    out = b.out("sample-random-ckpt")
    b.add("sample.py/random-checkpoint", "sample.py",
          ["dataset=folder", f"dataset.root={ds}", f"checkpoint={b.bad_ckpt['random-bytes']}",
           f"out={out}", f"general.out={b.out('sample-runs')}"], "broken checkpoint",
          names=[b.bad_ckpt["random-bytes"]], out=out)
    out = b.out("sample-bad-baseline")
    b.add("sample.py/broken-baseline", "sample.py",
          ["dataset=folder", f"dataset.root={ds}",
           f"checkpoint={b.bad_baseline['weights-wrong-shape']}", f"out={out}",
           f"general.out={b.out('sample-runs')}"], "broken baseline JSON",
          names=[b.bad_baseline["weights-wrong-shape"]], out=out)
    runs = b.out("train-runs")
    b.add("train.py/missing-dataset", "train.py",
          ["dataset=folder", f"dataset.root={b.root / 'no-such-dataset'}",
           f"general.out={runs}", "model.preset=small"], "nonexistent path",
          names=[b.root / "no-such-dataset"], out=runs)


# ----------------------------------------------------------------------------- not files

def _odd_entries(folder: Path, suffix: str) -> list[Path]:
    """A directory, a FIFO, a dangling symlink and a symlink loop named like inputs."""
    entries = [folder / f"folder{suffix}", folder / f"pipe{suffix}", folder / f"gone{suffix}",
               folder / f"loop{suffix}"]
    entries[0].mkdir(exist_ok=True)
    os.mkfifo(entries[1])  # opening it for reading would block: run_case's no_hang guards
    entries[2].symlink_to(folder / f"nowhere{suffix}")
    entries[3].symlink_to(entries[3])
    return entries


def _not_files(b: Builder, good: dict) -> None:
    """Entries that are no regular files, and names that are not valid UTF-8 or look like
    options, in every command that takes files."""
    d = b.dir("notfiles")
    odd = _odd_entries(d, ".dng")
    for path in odd + [Path("/dev/zero")]:
        b.add(f"info/not-a-file-{path.name}", "info", ["info", path], "not a regular file",
              names=[path])
    b.add("info/not-files-beside-a-good-one", "info", ["info", *odd, good["dng"]],
          "mixed good and bad", names=odd)
    b.add("info/name-beginning-with-dash", "info", ["info", "-bad.dng"], "bad option",
          names=["-bad.dng"])
    # names that are not UTF-8 (Latin-1 bytes): a good one is read, a cut one named with \xe9
    latin = os.fsdecode(os.fsencode(b.dir("latin1")) + b"/caf\xe9.dng")
    Path(latin).write_bytes(good["dng"].read_bytes())
    cut = os.fsdecode(os.fsencode(b.dir("latin1")) + b"/cut\xe9.dng")
    Path(cut).write_bytes(good["dng"].read_bytes()[:3000])
    b.add("info/name-not-utf8", "info", ["info", latin], "file name", bad=False)
    b.add("info/name-not-utf8-truncated", "info", ["info", cut, good["dng"]], "file name",
          names=[f"{b.root}/latin1/cut\\xe9.dng"])
    # prepare folder: one good file beside the four, at the default test fraction (too few
    # files for a split: each entry still named) and at 0 (the good file prepared)
    for fraction in ("0.15", "0"):
        folder = b.dir("prepare", f"not-files-{fraction}")
        (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
        entries = _odd_entries(folder, ".dng")
        out = b.out(f"prepare-not-files-{fraction}")
        args = ["prepare", "folder", "--raw-dir", folder, "--out", out, "--workers", "1",
                "--grid", "1", "--test-fraction", fraction]
        b.add(f"prepare/not-files-test-fraction-{fraction}", "prepare folder", args,
              "not a regular file", names=entries, out=out,
              expect=[out / "meta" / "a_good.json"] if fraction == "0" else [])
    folder = b.dir("prepare", "name-not-utf8")
    (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
    Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.dng")).write_bytes(good["dng"].read_bytes())
    out = b.out("prepare-name-not-utf8")
    b.add("prepare/name-not-utf8", "prepare folder", _prepare_args(folder, out), "file name",
          bad=False, out=out, expect=[out / "meta" / "a_good.json",
                                      out / "meta" / "caf\\xe9.json"])
    # convert: the four named like photos in a folder, and named on the command line
    folder = b.dir("photos-not-files")
    (folder / "a_good.png").write_bytes(good["photo"].read_bytes())
    entries = _odd_entries(folder, ".png")
    (folder / "z_good.png").write_bytes(good["photo"].read_bytes())
    out = b.out("convert-not-files")
    b.add("convert/not-files-in-a-folder", "convert",
          ["convert", folder, "--checkpoint", good["baseline"], "--out", out, "--cpu"],
          "not a regular file", names=entries, out=out,
          expect=[out / "a_good.dng", out / "z_good.dng", out / "manifest.jsonl"])
    for entry in entries:
        out = b.out(f"convert-named-{entry.name}")
        b.add(f"convert/named-{entry.name}", "convert",
              ["convert", entry, "--checkpoint", good["baseline"], "--out", out, "--cpu"],
              "not a regular file", names=[entry], out=out)
    # a checkpoint that is no file: a FIFO blocked the zip check, /dev/zero never ended it
    for ckpt in (odd[1], Path("/dev/zero"), odd[3]):
        for command, args in (("convert", ["convert", good["photo"], "--checkpoint", ckpt,
                                           "--out", b.out(f"convert-ckpt-{ckpt.name}"),
                                           "--cpu"]),
                              ("export", ["export", ckpt, "--out",
                                          b.out(f"export-{ckpt.name}") / "x.pt"])):
            b.add(f"{command}/checkpoint-{ckpt.name}", command, args, "not a regular file",
                  names=[ckpt])


# ----------------------------------------------------------------------------- RAW limits

def _raw_limits(b: Builder, good: dict) -> None:
    """What LibRaw would guess or decode without bound: a headerless dump without its sidecar,
    a small DNG declaring 20000 x 20000 pixels, a sidecar declaring too many, a 4 GiB dump of
    the wrong size (sparse: no disk taken), an AsShotNeutral of 0; each alone and beside a good
    DNG in prepare folder."""
    d = b.dir("limits")
    bad = {}
    bad["no-sidecar"] = d / "dump_1024x768.raw"  # a size in LibRaw's table of cameras
    bad["no-sidecar"].write_bytes(_random_bytes(1024 * 768, 61))
    bad["bomb"] = bomb_dng(d / "bomb.dng", 20000, 20000)
    folder = b.dir("limits", "huge-sidecar")
    bad["sidecar-too-many-pixels"] = _dump(folder, {**SIDECAR, "width": 30000, "height": 20000})
    folder = b.dir("limits", "sparse")
    bad["sparse-4gib-dump"] = _dump(folder, SIDECAR)
    with open(bad["sparse-4gib-dump"], "r+b") as f:
        f.truncate(4 << 30)
    bad["as-shot-neutral-zero"] = _cfa_dng(d / "neutral.dng", _scene(), extra=[
        (50728, "2I", 3, (0, 1, 1, 1, 1, 2))])
    if (SHARED_RAW / "bayer" / "nikon_d750_rose_768x512_rggb.raw").is_file():
        bad["no-sidecar-shared-nikon"] = d / "nikon_d750_rose_768x512_rggb.raw"
        bad["no-sidecar-shared-nikon"].symlink_to(
            SHARED_RAW / "bayer" / "nikon_d750_rose_768x512_rggb.raw")
    for name, path in bad.items():
        b.add(f"info/{name}", "info", ["info", path], "decompression bomb" if "pix" in name
              or "bomb" in name or "4gib" in name else "bad RAW file", names=[path])
        folder = b.dir("prepare", f"limits-{name}")
        (folder / "a_good.dng").write_bytes(good["dng"].read_bytes())
        target = folder / path.name
        if path.parent != d:  # a dump with its sidecar: both, the dump sparse again
            (folder / "d.json").write_bytes((path.parent / "d.json").read_bytes())
            with open(target, "wb") as f:
                f.truncate(path.stat().st_size)
        else:
            target.symlink_to(path)
        out = b.out(f"prepare-limits-{name}")
        b.add(f"prepare/limits-{name}", "prepare folder", _prepare_args(folder, out),
              "mixed good and bad", names=[folder / (target.stem if target.stem == "d"
                                                      else target.name)], out=out,
              expect=[out / "meta" / "a_good.json"], absent=[out / "meta" / f"{target.stem}.json"])
    b.add("info/max-pixels-raised", "info", ["info", good["dng"], "--max-pixels", "12288"],
          "good input", bad=False)
    b.add("info/max-pixels-below-the-file", "info", ["info", good["dng"], "--max-pixels", "100"],
          "bad option", names=[good["dng"]])


# ----------------------------------------------------------------------------- running

class _CurrentStderr(logging.Handler):
    """Log records to whatever sys.stderr is at the time (the captured one)."""

    def emit(self, record):
        sys.stderr.write(self.format(record) + "\n")


def run_case(case: Case, timeout: float = 300) -> Result:
    """Run one case: in this process through rawdiffusion.cli.main, or the scripts as
    subprocesses (cwd: the case's output folder's parent, so nothing lands in the repo)."""
    if case.subprocess:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        cwd = Path(case.out).parent if case.out else REPO
        cwd.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, str(REPO / case.command), *case.args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, env=env)
        return Result(proc.returncode, proc.stdout, proc.stderr,
                      "Traceback (most recent call last)" in proc.stdout + proc.stderr)
    from rawdiffusion import cli

    out, err = io.StringIO(), io.StringIO()
    handler = _CurrentStderr()
    root = logging.getLogger()
    root.addHandler(handler)
    crashed = False
    with _fd2_captured() as native:  # what C libraries (LibRaw) print to the terminal
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    with no_hang(int(timeout)):  # a case that blocks (a FIFO) fails, not hangs
                        code = cli.main(case.args)
                except SystemExit as e:  # argparse's errors
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except BaseException:  # what reaches the user as a traceback
                    traceback.print_exc()
                    code, crashed = 1, True
        finally:
            root.removeHandler(handler)
    stderr = native.read() + err.getvalue()
    return Result(code, out.getvalue(), stderr,
                  crashed or "Traceback (most recent call last)" in out.getvalue() + stderr)


class _Captured:
    text = ""

    def read(self) -> str:
        return self.text


@contextlib.contextmanager
def _fd2_captured():
    """File descriptor 2 into a temporary file for the block; its text in .read() after."""
    import tempfile

    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.text = tmp.read().decode(errors="replace")


_PROGRESS = re.compile(r"\d+%\|| \d+/\d+ \[|it/s\]|/s\]$")


def message_lines(stderr: str) -> list[str]:
    """stderr without progress bars: one entry per line as the user finally sees it."""
    lines = []
    for line in stderr.split("\n"):
        line = line.split("\r")[-1].rstrip()
        if line and not _PROGRESS.search(line):
            lines.append(line)
    return lines


def partial_files(folder) -> list[str]:
    """Partial or temporary files under `folder`."""
    found = []
    if folder and Path(folder).is_dir():
        for p in Path(folder).rglob("*"):
            if any(fnmatch.fnmatch(p.name, pat) for pat in PARTIAL_PATTERNS):
                found.append(str(p))
    return sorted(found)


def problems(case: Case, result: Result) -> list[str]:
    """What the run did wrong; empty when it behaved."""
    found = []
    if result.traceback:
        found.append("traceback")
    lines = message_lines(result.stderr)
    failed = result.code != 0
    if case.bad is True and not failed:
        found.append("exit status 0 on bad input")
    if case.bad is False and failed:
        found.append(f"exit status {result.code} on good input: "
                     + (lines[-1] if lines else "(no message)"))
    if failed and case.bad is not False:
        usage = any(line.startswith("usage:") for line in lines)
        for name in case.names:
            hits = [line for line in lines if name in line]
            if not hits:
                found.append(f"the error does not name {name}")
            elif not any(len(line.split(name, 1)[1].strip(" :'\"")) > 2 for line in hits):
                found.append(f"no reason after {name}")
            # the package's own lines: "error: ...", prepare's "skipped ..." and the indented
            # list of failed files; any other line naming the file is a second message
            foreign = [line for line in hits if not line.startswith(OWN_PREFIXES)]
            if foreign:
                found.append(f"a second message about {name}: {foreign[0]!r}")
        if not case.names and not lines:
            found.append("no error message")
        limit = 3 * max(1, len(case.names)) + 4
        if not usage and len(lines) > limit:
            found.append(f"{len(lines)} lines of error output, not one line per problem")
    left = partial_files(case.out)
    if left:
        found.append("partial files left: " + ", ".join(left))
    for path in case.absent:
        if Path(path).exists():
            found.append(f"output of bad input exists: {path}")
    if case.bad is False or (case.bad is True and case.expect) or (case.bad is None and not failed):
        for path in case.expect:
            if not Path(path).exists():
                found.append(f"good work lost: {path} missing")
    return found


def kinds(cases: list[Case]) -> dict[str, int]:
    count = {}
    for c in cases:
        count[c.kind] = count.get(c.kind, 0) + 1
    return dict(sorted(count.items()))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python tests/malformed_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    cases = build(root)
    print(f"{len(cases)} cases in {root}: "
          + ", ".join(f"{k} {n}" for k, n in kinds(cases).items()))
    print(f"{'case':58} {'command':15} {'exit':>4} {'traceback':9} {'one-line':8} "
          "partial  problems")
    bad = 0
    for case in cases:
        result = run_case(case)
        found = problems(case, result)
        named = not any(p.startswith(("the error does not name", "no reason", "no error"))
                        or "lines of error output" in p for p in found)
        partial = len(partial_files(case.out))
        bad += bool(found)
        print(f"{case.name[:58]:58} {case.command:15} {result.code:>4} "
              f"{'yes' if result.traceback else 'no':9} "
              f"{('yes' if named else 'no') if result.code else '-':8} {partial:>7}  "
              + ("; ".join(found)[:200] if found else "ok"), flush=True)
    print(f"{len(cases) - bad} of {len(cases)} cases behaved; {bad} did not")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
