"""Input paths, looked at before anything opens them.

Readers take regular files only: opening a FIFO for reading blocks until a writer comes, a
character device such as /dev/zero never ends, and a directory or a symlink loop is no input.
`not_a_file` says what such a path is, from os.stat alone (nothing is opened); `pixel_problem`
refuses a RAW image whose declared size is over the limit before any pixel is read. `shown` writes a
path for a message when its name is not valid UTF-8 (a name from another system's encoding),
which Python hands over with surrogate escapes that a UTF-8 terminal cannot print.
`misplaced_file` names one of the project's JSON files given where another kind is expected.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def not_a_file(path, what: str | None = None) -> str | None:
    """None when `path` is a regular file or a symlink to one; else what it is, as the reason
    of an error line: "no such file", "a symlink loop", "a dangling symlink (to TARGET)",
    "a directory, not a WHAT", "a FIFO (named pipe), not a WHAT", "unreadable (REASON)", ...
    what: what the caller wanted ("RAW file", "photo", "checkpoint file"); None leaves the
    ", not a WHAT" out."""
    link = "a symlink to " if os.path.islink(path) else ""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        if e.errno == errno.ENOENT:
            return f"a dangling symlink (to {shown(os.readlink(path))})" if link else "no such file"
        if e.errno == errno.ENOTDIR:
            return "no such file (a file stands where one of its folders should be)"
        return f"unreadable ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"{link}{kind}" + (f", not a {what}" if what else "")


def shown(path) -> str:
    """`path` (a str, bytes, a path-like, or anything with a str) as printable text: a byte of
    its name that is not valid UTF-8 is shown as \\xNN (os.fsdecode's surrogate escapes cannot
    be printed). Valid names are unchanged."""
    text = os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else str(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no byte of a name escapes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# The most pixels (width x height, margins included) of a RAW file read, unless the caller
# allows more: the largest single-shot sensors have about 150 MP (Phase One IQ4 150MP, 14204 x
# 10652). Checked from the header before decoding, so that a small file declaring a huge image
# (a decompression bomb) is refused before its memory is allocated.
RAW_MAX_PIXELS = 200_000_000


def pixel_problem(width: int, height: int, limit: int) -> str | None:
    """Why a RAW image of width x height pixels is not read (over `limit`), or None."""
    if width * height <= limit:
        return None
    return (f"{width}x{height} is {width * height} pixels, over the limit of {limit} for RAW "
            "files (--max-pixels of info and prepare raises it)")


# The project's JSON files by their "format" prefix: what each is and where it is given.
_JSON_FILES = {"rawdiffusion-baseline": ("a baseline file",
                                         "--checkpoint (rd.load's first argument)"),
               "rawdiffusion-pipeline": ("a photo pipeline file",
                                         "--pipeline (rd.load(pipeline=...))")}


def misplaced_file(data, expected: str, what: str) -> str | None:
    """For the parsed JSON `data` of a file read as a `what` (format `expected`): when it is
    another of the project's JSON files, the reason of an error line ("a baseline file, not a
    WHAT; give it as --checkpoint (...)"); else None."""
    form = data.get("format") if isinstance(data, dict) else None
    for prefix, (kind, option) in _JSON_FILES.items():
        if isinstance(form, str) and form.startswith(prefix) and not expected.startswith(prefix):
            return f"{kind}, not a {what}; give it as {option}"
    return None
