"""The Hydra command lines of train.py, sample.py, `detect train` and `detect eval`: checked
before any work, then run.

Hydra reports a bad override on several lines (or as a traceback) with status 1, and advises
`+foo=bar`, which a structured config refuses. `hydra_main` first checks the command line with
Hydra's own argument parser and compose API (`override_problem`), so that a bad one ends, as
every other user error (errors.py), with one `error:` line and status 2.
"""

from __future__ import annotations

import importlib
import sys

from . import config
from .detection import config as detection_config
from .errors import USAGE_STATUS, exit_reported

# command: (its stored config, the module whose main(cfg) runs it, what stores the configs)
COMMANDS = {
    "train": ("train", "rawdiffusion.training", config.register),
    "sample": ("sample", "rawdiffusion.evaluation", config.register),
    "detect train": ("detect_train", "rawdiffusion.detection.training",
                     detection_config.register),
    "detect eval": ("detect_eval", "rawdiffusion.detection.evaluation",
                    detection_config.register),
}


def run(command: str, argv: list[str] | None = None) -> None:
    """The command line of a Hydra command of COMMANDS (`python train.py`, `rawdiffusion
    train`, ...): Hydra overrides (argv, default sys.argv[1:]), `-m` for SLURM jobs, `--cfg job`
    to print the configuration. Hydra exits on its own errors; a UserError of the command ends
    it with one `error:` line and status 2."""
    config_name, module, register = COMMANDS[command]
    hydra_main(config_name, _Task(module), register, argv)


class _Task:
    """The task Hydra runs: `module`.main(cfg), its UserError one line. A class, so that
    submitit's launcher pickles it by name; the module is imported when the task runs, so that
    --help, --cfg and a bad override do not wait for PyTorch to load."""

    def __init__(self, module: str):
        self.module = module

    def __call__(self, cfg) -> None:
        main = importlib.import_module(self.module).main
        exit_reported(lambda: main(cfg) and 0)


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


# Hydra flags after which its command line is not the stored config with overrides: left to it.
HYDRA_OWN = ("--version", "--shell-completion", "-sc", "--experimental-rerun", "--config-path",
             "-cp", "--config-name", "-cn", "--config-dir", "-cd")
HELP = ("-h", "--help", "--hydra-help")
# Hydra's flags that select what it does with the overrides (misplaced, argparse refuses them).
HYDRA_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-p", "--package", "--resolve",
               "-i", "--info"}
SWEEP_CHECKS = 64  # most compositions a -m sweep's check makes (one per value of each sweep)


def override_problem(config_name: str, args: list[str]) -> str | None:
    """What is wrong with a Hydra command line (`args`: overrides and Hydra's flags) on the
    stored config `config_name`, in one line, or None when it composes. The configs must be
    stored first (config.register(), or detection.config.register()), as hydra_main does.

    The check is Hydra's own: its argument parser, then its compose API on the overrides (with
    `-m`, each value of each sweep in turn, the others at their first, up to SWEEP_CHECKS
    compositions) with Hydra's settings (so `hydra.*` keys are checked too), then every
    interpolation resolved. Beyond Hydra: a key added with `+` or `++` that the config does
    not have (a misspelt key nothing would read), and a multirun on the SLURM launcher where
    there is no SLURM. Left to Hydra, which reports on several lines: flags that replace the
    stored config (HYDRA_OWN), sweeps that need Hydra's runtime to expand (glob), and
    interpolations of Hydra's runtime (`${hydra:...}`)."""
    if any(a.split("=")[0] in HYDRA_OWN for a in args):
        return None
    helping = any(a in HELP for a in args)
    line = _parsed_command_line([a for a in args if a not in HELP])
    if isinstance(line, str):
        return line
    modes = [m for m, on in (("--run", line.run), ("--multirun", line.multirun),
                             ("--cfg", line.cfg), ("--info", line.info)) if on]
    if len(modes) > 1:
        return f"only one of {', '.join(modes)} can be given"
    if line.resolve and not (line.cfg or helping):
        return "--resolve goes with --cfg or --help"
    multirun = line.multirun or "hydra.mode=MULTIRUN" in line.overrides
    composed = _composed(config_name, line.overrides, multirun)
    if composed is None or isinstance(composed, str):
        return composed
    cfg, added, base = composed
    unknown = _unknown_added_key(config_name, added, base)
    if unknown:
        return unknown
    if multirun and not (helping or line.cfg or line.info):
        return _slurm_problem(cfg)
    return None


