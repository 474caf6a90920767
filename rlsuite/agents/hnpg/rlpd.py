"""The RLPD-style off-policy hybrid baseline of the HNPG paper (its Table 2), on the shared SAC.

RLPD (Ball et al. 2023, "Efficient Online Reinforcement Learning with Offline Data") is SAC whose
every minibatch is half offline data, half online replay ("symmetric sampling"), with no offline
pre-training. HNPG's paper runs it with one shared actor and critic for all steps (it reports that
worked better for RLPD) and Table 2's final values: gamma 0.99, initial temperature 0.1, temperature
lr 1e-4, actor and critic lr 1e-3, soft target update 0.01 every 2 steps (here 0.005 every step),
Adam, one update per online sample, batch 128, buffer 1e6.

What this baseline takes from :mod:`rlsuite.learners.sac` unchanged: the networks (squashed
Gaussian actor, twin critics with Polyak targets, learned temperature) and :func:`sac_update`.
Simplifications against the RLPD paper (not listed in HNPG's Table 2): no LayerNorm in the critics
and no ensemble of 10 critics (the shared twin critics instead); the policy's log-std is clamped
to [-20, 2] (the shared SAC's bounds; Table 2 says [-10, 2]).

The action vector is squashed into ``[-1, 1]^A`` (enough for the temperature-0.1 softmax to pick
a latent action with probability ~1 - 9 e^-20); the offline actions (one-hot or uniform on
``[0, 1]^A``) lie in that box. Success is tracked with the same rule as HNPG: the moving average
of the success indicator over the last ``success_window`` online samples' worth of episodes
(50 iterations x 1000 steps in HNPG) must exceed 0.5.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from typing import Any

import torch

from rlsuite.agents.hnpg.config import RLPDConfig
from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.learners.buffers import CORE_FIELDS, OfflineDataset, ReplayBuffer, Transitions, concat
from rlsuite.learners.sac import SACNetworks, SACOptimizers, sac_update
from rlsuite.training import LossTotals, TrainingHooks, updates_due

OFFLINE_SEED_OFFSET = 7_919


class RLPD(InteractionCounters):
    """SAC with half-offline, half-online minibatches on a fixed-horizon lock.

    Args:
        config: hyperparameters.
        env: the lock (needs ``horizon``).
        params: env params; copy 0 is used for every copy.
        seed: seeds networks, env, sampling and the offline data.
        dataset: offline data (default: ``collect_offline``).
    """

    def __init__(
        self,
        config: RLPDConfig,
        env: BatchedEnv,
        params: Any,
        seed: int = 0,
        dataset: OfflineDataset | None = None,
    ) -> None:
        self.config = config
        self.env = env
        self.horizon = int(getattr(env, "horizon", 0))
        if self.horizon < 1:
            raise ValueError(f"rlpd needs a fixed-horizon env with a 'horizon' attribute, got {env!r}")
        self.device = env.device
        one = tree.index(params, 0)
        self.params = tree.map_tensors(lambda x: x.expand(config.num_envs, *x.shape[1:]).clone(), one)
        a = env.action_space.shape[0]
        box = spaces.Box.make(-config.action_bound, config.action_bound, (a,), device=self.device)
        torch.manual_seed(seed)  # network initialisation (as the shared SAC)
        self.nets = SACNetworks(env.observation_space, box, config.sac).to(self.device)
        self.opt = SACOptimizers.make(self.nets, config.sac.learning_rate)
        self.opt.set_lrs(config.actor_lr, config.sac.learning_rate, config.alpha_lr)
        self.buffer = ReplayBuffer.for_env(env, config.sac.buffer_size)
        self.interaction = Interaction(env, self.params, seed)
        self.generator = self.interaction.policy_generator
        if dataset is None:
            from rlsuite.agents.hnpg.offline_data import collect_offline

            dataset = collect_offline(
                env, config.offline_episodes, config.offline_epsilon, seed + OFFLINE_SEED_OFFSET, params=one
            )
        core = {n: getattr(dataset.data, n) for n in CORE_FIELDS}
        self.offline = OfflineDataset(Transitions(**core)).to(self.device)
        window = max(1, math.ceil(config.success_window / self.horizon))
        self.successes: deque[float] = deque(maxlen=window)
        self.num_updates = 0
        self.solved_at: int | None = None

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Squashed-Gaussian actions (``tanh(mean)`` when deterministic)."""
        action, _ = self.nets.actor.sample(obs, self.generator, deterministic)
        return action

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> RLPD:
        """Collect one step per copy, then ``utd`` updates per sample, until the budget or success.

        An iteration is ``sac.num_steps`` such rounds; its bookkeeping (the NaN check of losses
        and parameters, the metrics, the hooks: logging, checkpoints, time limit) runs once per
        iteration, so a larger ``num_steps`` costs less per sample and changes nothing else (the
        same samples, updates and random stream; success is checked after every round)."""
        cfg, hooks = self.config, hooks or TrainingHooks()
        while self.global_step < total_steps:
            if cfg.stop_on_success and self.solved_at is not None:
                break
            tic, steps_before = time.perf_counter(), self.global_step
            totals, episodes = LossTotals(), {}
            for _ in range(cfg.sac.num_steps):
                episodes = self._round(totals)
                if (self.global_step >= total_steps
                        or (cfg.stop_on_success and self.solved_at is not None)):
                    break
            metrics = totals.means("RLPD", self.global_step, params=self.nets.named_parameters())
            metrics.update(episodes)
            metrics["rlpd/success_rate_ma"] = self._success_ma()
            metrics["rlpd/online_samples"] = float(self.global_step)
            metrics["train/n_updates"] = float(self.num_updates)
            metrics["time/fps"] = (self.global_step - steps_before) / (time.perf_counter() - tic)
            self.interaction.iteration += 1
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _round(self, totals: LossTotals) -> dict[str, float]:
        """One step of every copy, then its ``utd`` updates; tracks success. Returns the episode
        window's metrics (``Interaction.record_episodes``)."""
        cfg = self.config
        n_off = int(round(cfg.sac.batch_size * cfg.offline_fraction))
        n_on = cfg.sac.batch_size - n_off
        data = self.interaction.collect(self.act, 1)
        self.buffer.add_rollout(data)
        due = updates_due(cfg.sac.utd, self.global_step, 0, self.num_updates)
        for _ in range(due):
            parts = []
            if n_off:
                parts.append(self.offline.sample(n_off, self.generator))
            if n_on:
                parts.append(self.buffer.sample(n_on, self.generator))
            totals.add(sac_update(self.nets, self.opt, concat(parts), cfg.sac.gamma, cfg.sac.tau,
                                  self.generator))
        self.num_updates += due
        ended = data.terminated[0]
        if bool(ended.any()):
            self.successes.extend((data.reward[0][ended] >= 1.0).float().tolist())
        if self.solved_at is None and self._success_ma() > cfg.stop_success:
            self.solved_at = self.global_step
        return self.interaction.record_episodes(data)

    def _success_ma(self) -> float:
        """Moving-average success rate over the window's episodes (0 before any ended)."""
        return sum(self.successes) / len(self.successes) if self.successes else 0.0

    @torch.no_grad()
    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator) -> dict[str, float]:
        """Greedy success rate first, then mean return and the samples at which success > 0.5."""
        obs, state = env.reset(params, generator)
        total = torch.zeros(tree.batch_size(params), device=self.device)
        for _ in range(self.horizon):
            step = env.step(state, self.act(obs, deterministic=True), params, generator)
            total += step.reward
            obs, state = step.obs, step.state
        return {
            "eval/success_rate": float((step.reward >= 1.0).float().mean()),
            "eval/mean_reward": float(total.mean()),
            "rlpd/samples_to_success": float(-1 if self.solved_at is None else self.solved_at),
        }

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, counters, replay buffer (the offline data is rebuilt from the seed)."""
        out = {
            "nets": self.nets.state_dict(),
            "optimizers": self.opt.state_dict(),
            "num_updates": self.num_updates,
            "successes": list(self.successes),
            "solved_at": -1 if self.solved_at is None else self.solved_at,
            **self.interaction.state_dict(),
        }
        out = copy.deepcopy(out)
        out["buffer"] = self.buffer.state_dict()
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.nets.load_state_dict(data["nets"])
        cfg = self.config
        self.opt.load_state_dict(data["optimizers"], cfg.actor_lr, cfg.sac.learning_rate, cfg.alpha_lr)
        self.buffer.load_state_dict(data["buffer"])
        self.num_updates = int(data["num_updates"])
        self.successes.clear()
        self.successes.extend(float(v) for v in data["successes"])
        self.solved_at = None if int(data["solved_at"]) < 0 else int(data["solved_at"])
        self.interaction.load_state_dict(data)
