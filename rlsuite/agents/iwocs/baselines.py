"""The paper's baselines beside IWOCS: a nominal SAC and a domain-randomized SAC (section 6).

Both are the run's ``agent=iwocs`` config with ``method=nominal_sac`` / ``method=dr_sac``
(``conf/experiment/pendulum_iwocs_nominal_sac.yaml``, ``pendulum_iwocs_dr_sac.yaml``): the same
SAC, box and evaluation grid as IWOCS, trained for the run's ``total_steps`` env steps (the
paper's equal-budget convention: IWOCS's total training steps; its search roll-outs are not
counted), and evaluated by the same :func:`~rlsuite.agents.iwocs.evaluation.grid_metrics`.

* nominal SAC: SAC on the reference model only (copy 0 of the run's params).
* DR SAC: SAC whose copies get params drawn uniformly from the box every ``dr_resample_steps``
  steps per copy (:class:`DomainRandomizedSAC`, which is also IWOCS's fallback). The baseline
  draws from its own seed stream (``seed + DR_SEED_OFFSET``), so at the same run seed it is an
  independent run, not a longer copy of IWOCS's fallback (paper footnote 6: an independent DR).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from rlsuite.agents.iwocs.boxes import UncertaintyBox, get_box
from rlsuite.agents.iwocs.composite import mean_action
from rlsuite.agents.iwocs.config import BASELINES  # the IWOCSConfig.method values trained here
from rlsuite.agents.iwocs.evaluation import grid_metrics
from rlsuite.agents.iwocs.mujoco_env import for_box
from rlsuite.agents.iwocs.paper_scores import add_normalized
from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv
from rlsuite.learners.sac import SAC, SACConfig, SACNetworks
from rlsuite.training import TrainingHooks

if TYPE_CHECKING:
    from rlsuite.agents.iwocs.config import IWOCSConfig

DR_SEED_OFFSET = 50_000
"""The DR baseline's seed offset from the run seed (independent of IWOCS's fallback)."""


def check_box_env(box_name: str, box: UncertaintyBox, env: BatchedEnv, who: str) -> None:
    """Refuse an env the box is not for, or one without a Box action space (SAC's)."""
    if getattr(env, "name", None) != box.env:
        raise ValueError(f"{who}: box {box_name!r} is for env {box.env!r}, "
                         f"the run's env is {getattr(env, 'name', type(env).__name__)!r}")
    if not isinstance(env.action_space, spaces.Box):
        raise ValueError(f"{who}: the deep version trains SAC experts and needs a Box action "
                         f"space; {type(env).__name__} has {type(env.action_space).__name__}")


def greedy_policy(nets: SACNetworks) -> Any:
    """A SAC's deterministic policy ``obs -> action`` (no generator needed)."""

    @torch.no_grad()
    def policy(obs: torch.Tensor) -> torch.Tensor:
        return mean_action(nets, obs)

    return policy


class DomainRandomizedSAC:
    """SAC with domain randomization: the params of the copies are redrawn uniformly from the box
    every ``resample_steps`` steps per copy (the env takes params per step, so this is a swap).

    Chunk ``k`` (env steps ``[k c, (k + 1) c)``, ``c = num_envs * resample_steps``) trains on the
    ``k``-th draw; the draw count is part of the state, so a run resumed from a checkpoint taken
    anywhere inside a chunk continues with the same draws as an uninterrupted one.
    """

    def __init__(self, config: SACConfig, env: BatchedEnv, box: UncertaintyBox, nominal: Any,
                 num_envs: int, seed: int, resample_steps: int) -> None:
        self.box, self.nominal, self.num_envs = box, nominal, num_envs
        self.chunk = num_envs * resample_steps
        self.generator = torch.Generator().manual_seed(seed + 31_337)
        self.values = box.sample(num_envs, self.generator)
        self.draws = 1
        self.sac = SAC(config, env, box.params(nominal, self.values), seed)

    def _set_params(self) -> None:
        params = self.box.params(self.nominal, self.values)
        self.sac.params = self.sac.interaction.params = params

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> DomainRandomizedSAC:
        """Train until ``total_steps`` env steps (summed over copies)."""
        while self.sac.global_step < total_steps:
            k = self.sac.global_step // self.chunk
            while self.draws <= k:  # chunk k trains on the k-th draw
                self.values = self.box.sample(self.num_envs, self.generator)
                self.draws += 1
                self._set_params()
            self.sac.learn(min(total_steps, (k + 1) * self.chunk), hooks)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The SAC's state, the draw generator, the draw count and the current draw."""
        return {"sac": self.sac.state_dict(), "generator": self.generator.get_state(),
                "draws": self.draws, "values": self.values.clone()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.values = data["values"].to(torch.float64)
        self.draws = int(data["draws"])
        self.generator.set_state(data["generator"])
        self._set_params()
        self.sac.load_state_dict(data["sac"])


def train_domain_randomized(
    config: SACConfig, env: BatchedEnv, box: UncertaintyBox, nominal: Any, num_envs: int,
    steps: int, seed: int, resample_steps: int, hooks: TrainingHooks | None = None,
) -> SAC:
    """A :class:`DomainRandomizedSAC` trained for ``steps`` env steps; its SAC."""
    return DomainRandomizedSAC(config, env, box, nominal, num_envs, seed, resample_steps).learn(
        steps, hooks).sac


class _AsAgent(TrainingHooks):
    """Forwards a learner's iteration hooks with the wrapping agent in its place (the runner
    checkpoints the agent it is handed)."""

    def __init__(self, hooks: TrainingHooks, agent: Any) -> None:
        self.hooks, self.agent = hooks, agent

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        self.hooks.on_iteration(self.agent, step, metrics)


class SACBaseline:
    """The nominal or domain-randomized SAC baseline of an IWOCS run (see the module doc).

    Args:
        config: the IWOCS config; ``method`` picks the baseline, ``sac`` its learner, ``box`` /
            ``eval_points`` / ``eval_episodes`` its evaluation, ``dr_resample_steps`` the DR draws.
        env: the batched env of the box.
        params: per-copy params; copy 0 is the nominal model.
        seed: the run seed.
    """

    def __init__(self, config: IWOCSConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        if config.method not in BASELINES:
            raise ValueError(f"SACBaseline: method={config.method!r} is not one of {BASELINES}")
        self.config = config
        self.box = get_box(config.box)
        env, params = for_box(config.box, env, params, config.episode_steps)  # a MuJoCo set's env
        check_box_env(config.box, self.box, env, "SACBaseline")
        self.env = env
        self.nominal = tree.index(params, slice(0, 1))
        num_envs = tree.batch_size(params)
        self.dr: DomainRandomizedSAC | None = None
        if config.method == "dr_sac":
            self.dr = DomainRandomizedSAC(config.sac, env, self.box, self.nominal, num_envs,
                                          seed + DR_SEED_OFFSET, config.dr_resample_steps)
            self.sac = self.dr.sac
        else:
            self.sac = SAC(config.sac, env, tree.repeat(self.nominal, num_envs), seed)

    @property
    def global_step(self) -> int:
        """Env steps so far (summed over copies)."""
        return self.sac.global_step

    @property
    def iteration(self) -> int:
        """The SAC's iterations so far."""
        return self.sac.iteration

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> SACBaseline:
        """Train for ``total_steps`` env steps."""
        forward = _AsAgent(hooks or TrainingHooks(), self)
        if self.dr is not None:
            self.dr.learn(total_steps, forward)
        else:
            self.sac.learn(total_steps, forward)
        return self

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The SAC's action (its mean with ``deterministic``)."""
        return self.sac.act(obs, deterministic)

    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator
                      ) -> dict[str, float]:
        """Worst case (the score), mean and every grid point's mean return of the greedy policy
        (:func:`~rlsuite.agents.iwocs.evaluation.grid_metrics`, the keys IWOCS reports), and the
        paper's normalized worst case for a set with published references."""
        cfg = self.config
        # the env the agent steps: a MuJoCo set's own, else the run's (the same object)
        return add_normalized(cfg.box, grid_metrics(
            greedy_policy(self.sac.nets), self.env, self.box, self.nominal, cfg.eval_points,
            cfg.eval_episodes, generator))

    def state_dict(self) -> dict[str, Any]:
        """The learner's state (with the DR draws for ``dr_sac``)."""
        return self.dr.state_dict() if self.dr is not None else {"sac": self.sac.state_dict()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        if self.dr is not None:
            self.dr.load_state_dict(data)
        else:
            self.sac.load_state_dict(data["sac"])

