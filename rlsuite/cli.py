"""The ``rlsuite`` command: a Hydra app (``rlsuite agent=ppo env=cartpole seed=1``).

``rlsuite --help`` lists the config groups; ``rlsuite -m seed=0,1,2`` runs a sweep (launchers:
``hydra/launcher=parallel|slurm|submitit_local|ray``, searches: ``search=<agent>``); ``rlsuite
--cfg job`` prints the composed config without running.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.types import RunMode
from omegaconf import DictConfig

import rlsuite.config  # noqa: F401  (registers the structured schemas before composition)
from rlsuite import jobs
from rlsuite.core.patching import patched
from rlsuite.identity import RunMismatch
from rlsuite.jobs import PreemptionExit
from rlsuite.runner import run
from rlsuite.validation import ConfigError

log = logging.getLogger(__name__)

# (config group, choice) -> (modules it imports, the extra that installs them). The launcher and
# sweeper presets name Hydra plugins that are optional dependencies; without them Hydra only says
# "Could not load 'hydra/launcher/ray'", so the command checks first and names the install line.
_JOBLIB = (("hydra_plugins.hydra_joblib_launcher", "joblib"), "sweeps")
_SUBMITIT = (("hydra_plugins.hydra_submitit_launcher", "submitit"), "sweeps")
_RAY = (("hydra_plugins.hydra_ray_launcher", "ray"), "ray")
_OPTUNA = (("hydra_plugins.hydra_optuna_sweeper", "optuna"), "sweeps")
EXTRAS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("hydra/launcher", "parallel"): _JOBLIB, ("hydra/launcher", "joblib"): _JOBLIB,
    ("hydra/launcher", "slurm"): _SUBMITIT, ("hydra/launcher", "slurm_local"): _SUBMITIT,
    ("hydra/launcher", "submitit_slurm"): _SUBMITIT, ("hydra/launcher", "submitit_local"): _SUBMITIT,
    ("hydra/launcher", "ray_local"): _RAY, ("hydra/launcher", "ray_cluster"): _RAY,
    ("hydra/launcher", "ray"): _RAY,
    ("hydra/sweeper", "optuna"): _OPTUNA, ("search", "*"): _OPTUNA,  # every search= preset is Optuna
}


class BelowWarning(logging.Filter):
    """Passes records below WARNING: the job log sends those to stdout and the rest to stderr
    (``conf/hydra/job_logging/rlsuite.yaml``), as the messages were printed before."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True for DEBUG and INFO records."""
        return record.levelno < logging.WARNING


def missing_extra(args: Sequence[str]) -> str | None:
    """The error to show when an override in ``args`` selects a launcher or sweeper whose optional
    dependency is not installed (``hydra/launcher=ray_local`` without the ``ray`` extra); None when
    everything it selects is importable."""
    for arg in args:
        group, sep, choice = arg.lstrip("+~").partition("=")
        if not sep:
            continue
        need = EXTRAS.get((group, choice)) or EXTRAS.get((group, "*"))
        if need is None:
            continue
        modules, extra = need
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
        if absent:
            return (f"rlsuite: {arg} needs {', '.join(absent)}, which is not installed; install "
                    f"it with:\n    pip install 'rlsuite[{extra}]'")
    return None


def moved_key(argv: list[str]) -> str | None:
    """The new name of a VGDF key that moved under ``agent.sac`` (``agent.learning_rate`` is
    ``agent.sac.learning_rate``), when the command selects VGDF by name (``agent=vgdf``, a
    ``vgdf_*`` experiment or ``search=vgdf``) and overrides an old key; None otherwise. Hydra's
    own error names the unknown key but not where it went."""
    from rlsuite.agents.vgdf.config import MOVED_TO_SAC

    if not any(a == "agent=vgdf" or a.startswith(("experiment=vgdf", "search=vgdf")) for a in argv):
        return None
    for arg in argv:
        key, sep, _ = arg.lstrip("+~").partition("=")
        field = key.removeprefix("agent.")
        if sep and key.startswith("agent.") and field in MOVED_TO_SAC:
            return (f"rlsuite: {key} is not a VGDF setting: VGDF's SAC settings are nested, "
                    f"use agent.sac.{field}")
    return None


