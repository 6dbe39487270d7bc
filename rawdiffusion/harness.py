"""The run harness of both trainers (training.py: the diffusion model; detection/training.py:
the detector). Each trainer keeps its model, loss, data and loop; this is the skeleton around
them:

- `launch`: the processes of a launch (torchrun, SLURM tasks), their CPU threads and devices;
  the first process reports.
- `check_settings`: the settings every trainer has, checked before any work.
- `Run`: what a run is given (its settings, process, folder), how it runs (autocast, data
  loader processes, progress bar) and its records; `open_checkpoint` finds the checkpoint a
  rerun resumes and `check_recipe` refuses one of another recipe (`recipe_changes`).
- `Recorder`: the first process's train.log, stats.jsonl and TensorBoard scalars.
- `LossMeter`: per-step values summed on the device and averaged over the processes when they
  are recorded; it stops a run whose loss is no longer finite, and `check_finite` stops one
  whose weights are not before they are saved.

Exact resumption is each trainer's part (no random state carried from one step to the next);
the harness keeps the records consistent with it: a resumed Recorder drops what was recorded
after the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .atomic import atomic_output
from .cpus import default_workers, set_threads
from .errors import SetupError
from .processes import barrier, mean_over_processes, processes, shard

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"  # in the run directory; rerunning the same command resumes it


def launch(train: Callable[[DictConfig, int, int, torch.device], Path], cfg: DictConfig) -> Path:
    """A trainer's `main`: train(cfg, rank, world, device) in this process of the launch, on its
    device, with system.threads CPU threads (cpus.set_threads); returns train's result once
    every process is done. Processes other than the first log warnings only."""
    with processes() as device:
        rank, world = shard()
        if rank:
            logging.getLogger().setLevel(logging.WARNING)  # one process reports
        set_threads(cfg.system.threads, "system.threads")
        result = train(cfg, rank, world, device)
        barrier()  # finish together: a late process would find its peers gone
        return result


def check_settings(cfg: DictConfig, world: int, counts: dict[str, int],
                   hints: dict[str, str] | None = None) -> None:
    """The settings every trainer has that cannot work, reported before any work: missing ones
    (`???`; `hints` says what to give for some keys), optim.batch_size not divisible by the
    `world` processes, `counts` ({key: value}) below 1, a negative general.seed, a general.out
    that is a file, a negative system.workers. Raises SetupError naming them."""
    missing = [k for k, v in flatten(OmegaConf.to_container(cfg)).items() if v == "???"]
    if missing:
        hints = hints or {}
        raise SetupError("missing setting(s): " + "; ".join(
            f"{k}=... ({hints[k]})" if k in hints else f"{k}=..." for k in missing))
    if cfg.optim.batch_size % world:
        raise SetupError(f"optim.batch_size={cfg.optim.batch_size} is not divisible by the "
                         f"{world} processes")
    below = [f"{k}={v}" for k, v in counts.items() if v < 1]
    if below:
        raise SetupError(f"{', '.join(below)}: must be >= 1")
    if cfg.general.seed < 0:
        raise SetupError(f"general.seed={cfg.general.seed}: must be >= 0")
    out = Path(cfg.general.out)
    if out.exists() and not out.is_dir():
        raise SetupError(f"general.out={out}: a file; run folders are made in general.out")
    if cfg.system.workers is not None and cfg.system.workers < 0:
        raise SetupError(f"system.workers={cfg.system.workers}: must be >= 0 (0: load the data "
                         "in the training process; null: chosen from the CPUs, cpus.py)")

# ----------------------------------------------------------------------------- the run

@dataclass
class Run:
    """What a run is given: its settings (`resolved`: as config.yaml and its checkpoints keep
    them), this process of the launch and its device, and the run directory."""

    cfg: DictConfig
    rank: int
    world: int
    device: torch.device
    dir: Path
    resolved: dict

    @property
    def checkpoint(self) -> Path:
        return self.dir / CHECKPOINT

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def workers(self) -> int:
        """Data loader processes of this process: system.workers, or cpus.default_workers()."""
        workers = self.cfg.system.workers
        return default_workers() if workers is None else workers

    def autocast(self):
        """bf16 autocast on CUDA when system.bf16 (a CPU run stays float32)."""
        return torch.autocast("cuda", torch.bfloat16, enabled=self.cuda and self.cfg.system.bf16)

    def progress(self, total: int, initial: int, unit: str) -> tqdm:
        """The first process's progress bar, named after the run."""
        return tqdm(total=total, initial=initial, disable=self.rank != 0, unit=unit,
                    dynamic_ncols=True, desc=self.dir.name)

    def write_config(self) -> None:
        """config.yaml (the first process), making the run directory."""
        if self.rank == 0:
            self.dir.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.dir / "config.yaml") as tmp:
                tmp.write_text(OmegaConf.to_yaml(self.resolved))

    def records(self, step: int):
        """A context of the first process's Recorder from `step` on (None on the others)."""
        return Recorder(self.dir, step) if self.rank == 0 else contextlib.nullcontext()


def resolved(cfg: DictConfig) -> dict:
    """The settings as config.yaml and checkpoints keep them: a dict, interpolations resolved,
    without Hydra's own."""
    settings = OmegaConf.to_container(cfg, resolve=True)
    settings.pop("hydra", None)
    return settings


