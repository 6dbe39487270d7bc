"""What the declared (pydantic) schemas share: white-balance gains, and a bad value's one-line
report naming its key. Used by the sidecars of headerless dumps (sidecar.Sidecar) and by the
camera of checkpoints and baseline files (camera.Camera)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, ValidationError
from pydantic_core import PydanticCustomError

Gain = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def as_json(value) -> str:
    """A value as it is quoted in an error message: JSON, or its repr where JSON has none."""
    return json.dumps(value, default=repr)


def three_gains(value):
    """wb: three gains (R, G, B), or null for none."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 3):
        return value
    got = f"{len(value)} values" if isinstance(value, (list, tuple)) else as_json(value)
    raise PydanticCustomError("custom", f"{got}: give three gains (R, G, B), or null")


def schema_problem(error: ValidationError, prefix: str = "") -> str:
    """'key: what is wrong' of every error of a pydantic schema, in one line; keys after
    `prefix` (as "camera."). An error of the whole record (a model validator's, which has no
    key) is named by the prefix alone ("camera: ...")."""
    problems = []
    for e in error.errors(include_url=False):
        key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                               for p in e["loc"]).lstrip(".")
        what = e["msg"][:1].lower() + e["msg"][1:]
        if e["type"] not in ("missing", "custom"):
            what += f" (got {as_json(e['input'])})"
        problems.append(f"{key.rstrip('.')}: {what}")
    return "; ".join(problems)