def _parsed_command_line(args: list[str]):
    """Hydra's argument parser on `args` (without the help flags): its namespace (overrides,
    -m, --cfg, ...), or what is wrong in one line."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.exit = parser.error = _refused  # argparse would print its usage and exit
    try:
        return parser.parse_args(args)
    except ValueError as e:
        message = str(e)
        if message.startswith("unrecognized arguments") and set(args) & HYDRA_FLAGS:
            message += (" (Hydra's flags, such as -m, go before or after all the overrides, "
                        "not between them)")
        return message


def _composed(config_name: str, overrides: list[str], multirun: bool):
    """Compose `config_name` with the overrides, as each job of a `-m` sweep when multirun,
    and resolve every interpolation. Returns (the first job's config with Hydra's settings,
    the overrides that add a key with + or ++, the first job's config without them), None
    when Hydra alone can expand the sweep (glob) or it is empty, or what is wrong in one
    line."""
    from hydra import compose, initialize
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = _sweep_jobs(parsed) if multirun else [overrides]
        if not jobs:
            return None
        added = [o for o in parsed if (o.is_add() or o.is_force_add())
                 and "/" not in o.key_or_group and not o.key_or_group.startswith("hydra")]
        with initialize(version_base="1.3", config_path=None):
            configs = []
            for job in jobs:  # each composed and resolved before the next, as Hydra runs them
                configs.append(compose(config_name, overrides=job, return_hydra_config=True))
                _resolve_all(configs[-1], skip="hydra")
            base = compose(config_name, overrides=[
                v for v, o in zip(jobs[0], parsed) if o not in added]) if added else None
    except OverrideParseException as e:
        return f"cannot parse the override {e.override!r}: {e.message.splitlines()[0]}"
    except MissingConfigException as e:
        options = f" (choose one of: {', '.join(e.options)})" if e.options else ""
        return f"{str(e).splitlines()[0]}{options}"
    except (HydraException, OmegaConfBaseException) as e:
        # Hydra's message, then its cause's (OmegaConf's), first lines only: the rest are
        # OmegaConf's key paths and types, and advice ("+foo=bar") meant for open configs.
        first = [str(x).strip().splitlines()[0] for x in (e, e.__cause__) if x and str(x).strip()]
        message = ": ".join(dict.fromkeys(m.rstrip(".") for m in first)) or type(e).__name__
        key = getattr(e, "full_key", None)  # OmegaConf's, from resolving an interpolation
        if key and key not in message:
            message = f"{key}: {message}"
        if message.startswith("Ambiguous value"):  # a comma-separated value without -m
            message += " (a list is key=[a,b], a string key='a,b', a sweep needs -m)"
        return message
    except ValueError as e:  # from Hydra's code, without its exception types ("=5")
        return f"cannot apply the overrides {' '.join(overrides)}: {e}"
    return configs[0], added, base


def _unknown_added_key(config_name: str, added: list, base) -> str | None:
    """The first override of `added` (+key=..., ++key=...) whose key the config `base`
    (composed without them) does not have, in one line; None when each is there."""
    from omegaconf import OmegaConf
    from omegaconf.errors import MissingMandatoryValue

    for o in added:  # is the key there? (a `???` value counts as there: select throws)
        try:
            there = OmegaConf.select(base, o.key_or_group, default=_ABSENT,
                                     throw_on_missing=True) is not _ABSENT
        except MissingMandatoryValue:
            there = True
        if not there:
            return (f"{o.input_line}: {o.key_or_group} is not a setting of {config_name} "
                    "(a misspelt key? nothing would read it)")
    return None


def _slurm_problem(cfg) -> str | None:
    """A multirun's problem with its launcher (cfg: composed with Hydra's settings): the SLURM
    launcher on a machine without srun."""
    import shutil

    launcher = cfg.hydra.launcher.get("_target_", "")
    if launcher.endswith("SlurmLauncher") and shutil.which("srun") is None:
        return ("-m runs each job on SLURM (hydra/launcher=rawdiffusion_slurm) and this "
                "machine has no srun; to run the jobs here one after another, add "
                "hydra/launcher=basic")
    return None


_ABSENT = object()


def _sweep_jobs(parsed) -> list[list[str]]:
    """The overrides of the jobs a `-m` check composes, from Hydra's parsed overrides: all
    sweeps at their first value, then each other value of each sweep in turn (the rest at
    their first), at most SWEEP_CHECKS; [] when a sweep is empty or needs Hydra's runtime to
    expand (glob reads the config groups through Hydra's ConfigLoader)."""
    import itertools

    try:
        values = [list(itertools.islice(o.sweep_string_iterator(), SWEEP_CHECKS))
                  if o.is_sweep_override() else [o.input_line] for o in parsed]
    except Exception:  # noqa: BLE001 (whatever Hydra raises outside its runtime)
        return []
    if not all(values):
        return []
    keys = [f"{o.get_key_element()}=" if o.is_sweep_override() else "" for o in parsed]
    first = [key + v[0] for key, v in zip(keys, values)]
    jobs = [first] + [first[:i] + [key + value] + first[i + 1:]
                      for i, (key, v) in enumerate(zip(keys, values)) for value in v[1:]]
    return jobs[:SWEEP_CHECKS]


def _resolve_all(node, skip: str | None = None) -> None:
    """Read every value of an OmegaConf config, so that each interpolation is resolved and
    its type checked (OmegaConf errors propagate); values still missing (`???`, or what
    interpolates them) are left for the command to report. `skip`: a top-level key left out
    (Hydra's own settings, whose interpolations only Hydra's runtime resolves)."""
    from omegaconf import DictConfig, ListConfig
    from omegaconf.errors import (InterpolationResolutionError,
                                  InterpolationToMissingValueError, MissingMandatoryValue)

    keys = range(len(node)) if isinstance(node, ListConfig) else list(node.keys())
    for key in keys:
        if key == skip:
            continue
        try:
            value = node[key]
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            continue
        except InterpolationResolutionError as e:
            if "HydraConfig was not set" in str(e):  # ${hydra:...}: only Hydra's runtime has it
                continue
            raise
        if isinstance(value, (DictConfig, ListConfig)):
            _resolve_all(value)


def _refused(*args):
    """argparse's error(message) and exit(status, message), raising instead."""
    messages = [a for a in args if isinstance(a, str)]
    raise ValueError(messages[-1].strip() if messages else "refused by Hydra's argument parser")
