"""The README works as written: every shell command and Python block in README.md runs.

Commands run in README order from a scratch directory, at tiny budgets: the overrides in ``TINY``
are appended (a later override wins in Hydra), sweeps get their own ``hydra.sweep.dir`` and an
Optuna search two trials; the Python blocks run with their ``.learn(N)`` literal replaced by
``LEARN_STEPS``. ``<run>`` and ``<date>`` stand for a run and a sweep made by earlier commands.
Only the commands in ``SKIPPED`` do not run, each for the reason given there.

Tiers: the Python blocks and the check that every command is covered are in the default tier; the
commands themselves (16 processes that each import torch and Hydra, ~40 s of CPU and 2-4 minutes
on a busy 2-core machine, plus local Ray and submitit sweeps) are in the slow tier, which CI runs.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

# One pytest-xdist worker runs this file: its tests share module-level results.
pytestmark = pytest.mark.xdist_group("test_readme")

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent

TINY = ["total_steps=256", "num_envs=8", "agent.num_steps=16", "agent.num_minibatches=2",
        "agent.update_epochs=1", "eval_episodes=4", "progress=false", "tensorboard=false",
        "device=cpu"]
LEARN_STEPS = "8_192"  # one PPO iteration at the README's 64 copies x 128 steps

# substring of the command -> why it does not run here
SKIPPED = {
    "bash scripts/main.sh": "set-up plus the full default run (~1 min); its console script, "
                            "rlsuite, runs below with every README override",
    "bash scripts/test.sh": "runs this test suite; CI runs it (.ci/run)",
    "scripts/reproduce.py": "reproductions take minutes to hours; tests/test_reproduce_scripts.py "
                            "runs each README reproduce command with --dry-run, and CI runs "
                            "`all --quick --check` (.ci/run)",
    "hydra/launcher=slurm ": "needs a Slurm cluster (hydra.launcher.partition=gpu)",
    "hydra/launcher=ray_cluster": "needs a running Ray cluster (ray://head:10001)",
}
SLOW = ("hydra/launcher=parallel", "hydra/launcher=slurm_local", "hydra/launcher=ray_local")


def blocks(language: str) -> list[str]:
    """The fenced code blocks of README.md in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def shell_commands() -> list[str]:
    """Every command of the README's bash blocks (continuation lines joined, comments dropped)."""
    commands = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(shlex.split(line, comments=True))
            if line:
                commands.append(line)
    return commands


def _skip_reason(command: str) -> str | None:
    return next((why for key, why in SKIPPED.items() if key in command + " "), None)


def _is_slow(command: str) -> bool:
    return any(key in command for key in SLOW)


class Runner:
    """Runs README commands in ``workdir``, remembering the runs and sweeps they made."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.sweeps: list[str] = []

    def argv(self, command: str) -> list[str]:
        tokens = shlex.split(command)
        if tokens[0].startswith(".venv/bin/"):
            tokens[0] = str(BIN / tokens[0].removeprefix(".venv/bin/"))
        tokens = [self._fill(t) for t in tokens]
        if Path(tokens[0]).name != "rlsuite" or "--cfg" in tokens:
            return tokens
        tokens += TINY
        if "-m" in tokens:
            if not any(t.startswith("hydra.sweep.dir=") for t in tokens):
                name = f"runs/multirun/readme_{len(self.sweeps)}"
                self.sweeps.append(name)
                tokens.append(f"hydra.sweep.dir={name}")
            if any(t.startswith("search=") for t in tokens):
                tokens.append("hydra.sweeper.n_trials=2")
        return tokens

    def _fill(self, token: str) -> str:
        if "<run>" in token:
            runs = sorted(p.name for p in (self.workdir / "runs/ppo/cartpole").iterdir())
            assert runs, "a README command resumes a run, but no earlier command made one"
            token = token.replace("<run>", runs[0])
        if "<date>" in token:
            assert self.sweeps, "a README command reads a sweep, but no earlier command made one"
            token = token.replace("runs/multirun/<date>", self.sweeps[0])
        return token

    def run(self, command: str) -> subprocess.CompletedProcess:
        argv = self.argv(command)
        out = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (f"README command failed: {command}\nran: {shlex.join(argv)}\n"
                                     f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        return out


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    return Runner(tmp_path_factory.mktemp("readme"))


def test_every_command_is_run_or_skipped_with_a_reason() -> None:
    commands = shell_commands()
    assert len(commands) >= 14 and len(blocks("python")) >= 1
    skipped = [c for c in commands if _skip_reason(c)]
    # every skip rule matches a README command; only the reproduce rule matches several (each of
    # those runs with --dry-run in tests/test_reproduce_scripts.py)
    assert {key for key in SKIPPED for c in skipped if key in c + " "} == set(SKIPPED)
    assert len(skipped) == len(SKIPPED) - 1 + sum("scripts/reproduce.py" in c for c in commands)
    for c in commands:
        assert _skip_reason(c) or c.startswith(".venv/bin/"), f"no rule runs this command: {c}"


@pytest.mark.slow
def test_readme_commands(runner: Runner) -> None:
    """Every command that is neither skipped nor slow, in README order."""
    ran = 0
    for command in shell_commands():
        if _skip_reason(command) or _is_slow(command):
            continue
        out = runner.run(command)
        ran += 1
        if "--cfg job" in command:
            assert "agent:" in out.stdout and "total_steps: 500000" in out.stdout
    assert ran >= 9
    assert (runner.workdir / "results/my_study.md").exists()  # the report of the first sweep
    pendulum = next((runner.workdir / "runs/ppo/pendulum").iterdir())
    assert "g: 12.0" in (pendulum / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in shell_commands() if _is_slow(c)])
def test_readme_launcher_commands(runner: Runner, command: str) -> None:
    runner.run(command)
    assert len(list((runner.workdir / runner.sweeps[-1]).glob("*/result.json"))) >= 2


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_blocks(tmp_path: Path, index: int) -> None:
    code, count = re.subn(r"\.learn\([\d_]+\)", f".learn({LEARN_STEPS})", blocks("python")[index])
    assert count <= 1
    code += "\nimport torch\nprint('threads', torch.get_num_threads())\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600, env={"PATH": str(BIN), "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == "threads 1"  # import rlsuite set one thread
