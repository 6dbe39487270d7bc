"""What a run's configuration names: its data splits, its folder, its DDIM steps.

Training and sampling read these from a composed configuration (config.py and
detection/config.py hold its schema): sample.py finds a run's checkpoint under the name training
gave its folder, so both call `run_name` with the same configuration, as `detect train` and
`detect eval` call `detector_run_dir`.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from .datasets.layout import DESCRIPTION, PreparedDataset
from .errors import SettingError, SetupError
from .settings import check_steps


def open_split(split: DictConfig, what: str, paired: bool = True) -> PreparedDataset:
    """The prepared dataset of a train/val config, or an error that says how to make it."""
    root = Path(split.root)
    if not (root / DESCRIPTION).is_file():
        message = f"{what} data: {root.resolve()} is not a prepared dataset (no {DESCRIPTION})."
        if split.prepare:
            message += (f" Make it with `{split.prepare}`, or point general.data_root "
                        "(or $RAWDIFFUSION_DATA) at the folder that holds it.")
        else:
            message += " Make it with `rawdiffusion prepare ...`."
        raise SetupError(message)
    dataset = PreparedDataset(root)
    if paired and dataset.kind != "paired":
        raise SetupError(f"{root}: a {dataset.kind!r} dataset; {what} needs paired RAW/RGB")
    return dataset


def ddim_steps(respacing: str, sampler: str = "ddim") -> int:
    """"ddim24" -> 24: the reference's respacing names, read as the step count of `sampler`
    (settings.check_steps, the one check of a step count; its error is worded here with the
    setting's Hydra key)."""
    m = re.fullmatch(r"ddim(\d+)", respacing)
    if not m:
        raise SetupError(f"diffusion_val.timestep_respacing={respacing!r}: expected ddim<N>, "
                         "e.g. ddim24")
    try:
        return check_steps(int(m.group(1)), sampler)
    except SettingError as e:
        if e.name != "steps":
            raise
        raise SetupError(f"diffusion_val.timestep_respacing={respacing}: {e.reason}") from None


def run_name(cfg: DictConfig, dataset_name: str) -> str:
    """The run directory's name: general.run, else <dataset>[-n<max_items>][-<preset>]-s<seed>.

    Reads general.run, dataset.train.max_items, model.preset and general.seed of `cfg`;
    `dataset_name` is dataset.train.name or, when that is None, the name in dataset.json."""
    if cfg.general.run:
        return cfg.general.run
    parts = [re.sub(r"[^\w.-]+", "_", dataset_name)]
    if cfg.dataset.train.max_items is not None:
        parts.append(f"n{cfg.dataset.train.max_items}")
    if cfg.model.preset != "paper":
        parts.append(cfg.model.preset)
    return "-".join(parts + [f"s{cfg.general.seed}"])


def detector_run_name(cfg: DictConfig) -> str:
    """A detector run's directory name: general.run, else
    <real dataset>[-n<max_items>][-<generated>-f<f>][-rgb]-s<seed>."""
    if cfg.general.run:
        return cfg.general.run
    real = Path(cfg.data.real.root)
    name = PreparedDataset(real).description["name"] if (real / DESCRIPTION).is_file() \
        else real.name
    parts = [name]
    if cfg.data.real.max_items is not None:
        parts.append(f"n{cfg.data.real.max_items}")
    if cfg.data.real_fraction < 1:
        generated = cfg.data.generated.name or Path(cfg.data.generated.root or "generated").name
        parts.append(f"{generated}-f{cfg.data.real_fraction:g}")
    if cfg.data.input == "rgb":
        parts.append("rgb")
    return "-".join([re.sub(r"[^\w.-]+", "_", p) for p in parts] + [f"s{cfg.general.seed}"])


def detector_run_dir(cfg: DictConfig) -> Path:
    """<general.out>/<detector_run_name>"""
    return Path(cfg.general.out) / detector_run_name(cfg)
