"""Errors of prepared datasets: one line naming the file and the reason.

Both are ValueErrors, which the `rawdiffusion` command reports as `error: ...` with exit 2, and
config.SetupErrors, which train.py and sample.py report the same way (as checkpoint.CheckpointError
is both). They live apart from layout.py, which imports them where it raises them, because
config imports layout.
"""

from __future__ import annotations

from ..config import SetupError


class DatasetError(ValueError, SetupError):
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
