"""config.py: which keys a resumed run may change (declared on the fields), the SLURM launcher
it presets without importing its plugin, and what sample.py's configuration takes."""

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from rawdiffusion import config, harness, hydra_cli
from rawdiffusion.runs import run_name

REPO = Path(__file__).resolve().parents[1]

# RESUMABLE as it was kept by hand before it was derived from the dataclasses.
HAND_KEPT = ("general.out", "general.run", "general.data_root", "general.save_every",
             "dataset.train.root", "dataset.val", "dataset.root", "dataset.train.prepare",
             "optim.max_steps", "diffusion_val", "system", "log")


def composed(name="train", overrides=(), hydra=False):
    config.register()
    with initialize(version_base="1.3", config_path=None):
        return compose(config_name=name, overrides=list(overrides), return_hydra_config=hydra)


def test_resumable_keys_are_those_kept_by_hand_before():
    assert sorted(config.RESUMABLE) == sorted(HAND_KEPT)
    assert config.resumable_keys(config.TrainConfig) == config.RESUMABLE


def test_a_new_field_is_part_of_the_recipe_unless_declared_resumable():
    @dataclass
    class NewOptim(config.OptimConfig):
        warmup: int = 0  # a new field, declared as fields are by default

    @dataclass
    class NewGeneral(config.TrainGeneralConfig):
        cache: str = config.resumable("cache")

    @dataclass
    class NewTrain(config.TrainConfig):
        optim: NewOptim = field(default_factory=NewOptim)
        general: NewGeneral = field(default_factory=NewGeneral)

    keys = config.resumable_keys(NewTrain)
    assert set(keys) == set(HAND_KEPT) | {"general.cache"}
    assert not any(k == "optim.warmup" or "optim.warmup".startswith(k + ".") for k in keys)
    # subclasses made outside config.py (as here) change nothing of the real configuration's
    assert config.resumable_keys(config.TrainConfig) == config.RESUMABLE

    # recipe_changes compares every key but the resumable ones
    old = OmegaConf.to_container(composed(overrides=["dataset=folder", "dataset.root=x"]),
                                 resolve=True)
    new = {**old, "optim": {**old["optim"], "warmup": 100, "max_steps": 1}, "log": {"every": 1}}
    changes = lambda new: harness.recipe_changes(old, new, config.RESUMABLE, config.ADDED)  # noqa
    assert changes(new) == ["optim.warmup: None -> 100"]
    assert changes({**old, "general": {**old["general"], "seed": 1}}) \
        == ["general.seed: 0 -> 1"]


def test_registering_imports_no_launcher_plugin():
    code = ("import sys; from rawdiffusion import config; config.register(); "
            "print(sorted(m for m in sys.modules if 'submitit' in m))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_multirun_launcher_is_the_presets_slurm_one():
    launcher = composed(overrides=["dataset=fivek_nikon", "hydra.launcher.partition=P"],
                        hydra=True).hydra.launcher
    assert launcher._target_ == \
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.tasks_per_node,
            launcher.cpus_per_task, launcher.mem_gb, launcher.max_num_timeout,
            launcher.partition) == (1440, 1, 1, 6, 32, 5, "P")
    with pytest.raises(ConfigCompositionException):  # still the plugin's typed schema
        composed(overrides=["dataset=fivek_nikon", "hydra.launcher.timeout_min=abc"], hydra=True)


def test_sample_takes_what_names_the_run_and_finds_it(tmp_path):
    naming = ["dataset=folder", f"dataset.root={tmp_path}", "dataset.train.name=cam",
              "dataset.train.max_items=3", "general.seed=2", "model.preset=small",
              "diffusion_val.timestep_respacing=ddim2", "system.workers=0"]
    training = ["model.channels=8", "diffusion.w_l1=0", "optim.crop=32", "optim.lr=1e-3",
                "log.every=2"]
    train = composed("train", naming + training)
    sample = composed("sample", naming + ["save_pred=true", "system.bf16=true"])
    assert run_name(sample, "cam") == run_name(train, "cam") == "cam-n3-small-s2"
    assert sample.save_pred and sample.diffusion_val.timestep_respacing == "ddim2"
    assert sample.system.bf16 and not composed("sample").system.bf16  # off unless asked
    # sample.py holds only what it reads: nothing else
    assert set(sample) == {"general", "dataset", "model", "diffusion_val", "system",
                           "checkpoint", "save_pred", "pred_format", "rgb_only", "tile",
                           "overlap", "sampler", "batch_size", "out", "noise"}
    # no sensor noise, and the camera's own white balance, unless asked
    assert dict(sample.noise) == {"iso": None, "exposure": 0.0, "white_balance": None}
    noisy = composed("sample", naming + ["noise.iso=1600", "noise.exposure=-2",
                                         "noise.white_balance=[2.1,1,1.6]"])
    assert (noisy.noise.iso, noisy.noise.exposure) == (1600, -2.0)
    assert list(noisy.noise.white_balance) == [2.1, 1, 1.6]
    assert composed("sample", naming + ["noise.iso=draw"]).noise.iso == "draw"
    assert composed("sample", naming + ["noise.white_balance=draw"]).noise.white_balance == "draw"
    assert set(sample.general) == {"seed", "out", "run", "data_root"}
    assert set(sample.model) == {"preset"} and set(sample.system) == {"threads", "workers",
                                                                       "bf16"}


