"""atomic.atomic_output when the disk is full: one line naming the destination and saying so
(not numpy's '196608 requested and 83648 written'), and no partial file left.

The writers run for real into /dev/full (every write fails with ENOSPC), standing in for the
temporary file: each library's own way of failing is what is translated.
"""

import errno
import os
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import synthetic_raw
from rawdiffusion import atomic
from rawdiffusion.atomic import OutputError, atomic_output
from rawdiffusion.datasets.paired import save_npy
from rawdiffusion.images import write_png
from rawdiffusion.io import write_dng, write_hdf5, write_npy


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write goes to /dev/full through a symlink where its temporary file would be."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")

    def reserve(path):
        tmp = path.parent / f".{path.name}.full.tmp"
        tmp.symlink_to("/dev/full")
        return tmp

    monkeypatch.setattr(atomic, "_reserve", reserve)


def full_message(path) -> str:
    return (f"{path}: not written, the disk is full (no space left on the device of "
            f"{path.parent}); free space and rerun")


PACKED = np.random.default_rng(0).uniform(0, 1, (4, 64, 64))
WRITERS = {
    "dng": ("x.dng", lambda p: write_dng(p, synthetic_raw(height=256, width=256))),
    "png": ("x.png", lambda p: write_png(p, np.zeros((256, 256, 3), np.uint8))),
    "npy": ("x.npy", lambda p: write_npy(p, PACKED)),
    "prepared sample": ("x.npy", lambda p: save_npy(p, np.zeros((4, 64, 64), np.uint16))),
    "hdf5": ("x.h5", lambda p: write_hdf5(p, PACKED)),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_left(writer, tmp_path,
                                                                     full_disk):
    name, write = WRITERS[writer]
    path = tmp_path / "out" / name
    with pytest.raises(OutputError) as info:
        write(path)
    assert str(info.value) == full_message(path)
    assert os.listdir(tmp_path / "out") == []  # neither the file nor its temporary


def test_numpy_short_writes_say_the_disk_is_full(tmp_path):
    """numpy's tofile reports a full disk as an OSError without errno: 'N requested and M
    written' (what tifffile and np.save raised during convert)."""
    path = tmp_path / "x.dng"
    with pytest.raises(OutputError) as info, atomic_output(path):
        raise OSError("196608 requested and 83648 written")
    assert str(info.value) == full_message(path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "the disk is full (no space left on the device of"),
    (errno.EDQUOT, "the disk quota is used up (EDQUOT); free space and rerun"),
])
def test_no_space_and_quota_errors_name_the_file(code, words, tmp_path):
    path = tmp_path / "x.png"
    with pytest.raises(OutputError) as info, atomic_output(path):
        raise OSError(code, os.strerror(code))
    assert str(info.value).startswith(f"{path}: not written, {words}")
    assert os.listdir(tmp_path) == []


def test_a_writer_failing_on_a_nearly_full_disk_without_saying_so(tmp_path, monkeypatch):
    """torch.save says only 'unexpected pos 576 vs 534' when the disk fills: the free space
    left, read before the partial file goes, tells."""
    monkeypatch.setattr(atomic.os, "statvfs", lambda p: SimpleNamespace(f_bavail=0, f_frsize=4096))
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(OutputError) as info, atomic_output(path):
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 576 vs 534")
    assert str(info.value) == (f"{path}: not written, the disk is full (0 bytes left on the "
                               f"device of {tmp_path}; the writer said: [enforce fail at "
                               "inline_container.cc:671] . unexpected pos 576 vs 534); free "
                               "space and rerun")


@pytest.mark.parametrize("error", [OSError(errno.EACCES, "Permission denied"),
                                   RuntimeError("a bug"), ValueError("bad value"),
                                   KeyboardInterrupt()])
def test_other_failures_pass_through_unchanged_and_leave_nothing(error, tmp_path):
    with pytest.raises(type(error)) as info, atomic_output(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"partial")
        raise error
    assert info.value is error
    assert os.listdir(tmp_path) == []


def test_a_record_appended_on_a_full_disk_names_the_file_and_is_cut_off(tmp_path, monkeypatch):
    """A record line (a manifest or results part) that the disk takes only in part: the error
    names the file and says the disk is full, and the bytes written are cut off again, so
    that the next record starts a line of its own."""
    path = tmp_path / "manifest.part0.jsonl"
    atomic.append_line(path, '{"a": 1}')
    real_write = os.write

    def half_then_full(fd, data):
        if len(data) > 4:
            return real_write(fd, data[:4])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "write", half_then_full)
    with pytest.raises(OutputError) as info:
        atomic.append_line(path, '{"b": 2}')
    assert str(info.value) == (f"{path}: record not appended, the disk is full (no space left "
                               f"on the device of {tmp_path}); free space and rerun")
    assert path.read_text() == '{"a": 1}\n'
    monkeypatch.setattr(atomic.os, "write", real_write)
    atomic.append_line(path, '{"c": 3}')
    assert path.read_text() == '{"a": 1}\n{"c": 3}\n'


def test_an_append_failing_otherwise_keeps_its_own_error(tmp_path, monkeypatch):
    def denied(fd, data):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(atomic.os, "write", denied)
    with pytest.raises(OSError) as info:
        atomic.append_line(tmp_path / "x.jsonl", "{}")
    assert not isinstance(info.value, OutputError) and info.value.errno == errno.EIO
