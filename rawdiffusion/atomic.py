"""Atomic file output: a file appears whole or not at all.

The package's outputs (RAW files, prepared samples, checkpoints, records, figures; not the
logs, which are appended to) are written through `atomic_output`, so a killed or failing job
never leaves a half-written file that a rerun would take for finished. The records of a
resumable job are lines appended to a file (`append_line`): a line is whole or absent.
A write that fails for want of space says so, naming the file (`no_space` words it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from pathlib import Path

from .errors import UserError

# numpy's tofile (which tifffile and np.save write through) when the device takes less than it
# was given: "196608 requested and 83648 written", an OSError without an errno
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")
# Free bytes under which a failed write is put down to a full disk (torch.save says only
# "unexpected pos 576 vs 534" then); checked before the partial file is removed.
NEARLY_FULL = 1 << 20


class OutputError(UserError, ValueError):
    """An output path that cannot be written; the message names it and why."""


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    A killed or failing writer therefore never leaves a half-written `path` behind. The file
    gets the mode open() would give it (0o666 less the umask), not mkstemp's 0o600. Raises
    OutputError when `path` is a folder or a file stands where one of its folders should be,
    and when the block fails for want of space (ENOSPC, a quota, a short write): '<path>: not
    written, the disk is full (...)' instead of the writer's own words.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: a folder, where a file is to be written")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(f"{path}: cannot be written, {blocking} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        full = no_space(e, path.parent)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise OutputError(f"{path}: not written, {full}") from None
        raise


def _reserve(path: Path) -> Path:
    """A new empty file beside `path` for its content: .<name>.<random>.tmp."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    return tmp


def append_line(path, line: str) -> None:
    """Append `line` and a newline to the file `path` (made when absent), whole or not at all:
    unbuffered writes, and when one fails the bytes already written are cut off again. Raises
    OutputError '<path>: record not appended, the disk is full (...)' when it fails for want of
    space (no_space), the OSError itself otherwise."""
    path = Path(path)
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            full = no_space(e, path.parent)
            if full:
                raise OutputError(f"{path}: record not appended, {full}") from None
            raise
    finally:
        os.close(fd)


def no_space(error: BaseException, folder: Path) -> str | None:
    """What to say when `error` of a writer in `folder` means the disk is full ("the disk is
    full (...); free space and rerun"), else None."""
    if not isinstance(error, (OSError, RuntimeError)):
        return None
    code = getattr(error, "errno", None)
    if code == errno.EDQUOT:
        return "the disk quota is used up (EDQUOT); free space and rerun"
    said = str(error)
    if (code == errno.ENOSPC or "No space left on device" in said
            or isinstance(error, OSError) and _SHORT_WRITE.search(said)):
        return f"the disk is full (no space left on the device of {folder}); free space and rerun"
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < NEARLY_FULL:
        return (f"the disk is full ({st.f_bavail * st.f_frsize} bytes left on the device of "
                f"{folder}; the writer said: {said.splitlines()[0][:80] if said else '-'}); "
                "free space and rerun")
    return None
def make_folder(path: Path, named: str) -> None:
    """mkdir -p, or a UserError saying why not, the folder `named` as the user gave it (e.g.
    "--out x/y")."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{named}: cannot make this folder ({e.strerror})") from None