@pytest.mark.parametrize("override", ["optim.lr=1e-3", "model.channels=8",
                                      "system.compile=true", "log.every=2", "diffusion.w_l1=0",
                                      "general.save_every=5"])
def test_sample_refuses_a_training_only_setting_in_one_line(capsys, override):
    from rawdiffusion.cli import main as cli

    with pytest.raises(SystemExit) as info:
        cli(["sample", "dataset=fivek_nikon", override])
    err = capsys.readouterr().err
    key = override.split("=")[0]
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: Could not override '{key}': Key '") and " not in '" in err


@pytest.mark.parametrize("command, override, message", [
    (["train"], "foo=bar", "Could not override 'foo': Key 'foo' not in 'TrainConfig'"),
    (["train"], "optim.lr=abc", "Error merging override optim.lr=abc: Value 'abc' of type "
                                "'str' could not be converted to Float"),
    (["train"], "dataset=nope", "In 'train': Could not find 'dataset/nope' (choose one of: "
                                "fivek_canon,"),
    (["sample"], "diffusion_val.timestep_respacing=[1]", "Error merging override"),
    (["detect", "train"], "data=x", "In 'detect_train': Could not find 'data/x' (choose one "
                                    "of: nod_nikon, nod_sony)"),
    (["detect", "eval"], "checkpoint=[", "cannot parse the override 'checkpoint=[': "),
    # found by trying to break it: each was a traceback or Hydra's several lines, status 1
    (["train"], "=5", "cannot apply the overrides =5: Config group override must be a string"),
    (["train", "--cfg", "job"], "optim.lrr=1", "Could not override 'optim.lrr'"),
    (["train", "--help"], "optim.lrr=1", "Could not override 'optim.lrr'"),
    (["train", "-m", "optim.lr=1e-3,1e-4"], "optim.lrr=1", "Could not override 'optim.lrr'"),
    (["train"], "hydra.nope=1", "Could not override 'hydra.nope': Key 'nope' not in 'HydraConf'"),
    (["train"], "general.seed=${general.out}", "general.seed: While dereferencing "
                                               "interpolation '${general.out}': Value 'runs' of "
                                               "type 'str'"),
    (["train"], "general.seed=${nope}", "general.seed: Interpolation key 'nope' not found"),
    (["train"], "++optim.lrr=1", "++optim.lrr=1: optim.lrr is not a setting of train (a "
                                 "misspelt key? nothing would read it)"),
    (["detect", "train"], "+data.nope=1", "+data.nope=1: data.nope is not a setting of "
                                          "detect_train"),
    (["train"], "optim.lr=1,2", "Ambiguous value for argument 'optim.lr=1,2' (a list is "
                                "key=[a,b], a string key='a,b', a sweep needs -m)"),
    # and by a second try: Hydra's flags misused, a bad value later in a sweep
    (["train"], "--resolve", "--resolve goes with --cfg or --help"),
    (["train", "-m", "--cfg", "job"], "optim.lr=1,2", "only one of --multirun, --cfg can be "
                                                      "given"),
    (["train", "hydra/launcher=basic", "-m"], "optim.lr=1,2", "unrecognized arguments: "
     "optim.lr=1,2 (Hydra's flags, such as -m, go before or after all the overrides, not "
     "between them)"),
    (["train", "-m", "hydra/launcher=basic"], "optim.lr=1e-3,abc", "Error merging override "
     "optim.lr=abc: Value 'abc' of type 'str' could not be converted to Float"),
    (["train", "hydra.mode=MULTIRUN"], "optim.lr=1e-3", "-m runs each job on SLURM"),
])
def test_a_bad_override_is_one_line_and_status_2_before_any_work(capsys, command, override,
                                                                  message):
    from rawdiffusion.cli import main as cli

    with pytest.raises(SystemExit) as info:
        cli([*command, override])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_overrides_that_compose_and_hydras_own_flags_pass_the_check(monkeypatch):
    config.register()
    assert hydra_cli.override_problem("train", [
        "optim.lr=1e-3", "dataset=folder", "hydra.run.dir=/tmp/x", "++optim.lr=1e-4",
        "++dataset.root=/x", "--cfg", "job"]) is None
    assert hydra_cli.override_problem("train", ["-m", "optim.lr=1e-3,1e-4",
                                             "hydra/launcher=basic"]) is None
    assert hydra_cli.override_problem("train", ["--config-name", "other", "foo=bar"]) is None
    for line in (["general.run=${hydra:job.name}"],  # only Hydra's runtime resolves these
                 ["-m", "hydra/launcher=basic", "dataset=glob(nod_*)"],  # nor expands these
                 ["-m", "hydra/launcher=basic", "optim.batch_size=range(3,1)"],  # no jobs
                 ["-m", "--help"],  # help, not jobs: no launcher needed
                 ["hydra.mode=MULTIRUN", "hydra/launcher=basic", "optim.lr=1e-3,1e-4"],
                 ["--resolve", "--cfg", "job"]):
        assert hydra_cli.override_problem("train", line) is None, line
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")  # as on SLURM
    assert hydra_cli.override_problem("train", ["-m", "optim.lr=1e-3,1e-4"]) is None