def open_checkpoint(run_dir: Path, read: Callable[[Path], dict]) -> dict | None:
    """The dict of the run's checkpoint, read by `read`, when there is one to resume; None for
    a new run. Raises SetupError when something else than a file is in its place."""
    path = run_dir / CHECKPOINT
    if path.exists() and not path.is_file():
        raise SetupError(f"{path}: not a file; training writes its checkpoint there")
    return read(path) if path.is_file() else None


def check_recipe(run: Run, old: dict, resumable: Iterable[str], added: dict) -> None:
    """Refuses to resume a checkpoint whose settings (`old`) are of another recipe than the
    run's (recipe_changes), naming what differs and what to do."""
    changes = recipe_changes(old, run.resolved, resumable, added)
    if changes:
        raise SetupError(f"{run.dir} holds a run with another recipe (" + "; ".join(changes)
                         + "). Rerun with its settings to resume it, or name a new run with "
                         "general.run=NAME.")


def recipe_changes(old: dict, new: dict, resumable: Iterable[str], added: dict) -> list[str]:
    """The keys, other than `resumable` ones (a key or a section, e.g. "log"), whose values
    differ between two resolved configs: "optim.lr: 0.0001 -> 0.0002". A key of `added` that
    `old` lacks (a recipe key newer than the checkpoint) has its `added` value."""
    a, b = {**added, **flatten(old)}, flatten(new)
    resumable = tuple(resumable)
    changed = []
    for key in sorted(set(a) | set(b)):
        if any(key == r or key.startswith(r + ".") for r in resumable):
            continue
        if a.get(key) != b.get(key):
            changed.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return changed


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ----------------------------------------------------------------------------- records

class Recorder:
    """The first process's records: train.log, TensorBoard scalars and stats.jsonl."""

    def __init__(self, run_dir: Path, step: int):
        # Imported here: TensorBoard takes a second to import, and only training records.
        from torch.utils.tensorboard import SummaryWriter

        # The package's messages, INFO and up, also go to the run's own log file.
        self.logger, self.level = logging.getLogger("rawdiffusion"), None
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.level = self.logger.level
            self.logger.setLevel(logging.INFO)
        self.handler = logging.FileHandler(run_dir / "train.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self.handler)
        # A killed run may have recorded steps after its last checkpoint, the last line
        # perhaps half-written: keep what came before the checkpoint.
        path = run_dir / "stats.jsonl"
        if path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line)["step"] <= step:
                        kept.append(line + "\n")
            with atomic_output(path) as tmp:
                tmp.write_text("".join(kept))
        self.stats = open(path, "a")
        self.writer = SummaryWriter(run_dir / "tb", purge_step=step + 1)

    def __call__(self, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.stats.write(json.dumps({"step": step, **values}) + "\n")
        self.stats.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()
        self.stats.close()
        self.logger.removeHandler(self.handler)
        self.handler.close()
        if self.level is not None:
            self.logger.setLevel(self.level)


class LossMeter:
    """Per-step values (the loss first, then its terms or other shares) summed on the device
    since they were last read, with the time that took: reading them waits for the GPU, so a
    trainer reads them only at its log interval and before a checkpoint."""

    def __init__(self, names: tuple[str, ...], device: torch.device, step: int):
        self.names = names
        self.sums = torch.zeros(len(names), device=device)
        self.step, self.time = step, time.perf_counter()

    def add(self, values: torch.Tensor) -> None:
        """Add one step's values, a (len(names),) tensor on the device."""
        self.sums += values

    def restart_clock(self) -> None:
        """Time spent since (sampling, validation) does not count as training speed."""
        self.time = time.perf_counter()

    def read(self, step: int, unit: str, stopped: Callable[[], str]) -> tuple[dict, float]:
        """({name: mean since the last read, over all processes}, steps per second), at `step`
        (after at least one step since). Raises SetupError when a mean is not finite: "the
        loss became nan between <unit>s a and b; stopping. " followed by `stopped()`, which
        says what stays and what to do."""
        n = step - self.step
        means = (mean_over_processes(self.sums) / n).tolist()
        if not all(math.isfinite(v) for v in means):
            raise SetupError(f"the loss became {means[0]} between {unit}s {self.step} and "
                             f"{step}; stopping. {stopped()}")
        now = time.perf_counter()
        rate = n / (now - self.time)
        self.sums.zero_()
        self.step, self.time = step, now
        return dict(zip(self.names, means)), rate


def memory_scalars(run: Run) -> dict:
    """The peak GPU memory so far, in GiB ({} on CPU)."""
    if not run.cuda:
        return {}
    return {"train/max_memory_gb": torch.cuda.max_memory_allocated(run.device) / 2**30}


def check_finite(net: torch.nn.Module, at: str, stopped: Callable[[], str]) -> None:
    """Before a checkpoint is written: raises SetupError ("the weights are not finite at
    <at>; stopping. " and `stopped()`) when a weight is NaN or infinite."""
    if not all(torch.isfinite(p).all() for p in net.parameters()):
        raise SetupError(f"the weights are not finite at {at}; stopping. {stopped()}")
