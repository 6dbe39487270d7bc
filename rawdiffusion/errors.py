"""The one kind of error a user can fix, and how every entry point reports it.

A `UserError` (a bad or missing file, a setting that cannot work, a checkpoint from elsewhere)
ends a command with one line naming the file or setting and the reason, exit status 2. An
OSError is the machine's answer about a path (no such file, no permission, disk full) and is
reported the same way. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

USAGE_STATUS = 2  # exit status of a command stopped by a UserError, as argparse's own


class UserError(Exception):
    """A problem with the user's input or settings; its message says what and where."""


class SetupError(UserError):
    """A setting or run that cannot work (missing data, an impossible value, another recipe
    in the run's folder, a diverged loss)."""


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


def hydra_main(config_name: str, task, register, argv: list[str] | None = None) -> None:
    """Run `task(cfg)` as a Hydra command line on the stored config `config_name`: `register()`
    stores the configs first; argv (default sys.argv[1:]) holds the overrides, `-m`, `--cfg`.
    Overrides that do not compose end the command before any work with one `error:` line and
    status 2 (override_problem), as a UserError would."""
    import hydra

    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    problem = override_problem(config_name, sys.argv[1:])
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(USAGE_STATUS)
    hydra.main(version_base="1.3", config_path=None, config_name=config_name)(task)()


def override_problem(config_name: str, args: list[str]) -> str | None:
    """What is wrong with a Hydra command line's overrides of the stored config
    `config_name`, in one line, or None when they compose (or cannot be checked here: `-m`
    sweeps and Hydra's own flags and `hydra` settings are left to Hydra, which reports its
    errors on several lines). Composes the config with Hydra's compose API, so the check is
    Hydra's own: unknown keys, values of the wrong type, missing config group options."""
    if any(a.startswith("-") for a in args):
        return None
    overrides = [a for a in args if not a.lstrip("+~").startswith("hydra")]
    from hydra import compose, initialize
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize(version_base="1.3", config_path=None):
            compose(config_name, overrides=overrides)
    except OverrideParseException as e:
        return f"cannot parse the override {e.override!r}: {e.message.splitlines()[0]}"
    except MissingConfigException as e:
        options = f" (choose one of: {', '.join(e.options)})" if e.options else ""
        return f"{str(e).splitlines()[0]}{options}"
    except (HydraException, OmegaConfBaseException) as e:
        # Hydra's message, then its cause's (OmegaConf's), first lines only: the rest are
        # OmegaConf's key paths and types, and advice ("+foo=bar") meant for open configs.
        first = [str(x).strip().splitlines()[0] for x in (e, e.__cause__) if x and str(x).strip()]
        return ": ".join(dict.fromkeys(line.rstrip(".") for line in first)) or type(e).__name__
    return None