# ----------------------------------------------------------------------------- help, start-up

@pytest.mark.parametrize("command, groups, own", [
    (["train"], {"dataset", "dataset/train", "dataset/val"},
     ["optim.lr=0.0001", "general.save_every=1000", "system.threads=null"]),
    (["sample"], {"dataset", "dataset/train", "dataset/val"},
     ["checkpoint=null", "save_pred=false", "system.bf16=false", "model.preset=paper",
      "noise.iso=null", "noise.exposure=0.0", "noise.white_balance=null"]),
    (["detect", "train"], {"data", "data/generated"},
     ["data.real_fraction=1.0", "detector.min_size=416", "general.out=runs/detect"]),
    (["detect", "eval"], {"data", "data/generated"}, ["checkpoint=null", "batch_size=8"]),
])
def test_help_describes_the_commands_own_groups_and_every_setting(capsys, command, groups, own):
    from rawdiffusion.cli import main as cli

    assert cli([*command, "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"rawdiffusion {' '.join(command)}" in lines[0]
    start = lines.index("Config groups (group=option; the one chosen first):") + 1
    listed = {line.split(":")[0].strip() for line in lines[start:lines.index("", start)]
              if not line.startswith("      ")}
    assert listed == groups  # its own groups only (detect listed train.py's before)
    settings = [i for i, line in enumerate(lines) if line.startswith("  ") and "=" in line
                and not line.startswith("   ") and ":" not in line.split("=")[0]]
    for i in settings:  # every setting says what it means on the lines below it
        assert lines[i + 1].startswith("      ") and lines[i + 1].strip(), lines[i]
    assert {f"  {o}" for o in own} <= {lines[i] for i in settings}
    # the values are this command line's
    assert cli([*command, "general.seed=7", "--help"]) == 0
    assert "  general.seed=7" in capsys.readouterr().out.splitlines()


def test_help_cfg_and_a_bad_override_do_not_load_pytorch(tmp_path):
    """Start-up: the command's module (and PyTorch) is imported when its job starts."""
    code = ("import atexit, sys; atexit.register(lambda: print('torch' in sys.modules)); "
            "from rawdiffusion.hydra_cli import run; run('train', sys.argv[1:])")
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    loaded = {}
    for args in (["--help"], ["--cfg", "job"], ["optim.lrr=1"],
                 ["dataset=folder", f"dataset.root={tmp_path / 'missing'}"]):
        result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        loaded[args[0]] = result.stdout.splitlines()[-1]
    assert loaded == {"--help": "False", "--cfg": "False", "optim.lrr=1": "False",
                      "dataset=folder": "True"}  # the run itself does load it


def test_a_plain_run_composes_its_configuration_once(tmp_path, monkeypatch, capsys):
    from hydra._internal.hydra import Hydra

    compositions = []
    compose_config = Hydra.compose_config
    monkeypatch.setattr(Hydra, "compose_config", lambda self, *a, **k: compositions.append(1)
                        or compose_config(self, *a, **k))
    with pytest.raises(SystemExit) as info:  # a real run, to the check of its data
        hydra_cli.run("train", ["dataset=folder", f"dataset.root={tmp_path / 'missing'}",
                                f"general.out={tmp_path}"])
    assert info.value.code == 2 and "is not a prepared dataset" in capsys.readouterr().err
    assert len(compositions) == 1  # Hydra's own run composed it twice more
