"""The ``rlsuite`` command: a Hydra app (``rlsuite agent=ppo env=cartpole seed=1``).

``rlsuite --help`` lists the config groups; ``rlsuite -m seed=0,1,2`` runs a sweep; ``rlsuite
--cfg job`` prints the composed config without running.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import rlsuite.config  # noqa: F401  (registers the structured schemas before composition)
from rlsuite.runner import run


@hydra.main(version_base="1.3", config_path="pkg://rlsuite.conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Entry point of the console script; returns the final evaluation score for sweepers."""
    return run(cfg)


if __name__ == "__main__":
    main()
