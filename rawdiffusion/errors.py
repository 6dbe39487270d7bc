"""The one kind of error a user can fix, and how every entry point reports it.

A `UserError` (a bad or missing file, a setting that cannot work, a checkpoint from elsewhere)
ends a command with one line naming the file or setting and the reason, exit status 2. An
OSError is the machine's answer about a path (no such file, no permission, disk full) and is
reported the same way. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from .files import shown

USAGE_STATUS = 2  # exit status of a command stopped by a UserError, as argparse's own


class UserError(Exception):
    """A problem with the user's input or settings; its message says what and where."""


class SetupError(UserError):
    """A setting or run that cannot work (missing data, an impossible value, another recipe
    in the run's folder, a diverged loss)."""


class SettingError(SetupError, ValueError):
    """An argument of the library that cannot work: `name` is the argument (as the function
    names it, e.g. "steps"), `reason` why it cannot work, `value` what it was given (left out
    where it cannot be shown in a line, as an image). The message is 'name=value: reason' (or
    'name: reason'); each front end says it in its own words, naming its option (convert's
    --steps, sample.py's diffusion_val.timestep_respacing)."""

    NOT_SHOWN = object()  # `value` of an error whose value is not shown

    def __init__(self, name: str, reason: str, value=NOT_SHOWN):
        self.name, self.reason, self.value = name, reason, value
        shown = "" if value is self.NOT_SHOWN else f"={value!r}"
        super().__init__(f"{name}{shown}: {reason}")


class RawFormatError(UserError, ValueError):
    """A file that cannot be used as a Bayer RAW image; the message names the file and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{shown(path)}: {reason}")


def run_reported(fn, *args) -> int:
    """fn(*args) as an entry point runs it: returns its status (None counts as 0); a UserError
    or OSError becomes one `error:` line on stderr and status 2, Ctrl-C a line saying how to
    resume and status 130."""
    try:
        return fn(*args) or 0
    except (UserError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_STATUS
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def exit_reported(fn, *args) -> None:
    """run_reported for a Hydra task, whose return value Hydra ignores: exits with the status
    when it is not 0."""
    status = run_reported(fn, *args)
    if status:
        sys.exit(status)
