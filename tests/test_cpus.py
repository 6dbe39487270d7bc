"""cpus.py: the CPU threads and data loader processes of the long commands, chosen from the CPUs
a process may use or set (system.threads / system.workers of the Hydra commands, --threads of
convert, prepare and baseline fit), and what reaches PyTorch."""

import logging
import os
import warnings

import pytest
import torch
from hydra import compose, initialize
from omegaconf import OmegaConf

from rawdiffusion import config, cpus, evaluation, harness, training
from rawdiffusion.cli import main as cli
from rawdiffusion.detection import config as detection_config
from rawdiffusion.detection import evaluation as detection_evaluation
from rawdiffusion.detection import training as detection_training
from rawdiffusion.errors import SetupError


@pytest.fixture(autouse=True)
def threads_back(monkeypatch):
    """Each test's thread settings are undone: PyTorch's and $OMP_NUM_THREADS."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    yield
    torch.set_num_threads(threads)


def machine(monkeypatch, cpus_available: int, omp: str | None = None, local: int | None = None):
    """A process that may run on `cpus_available` CPUs, with $OMP_NUM_THREADS and torchrun's
    LOCAL_WORLD_SIZE as given (None: unset)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus_available)))
    for name, value in (("OMP_NUM_THREADS", omp), ("LOCAL_WORLD_SIZE", local)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))


@pytest.mark.parametrize("available, omp, local, processes, threads, workers", [
    (2, None, None, None, 2, 1),  # the 2-core machine: all for compute, one reader
    (1, None, None, None, 1, 0),  # one CPU: the data is read in the process itself
    (16, None, None, None, 16, 4),  # readers at most 4
    (16, None, 4, None, 4, 3),  # four torchrun processes share the CPUs
    (16, "1", 4, None, 1, 3),  # torchrun's OMP_NUM_THREADS=1 caps the threads
    (2, "8", None, None, 2, 1),  # ... but never above the CPUs
    (4, None, None, 2, 2, 3),  # prepare's two worker processes share the CPUs
    (3, None, 4, None, 1, 0),  # more processes than CPUs: one thread each
])
def test_defaults_follow_the_cpus_a_process_may_use(monkeypatch, available, omp, local,
                                                    processes, threads, workers):
    machine(monkeypatch, available, omp, local)
    assert cpus.available() == available
    assert cpus.default_threads(processes) == threads
    assert cpus.default_workers() == workers


def test_set_threads_reaches_pytorch_and_later_processes_and_is_logged(monkeypatch, caplog):
    machine(monkeypatch, 2)
    with caplog.at_level(logging.INFO, logger="rawdiffusion"):
        assert cpus.set_threads(None, "system.threads") == 2
    assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    assert caplog.messages == ["using 2 CPU thread(s) (chosen from 2 available CPU(s); set "
                               "system.threads to change)"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rawdiffusion"):
        assert cpus.set_threads(1, "--threads", processes=3) == 1
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert caplog.messages == ["using 1 CPU thread(s) in each of 3 processes (--threads=1)"]
    with pytest.raises(SetupError, match=r"^system.threads=0: must be >= 1"):
        cpus.set_threads(0, "system.threads")


def test_the_default_data_loader_workers_raise_no_warning_here():
    """PyTorch warns that workers "might freeze" when there are more than the CPUs; the default
    leaves one CPU to compute (sample.py warned twice on a 2-core machine with 4)."""
    loader = torch.utils.data.DataLoader(range(4), num_workers=cpus.default_workers())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(int(x) for x in loader) == [0, 1, 2, 3]
    run = harness.Run(OmegaConf.create({"system": {"workers": None}}), 0, 1,
                      torch.device("cpu"), None, {})
    assert run.workers == cpus.default_workers()
    assert harness.Run(OmegaConf.create({"system": {"workers": 3}}), 0, 1,
                       torch.device("cpu"), None, {}).workers == 3


def composed(name: str, overrides: list[str]):
    (detection_config if name.startswith("detect") else config).register()
    with initialize(version_base="1.3", config_path=None):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("name, main", [
    ("train", training.main), ("sample", evaluation.main),
    ("detect_train", detection_training.main), ("detect_eval", detection_evaluation.main)])
def test_system_threads_reaches_pytorch_in_every_hydra_command(tmp_path, name, main):
    missing = tmp_path / "missing"
    data = [f"general.data_root={missing}"] if name.startswith("detect") else \
        ["dataset=folder", f"dataset.root={missing}"]
    for threads in (2, 1):  # each command fails on the missing data, after setting threads
        cfg = composed(name, [*data, f"general.out={tmp_path}", f"system.threads={threads}"])
        with pytest.raises(SetupError, match="missing|no detector checkpoint"):
            main(cfg)
        assert torch.get_num_threads() == threads
    with pytest.raises(SetupError, match=r"system.threads=0: must be >= 1"):
        main(composed(name, [*data, "system.threads=0"]))


@pytest.mark.parametrize("command", [
    ["convert", "missing.jpg", "--out", "OUT"],
    ["prepare", "folder", "--raw-dir", "missing", "--out", "OUT", "--workers", "1"],
    ["baseline", "fit", "missing", "--kind", "linear", "--out", "OUT/b.json"],
])
def test_threads_option_reaches_pytorch(tmp_path, command):
    command = [str(tmp_path / a) if a.startswith(("missing", "OUT")) else a for a in command]
    for threads in ("2", "1"):  # each command fails on the missing input, after setting threads
        assert cli([*command, "--threads", threads]) == 2
        assert torch.get_num_threads() == int(threads)
        assert os.environ["OMP_NUM_THREADS"] == threads


def test_prepare_divides_the_cpus_among_its_workers(tmp_path, monkeypatch):
    machine(monkeypatch, 4)
    assert cli(["prepare", "folder", "--raw-dir", str(tmp_path / "missing"), "--out",
                str(tmp_path / "out"), "--workers", "2"]) == 2
    assert os.environ["OMP_NUM_THREADS"] == "2"  # what its spawned workers start with
