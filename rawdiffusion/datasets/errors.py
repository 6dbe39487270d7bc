"""Errors of prepared datasets: one line naming the file and the reason.

UserErrors, which every entry point reports as `error: ...` with exit status 2, and
ValueErrors, as the decoding errors that the per-image handlers of prepare catch beside them.
"""

from __future__ import annotations

from ..errors import UserError


class DatasetError(UserError, ValueError):
    """A file of a prepared dataset that cannot be used (dataset.json, annotations, ...)."""

    def __init__(self, path, reason: str | None = None):
        if reason is None:  # re-created from one message: see SampleError
            last = (str(path).strip().splitlines() or [""])[-1]
            path, _, reason = last.removeprefix(f"{__name__}.{type(self).__qualname__}: "
                                                ).partition(": ")
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


class SampleError(DatasetError):
    """A sample file (raw/<id>.npy, rgb/<id>.png) that cannot be read: cut short, missing, ...

    A DataLoader worker's error reaches training as type(e)(message), the message being the
    worker's traceback, whose last line is 'rawdiffusion.datasets.errors.SampleError: <path>:
    <reason>'; the one-argument form keeps that line's path and reason, so it stays one line.
    """
