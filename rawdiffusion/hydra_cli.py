"""The Hydra command lines of train.py, sample.py, `detect train` and `detect eval`: checked
before any work, then run; and their --help.

Hydra reports a bad override on several lines (or as a traceback) with status 1, and advises
`+foo=bar`, which a structured config refuses. `hydra_main` first checks the command line with
Hydra's own argument parser and compose API (`override_problem`), so that a bad one ends, as
every other user error (errors.py), with one `error:` line and status 2.

Start-up. The configuration is composed once: a plain run (no -m, --cfg, --info) runs its job
on the configuration the check composed (with Hydra's run_job, as Hydra's launchers do), and
--help prints it with what each setting means (help_text, instead of Hydra's help, which lists
every config group in the store, composing the config dozens of times). What is left (-m,
--cfg, --info, --hydra-help, ...) goes to Hydra, which composes again. A command's module, and
PyTorch with it, is imported only when its job starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import itertools
import json
import shutil
import sys
import textwrap
from dataclasses import dataclass

import hydra
from hydra import compose, initialize
from hydra._internal.callbacks import Callbacks
from hydra._internal.utils import get_args_parser
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import run_job
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf, read_write
from omegaconf.errors import (InterpolationResolutionError, InterpolationToMissingValueError,
                              MissingMandatoryValue, OmegaConfBaseException)

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
    to print the configuration, --help. Hydra exits on its own errors; a UserError of the
    command ends it with one `error:` line and status 2."""
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
    status 2 (override_problem), as a UserError would. --help prints help_text."""
    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    with initialize(version_base="1.3", config_path=None):
        checked = _checked(config_name, sys.argv[1:])
        if checked.problem:
            print(f"error: {checked.problem}", file=sys.stderr)
            sys.exit(USAGE_STATUS)
        if checked.then == "help":
            print(help_text(checked.cfg, checked.resolve))
            return
        if checked.then == "run":
            _run_job(checked.cfg, task)
            return
    hydra.main(version_base="1.3", config_path=None, config_name=config_name)(task)()


def _run_job(cfg: DictConfig, task) -> None:
    """Run `task` on `cfg` (composed with Hydra's settings) as Hydra's run mode does: the job's
    logging, HydraConfig (for `${hydra:...}`), Hydra's callbacks; the task's exception is
    raised. Within an initialize() context."""
    with read_write(cfg.hydra):
        cfg.hydra.mode = RunMode.RUN
    context = HydraContext(config_loader=GlobalHydra.instance().hydra.config_loader,
                           callbacks=Callbacks(cfg))
    result = run_job(task_function=task, config=cfg, job_dir_key="hydra.run.dir",
                     job_subdir_key=None, hydra_context=context)
    result.return_value  # noqa: B018 (raises the task's exception)


# Hydra flags after which its command line is not the stored config with overrides: left to it.
HYDRA_OWN = ("--version", "--shell-completion", "-sc", "--experimental-rerun", "--config-path",
             "-cp", "--config-name", "-cn", "--config-dir", "-cd")
HELP = ("-h", "--help", "--hydra-help")
# Hydra's flags that select what it does with the overrides (misplaced, argparse refuses them).
HYDRA_FLAGS = {"-m", "--multirun", "-r", "--run", "-c", "--cfg", "-p", "--package", "--resolve",
               "-i", "--info"}
SWEEP_CHECKS = 64  # most compositions a -m sweep's check makes (one per value of each sweep)


@dataclass
class _Checked:
    """A checked command line: what is wrong with it (None when nothing), what comes next
    ("run": a plain run on `cfg`; "help": help_text of `cfg`; "hydra": left to Hydra), the
    first job's config with Hydra's settings (None when not composed) and --resolve."""

    problem: str | None
    then: str = "hydra"
    cfg: DictConfig | None = None
    resolve: bool = False


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
    with initialize(version_base="1.3", config_path=None):
        return _checked(config_name, args).problem


def _checked(config_name: str, args: list[str]) -> _Checked:
    """override_problem's check, within an initialize() context, and what comes next."""
    if any(a.split("=")[0] in HYDRA_OWN for a in args):
        return _Checked(None)
    helping = any(a in HELP for a in args)
    line = _parsed_command_line([a for a in args if a not in HELP])
    if isinstance(line, str):
        return _Checked(line)
    modes = [m for m, on in (("--run", line.run), ("--multirun", line.multirun),
                             ("--cfg", line.cfg), ("--info", line.info)) if on]
    if len(modes) > 1:
        return _Checked(f"only one of {', '.join(modes)} can be given")
    if line.resolve and not (line.cfg or helping):
        return _Checked("--resolve goes with --cfg or --help")
    multirun = line.multirun or "hydra.mode=MULTIRUN" in line.overrides
    composed = _composed(config_name, line.overrides, multirun)
    if composed is None or isinstance(composed, str):
        return _Checked(composed)
    cfg, added, base = composed
    problem = _unknown_added_key(config_name, added, base)
    if not problem and multirun and not (helping or line.cfg or line.info):
        problem = _slurm_problem(cfg)
    if "--hydra-help" in args or line.shell_completion:
        then = "hydra"
    elif helping:
        then = "help"
    else:
        then = "hydra" if multirun or line.cfg or line.info else "run"
    return _Checked(problem, then, cfg, line.resolve)


def _parsed_command_line(args: list[str]):
    """Hydra's argument parser on `args` (without the help flags): its namespace (overrides,
    -m, --cfg, ...), or what is wrong in one line."""
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
    line. Within an initialize() context."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        jobs = _sweep_jobs(parsed) if multirun else [overrides]
        if not jobs:
            return None
        added = [o for o in parsed if (o.is_add() or o.is_force_add())
                 and "/" not in o.key_or_group and not o.key_or_group.startswith("hydra")]
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


# ----------------------------------------------------------------------------- --help

WIDTH = 100  # of the help text


def help_text(cfg: DictConfig, resolve: bool = False) -> str:
    """What --help prints for a config composed with the command line's overrides (with
    Hydra's settings): what the command does (the docstring of its config's dataclass), the
    config groups it uses with their options, and each of its settings with its value (as
    composed, interpolations resolved with --resolve) and what it means (the `doc` of its
    field, config.setting). Its own settings come first, then each section's."""
    schema = OmegaConf.get_type(cfg)
    lines = [inspect.cleandoc(schema.__doc__), "", "Config groups (group=option; the one chosen "
             "first):"]
    choices = cfg.hydra.runtime.choices
    for group, options in _config_groups(cfg).items():
        chosen = choices.get(group)
        ordered = [chosen] * (chosen in options) + [o for o in options if o != chosen]
        lines += textwrap.wrap(f"{group}: {', '.join(ordered)}", WIDTH, initial_indent="  ",
                               subsequent_indent="      ")
    lines += ["", "Settings (key=value), with the values of this command line:"]
    lines += _settings(cfg, resolve)
    lines += ["", "Hydra's flags: --cfg job prints the configuration; -m runs each job of a "
                  "sweep (on SLURM: hydra.launcher.partition=P); --hydra-help for more."]
    return "\n".join(lines)


def _config_groups(cfg: DictConfig) -> dict[str, list[str]]:
    """{group: its options} of the groups in Hydra's ConfigStore that set a section of `cfg`
    (e.g. dataset, dataset/train, dataset/val; not Hydra's own, nor other commands')."""
    groups = {}

    def walk(node: dict, path: str) -> None:
        for name, value in sorted(node.items()):
            if isinstance(value, dict):
                options = sorted(n.removesuffix(".yaml") for n, v in value.items()
                                 if not isinstance(v, dict))
                if options:
                    groups[path + name] = options
                walk(value, f"{path}{name}/")

    walk({k: v for k, v in ConfigStore.instance().repo.items() if k in cfg and k != "hydra"},
         "")
    return groups


def _settings(node: DictConfig, resolve: bool, prefix: str = "") -> list[str]:
    """Help lines of the settings in `node` (prefix: its key and a dot): its own values first,
    each `key=value` with what it means below, then its sections, each under its docstring."""
    kind = OmegaConf.get_type(node)
    docs = {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(kind)} \
        if dataclasses.is_dataclass(kind) else {}
    keys = [k for k in node.keys() if not (prefix == "" and k == "hydra")]
    sections = [k for k in keys if isinstance(node._get_node(k), DictConfig)]
    lines = []
    for key in keys:
        if key not in sections:
            lines.append(f"  {prefix}{key}={_value(node, key, resolve)}")
            lines += textwrap.wrap(docs.get(key, ""), WIDTH, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
    for key in sections:
        section = node._get_node(key)
        about = inspect.cleandoc(OmegaConf.get_type(section).__doc__ or "").split("\n\n")[0]
        lines += [""] + textwrap.wrap(f"{prefix}{key}: {' '.join(about.split())}", WIDTH)
        lines += _settings(section, resolve, f"{prefix}{key}.")
    return lines


def _value(node: DictConfig, key: str, resolve: bool) -> str:
    """A setting's value as an override would write it: the interpolation as written unless
    `resolve` (and it resolves), ??? when missing."""
    child = node._get_node(key)
    value = child if isinstance(child, ListConfig) else child._value()
    if resolve:
        with contextlib.suppress(OmegaConfBaseException):
            value = node[key]
    if isinstance(value, ListConfig) and not OmegaConf.is_missing(node, key):
        value = OmegaConf.to_container(value, resolve=resolve)
    return value if isinstance(value, str) else json.dumps(value).replace(" ", "")
