"""The Hydra app's surface: its name, --help and completion without the schema entries,
``--cfg job --resolve``, and the install line for a missing launcher/sweeper extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlsuite import cli


def _rlsuite(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "rlsuite", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_help_names_the_app_and_hides_the_schemas(tmp_path: Path) -> None:
    out = _rlsuite(tmp_path, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("rlsuite is powered by Hydra.")
    groups = out.stdout.split("== Config ==")[0]
    assert "agent: ar2, batch_exp3," in groups and "env: acrobot, cartpole," in groups
    assert "_schema" not in groups


@pytest.mark.parametrize(("line", "present"), [
    ("rlsuite agent=", "agent=ppo"),
    # one start-up of ~2.5 s each (torch and the agents imported): the other two run in the slow tier
    pytest.param("rlsuite env=", "env=pendulum", marks=pytest.mark.slow),
    pytest.param("rlsuite env=pendulum env.params.", "env.params.g=", marks=pytest.mark.slow),
])
def test_shell_completion_hides_the_schemas(tmp_path: Path, line: str, present: str) -> None:
    out = _rlsuite(tmp_path, "-sc", "query=bash", env={"COMP_LINE": line})
    assert out.returncode == 0, out.stderr[-2000:]
    assert present in out.stdout.split()
    assert "_schema" not in out.stdout


def test_group_listings_share_one_repository_copy_and_list_the_same_options() -> None:
    """``rlsuite``'s wrapper of Hydra's group listing (what --help and completion call ~76 times)
    returns exactly Hydra's options while deep-copying the config repository once, not per call."""
    from hydra import initialize_config_module
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.config_repository import CachingConfigRepository
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    from rlsuite.core.patching import patched

    copies = []

    def counting(init):
        def counted(self, delegate):
            copies.append(delegate)
            init(self, delegate)
        return counted

    groups = ["agent", "env", "hydra/launcher", "experiment", "search"]
    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        plain = [loader.get_group_options(g) for g in groups] + [loader.list_groups("hydra")]
        with patched(CachingConfigRepository, "__init__", counting), \
                patched(ConfigLoaderImpl, "get_group_options", cli.one_repository_per_listing):
            shared = [loader.get_group_options(g) for g in groups] + [loader.list_groups("hydra")]
            agents_again = loader.get_group_options("agent", ObjectType.CONFIG)
        assert len(copies) == 1
        assert loader.get_group_options("env") == plain[1]  # the original is back after the block
    assert shared == plain and agents_again == plain[0]
    assert "ppo" in plain[0] and "launcher" in plain[-1]


def test_cfg_job_resolve_prints_the_resolved_config(tmp_path: Path) -> None:
    out = _rlsuite(tmp_path, "--cfg", "job", "--resolve", "env=pendulum", "env.params.g=12")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert "run_dir: null" in lines  # Hydra has no output dir when only printing
    assert "    g: 12.0" in lines


@pytest.mark.parametrize(("override", "extra"), [
    ("hydra/launcher=ray_local", "ray"), ("hydra/launcher=ray_cluster", "ray"),
    ("hydra/launcher=parallel", "sweeps"), ("hydra/launcher=slurm", "sweeps"),
    ("hydra/launcher=slurm_local", "sweeps"), ("search=ppo", "sweeps"), ("hydra/sweeper=optuna", "sweeps"),
])
def test_missing_extra_names_the_install_line(monkeypatch, override: str, extra: str) -> None:
    assert cli.missing_extra(["-m", override, "seed=0,1"]) is None  # all installed here
    modules, _ = cli.EXTRAS.get(tuple(override.split("=")), cli.EXTRAS[("search", "*")])
    monkeypatch.setitem(sys.modules, modules[0], None)  # as if the plugin were not installed
    hint = cli.missing_extra(["-m", override, "seed=0,1"])
    assert hint is not None and modules[0] in hint
    assert hint.endswith(f"pip install 'rlsuite[{extra}]'")


def test_missing_extra_stops_the_command_before_hydra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['hydra_plugins.hydra_ray_launcher'] = None; "
            "sys.argv = ['rlsuite', '-m', 'hydra/launcher=ray_local', 'seed=0,1']; "
            "from rlsuite.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert "pip install 'rlsuite[ray]'" in out.stderr
    assert "Could not load" not in out.stderr
    assert not (tmp_path / "runs").exists()


def test_slurm_job_and_job_log_are_named_rlsuite() -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.job.name == "rlsuite"
    assert cfg.hydra.launcher.name == "rlsuite"  # submitit's Slurm job name
    from omegaconf import OmegaConf

    filename = OmegaConf.to_container(cfg.hydra.job_logging, resolve=False)["handlers"]["file"]["filename"]
    assert filename.endswith("/${hydra.job.name}.log")
