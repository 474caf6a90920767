"""The ``rlsuite`` command: a Hydra app (``rlsuite agent=ppo env=cartpole seed=1``).

``rlsuite --help`` lists the config groups; ``rlsuite -m seed=0,1,2`` runs a sweep (launchers:
``hydra/launcher=parallel|slurm|submitit_local|ray``, searches: ``search=<agent>``); ``rlsuite
--cfg job`` prints the composed config without running.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import rlsuite.config  # noqa: F401  (registers the structured schemas before composition)
from rlsuite import jobs
from rlsuite.jobs import PreemptionExit
from rlsuite.runner import run
from rlsuite.validation import ConfigError


@hydra.main(version_base="1.3", config_path="pkg://rlsuite.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Entry point of the console script; returns the final evaluation score for sweepers.

    In a sweep a failing job must not take the others down: its error is already recorded in
    its ``result.json`` (by :func:`rlsuite.runner.run`; a config refused before the run started,
    here), so it becomes a NaN score (Optuna marks such a trial failed) and the sweep summary
    lists it. A preemption exit passes through.
    """
    if HydraConfig.get().mode != RunMode.MULTIRUN:
        try:
            return run(cfg)
        except ConfigError as err:  # the field, value and what is allowed; no traceback to read
            raise SystemExit(f"rlsuite: invalid config: {err}") from err
    try:
        return run(cfg)
    except PreemptionExit:
        raise
    except ConfigError as err:  # refused before the run recorded anything: record it for the summary
        jobs.write_result(cfg.run_dir, jobs.FAILED, **jobs.failure_fields(err))
        print(f"rlsuite: job {HydraConfig.get().job.num} failed ({type(err).__name__}: {err}); "
              f"the sweep goes on", file=sys.stderr)
        return float("nan")
    except (Exception, SystemExit) as err:
        print(f"rlsuite: job {HydraConfig.get().job.num} failed ({type(err).__name__}: {err}); "
              f"the sweep goes on", file=sys.stderr)
        return float("nan")


if __name__ == "__main__":
    main()
