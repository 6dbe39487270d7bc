"""What a run's configuration names: its data splits, its folder, its DDIM steps.

Training and sampling read these from a composed configuration (config.py holds its schema):
sample.py finds a run's checkpoint under the name training gave its folder, so both call
`run_name` with the same configuration.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from .datasets.layout import DESCRIPTION, PreparedDataset
from .errors import SetupError


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


def ddim_steps(respacing: str) -> int:
    """"ddim24" -> 24 (the reference's respacing names; only DDIM is used here)."""
    from .diffusion import ddim_timesteps

    m = re.fullmatch(r"ddim(\d+)", respacing)
    if not m:
        raise SetupError(f"diffusion_val.timestep_respacing={respacing!r}: expected ddim<N>, "
                         "e.g. ddim24")
    try:
        ddim_timesteps(int(m.group(1)))
    except ValueError as e:
        raise SetupError(f"diffusion_val.timestep_respacing={respacing}: {e}") from None
    return int(m.group(1))


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
