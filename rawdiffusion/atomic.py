"""Atomic file output: a file appears whole or not at all.

The package's outputs (RAW files, prepared samples, checkpoints, records, figures; not the
logs, which are appended to) are written through `atomic_output`, so a killed or failing job
never leaves a half-written file that a rerun would take for finished.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from .errors import UserError


class OutputError(UserError, ValueError):
    """An output path that cannot be written; the message names it and why."""


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    A killed or failing writer therefore never leaves a half-written `path` behind. The file
    gets the mode open() would give it (0o666 less the umask), not mkstemp's 0o600. Raises
    OutputError when `path` is a folder or a file stands where one of its folders should be.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: a folder, where a file is to be written")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(f"{path}: cannot be written, {blocking} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_folder(path: Path, named: str) -> None:
    """mkdir -p, or a UserError saying why not, the folder `named` as the user gave it (e.g.
    "--out x/y")."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{named}: cannot make this folder ({e.strerror})") from None
