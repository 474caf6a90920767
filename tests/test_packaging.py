"""The distribution: every package and data folder listed, a warning-free build, and a wheel that
holds the configs, the VGDF assets, the license and both commands, and runs from a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

# One pytest-xdist worker runs this file: its tests share module-level results.
pytestmark = pytest.mark.xdist_group("test_packaging")

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_every_package_and_data_folder_is_listed_in_pyproject() -> None:
    setuptools = _setuptools_config()
    listed = set(setuptools["packages"])
    found = set()
    for package, directory in setuptools["package-dir"].items():
        root = REPO / directory
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            if folder.name == "__pycache__" or "__pycache__" in folder.parts:
                continue
            if any(f.is_file() and f.suffix != ".pyc" for f in folder.iterdir()):
                found.add(".".join((package, *folder.relative_to(root).parts)))
    missing = sorted(found - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not sorted(listed - found), "pyproject lists packages that do not exist"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """``(wheel, build log)``, built once for this module (about 5 s)."""
    # Build from a copy of the sources so the repository gets no build/ or egg-info.
    tmp_path = tmp_path_factory.mktemp("wheel")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("rlsuite", "envs", "conf"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-v", str(src), "-w", str(tmp_path / "dist")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rlsuite-*.whl")
    return wheel, out.stdout + out.stderr


def test_wheel_builds_without_warnings_and_holds_the_data(built: tuple[Path, str]) -> None:
    wheel, log = built
    for warning in ("would be ignored", "BuildBackendWarning", "SetuptoolsDeprecationWarning",
                    "is absent from the `packages` configuration"):
        assert warning not in log, [line for line in log.splitlines() if warning in line][:5]

    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"rlsuite/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")}
    assert configs <= names, sorted(configs - names)
    assert "rlsuite/conf/hydra/job_logging/rlsuite.yaml" in names
    assets = {f"rlsuite/envs/assets/vgdf/{p.name}" for p in (REPO / "envs/assets/vgdf").glob("*.xml")}
    assert assets and assets <= names
    assert "rlsuite-0.1.0.dist-info/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(wheel).read("rlsuite-0.1.0.dist-info/entry_points.txt").decode()
    assert "rlsuite = rlsuite.cli:main" in entry_points
    assert "rlsuite-report = rlsuite.report:main" in entry_points


@pytest.mark.slow  # ~15 s of CPU, 35 s on the busy 2-core machine: a venv, an install, two commands
def test_wheel_runs_from_a_fresh_venv(built: tuple[Path, str], tmp_path: Path) -> None:
    wheel, _ = built
    # A fresh venv that sees this environment's dependencies (torch, hydra, ...) through a .pth
    # file, but not its editable rlsuite (a .pth's paths are not scanned for further .pth files).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                              "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import rlsuite; print(rlsuite.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, env=env, timeout=120)
    assert where.stdout.strip().startswith(site), where.stdout + where.stderr  # the wheel's copy
    help_text = subprocess.run([str(venv / "bin" / "rlsuite"), "--help"], cwd=tmp_path,
                               capture_output=True, text=True, env=env, timeout=120)
    assert help_text.returncode == 0, help_text.stderr[-3000:]
    assert help_text.stdout.startswith("rlsuite is powered by Hydra.")
    assert "env: acrobot, cartpole," in help_text.stdout  # the packaged conf/ was found
    report_help = subprocess.run([str(venv / "bin" / "rlsuite-report"), "--help"], cwd=tmp_path,
                                 capture_output=True, text=True, env=env, timeout=120)
    assert report_help.returncode == 0, report_help.stderr[-3000:]
    assert report_help.stdout.startswith("usage: rlsuite-report")