@hydra.main(version_base="1.3", config_path="pkg://rlsuite.conf", config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    """The Hydra app; returns the final evaluation score for sweepers.

    In a sweep a failing job must not take the others down: its error is already recorded in
    its ``result.json`` (by :func:`rlsuite.runner.run`; a config refused before the run started,
    here), so it becomes a NaN score (Optuna marks such a trial failed) and the sweep summary
    lists it. A preemption exit passes through. A run that reached its ``time_limit_s``
    (checkpointed, recorded ``preempted``) exits with status :data:`rlsuite.jobs.TIME_LIMIT_EXIT`
    (3); in a sweep it scores NaN and the summary lists it as not completed, with the reason.
    """
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        try:
            return run(cfg)
        except ConfigError as err:  # the field, value and what is allowed; no traceback to read
            raise SystemExit(f"rlsuite: invalid config: {err}") from err
        except RunMismatch as err:  # names the differing keys; the other run is left untouched
            raise SystemExit(f"rlsuite: {err}") from err
        except jobs.TimeLimitReached as err:  # checkpointed and logged: not a failure, not done
            raise SystemExit(jobs.TIME_LIMIT_EXIT) from err
    try:
        return run(cfg)
    except PreemptionExit:
        raise
    except jobs.TimeLimitReached:  # recorded as preempted (with the reason) for the summary
        return float("nan")
    except ConfigError as err:  # refused before the run recorded anything: record it for the summary
        jobs.write_result(cfg.run_dir, jobs.FAILED, **jobs.failure_fields(err))
        print(f"rlsuite: job {HydraConfig.get().job.num} failed ({type(err).__name__}: {err}); "
              f"the sweep goes on", file=sys.stderr)
        return float("nan")
    except (Exception, SystemExit) as err:
        log.error(f"rlsuite: job {HydraConfig.get().job.num} failed ({type(err).__name__}: {err}); "
                  f"the sweep goes on")
        return float("nan")


def one_repository_per_listing(get_group_options: Callable[..., list[str]]) -> Callable[..., list[str]]:
    """Wrap hydra-core's ``ConfigLoaderImpl.get_group_options`` so that the listings of one loader
    share one copy of the config repository.

    Each call of the original deep-copies the loader's whole config repository (every structured
    schema of the ConfigStore included) before listing one group's options, and ``rlsuite --help``
    lists some 76 groups, as tab completion does: about 4 of the ~5 CPU seconds ``--help`` took.
    Listing only reads the copy, which depends on nothing but the loader, the config name and the
    overrides, so one copy per such key serves every call (the loader keeps them). Composing a
    config still makes its own copy, as Hydra does."""
    def listing(self: Any, group_name: str, results_filter: Any = ObjectType.CONFIG,
                config_name: str | None = None, overrides: list[str] | None = None) -> list[str]:
        parse = getattr(self, "_parse_overrides_and_create_caching_repo", None)
        if parse is None:  # another hydra-core: its own path
            return get_group_options(self, group_name, results_filter, config_name, overrides)
        repositories = self.__dict__.setdefault("_rlsuite_listing_repositories", {})
        key = (config_name, tuple(overrides or ()))
        if key not in repositories:
            repositories[key] = parse(config_name, list(overrides or ()))[1]
        return repositories[key].get_group_options(group_name, results_filter)

    return listing


def main() -> None:
    """Entry point of the ``rlsuite`` console script: check optional extras and moved keys, then
    run Hydra (its group listings sharing one repository copy: :func:`one_repository_per_listing`)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    hint = missing_extra(sys.argv[1:]) or moved_key(sys.argv[1:])
    if hint is not None:
        raise SystemExit(hint)
    with patched(ConfigLoaderImpl, "get_group_options", one_repository_per_listing):
        hydra_main()


if __name__ == "__main__":
    main()
