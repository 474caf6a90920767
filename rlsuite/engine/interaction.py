"""An online agent's side of its env: generators, rollout state, counters, recent episodes.

PPO, SAC and QR-DQN (and the paper agents built on them) all interact with the engine the same
way; this is that part, once, with its checkpoint round trip. The agent keeps its networks,
optimizers and training loop; it holds one :class:`Interaction` and exposes ``global_step`` and
``iteration`` from it.
"""

from __future__ import annotations

from typing import Any

import torch

from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.episode_window import EpisodeWindow
from rlsuite.engine.rollout import Policy, Rollout, RolloutState, collect, start

POLICY_SEED_OFFSET = 1_000_003
"""The policy generator's seed is the run seed plus this, so it never equals the env's stream."""


class Interaction:
    """Owns the env stepping of one agent.

    Args:
        env: the batched env.
        params: per-copy params; their batch size is the number of copies ``B``.
        seed: seeds the env generator (``seed``) and the policy generator (``seed`` + offset).
    """

    def __init__(self, env: BatchedEnv, params: Any, seed: int) -> None:
        self.env = env
        self.params = params
        self.num_envs = tree.batch_size(params)
        self.env_generator = env.make_generator(seed)
        self.policy_generator = torch.Generator(device=env.device).manual_seed(
            seed + POLICY_SEED_OFFSET
        )
        self.state: RolloutState | None = None
        self.global_step = 0
        self.iteration = 0
        self.episodes = EpisodeWindow()

    def collect(self, policy: Policy, num_steps: int) -> Rollout:
        """Step all copies ``num_steps`` times (starting them on the first call); count the steps."""
        if self.state is None:
            self.state = start(self.env, self.params, self.env_generator)
        data, self.state = collect(
            self.env, self.state, self.params, policy, num_steps, self.env_generator
        )
        self.global_step += num_steps * self.num_envs
        return data

    def record_episodes(self, data: Rollout) -> dict[str, float]:
        """Add the rollout's finished episodes to the window (one host sync); return the
        ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` metrics (empty before any episode)."""
        returns, lengths = data.finished_episodes()
        return self.episodes.add(returns, lengths)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data only (the agent deep-copies its whole state dict)."""
        out: dict[str, Any] = {
            "env_generator": self.env_generator.get_state(),
            "policy_generator": self.policy_generator.get_state(),
            "global_step": self.global_step,
            "iteration": self.iteration,
            **self.episodes.state_dict(),
        }
        if self.state is not None:
            out["rollout_state"] = tree.flatten(self.state)
            # An env whose simulators live outside the rollout state (GymnasiumEnv) saves them too.
            save = getattr(self.env, "simulator_state", None)
            if save is not None:
                out["simulator_state"] = save()
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the env and params must be those of the saved run)."""
        self.env_generator.set_state(data["env_generator"])
        self.policy_generator.set_state(data["policy_generator"])
        self.global_step = int(data["global_step"])
        self.iteration = int(data["iteration"])
        self.episodes.load_state_dict(data)
        self.state = None
        if "rollout_state" in data:
            # The structure comes from a throwaway reset whose generator is not the agent's.
            scratch = torch.Generator(device=self.env.device).manual_seed(0)
            template = start(self.env, self.params, scratch)
            self.state = tree.unflatten_like(template, data["rollout_state"])
            if "simulator_state" in data:
                self.env.load_simulator_state(data["simulator_state"])


class InteractionCounters:
    """``global_step`` and ``iteration`` read from the agent's ``self.interaction``.

    The counters the runner and the hooks read (progress, checkpoints) live in one place, the
    :class:`Interaction`, so they are saved and resumed with it; agents inherit this to expose them.
    """

    interaction: Interaction

    @property
    def global_step(self) -> int:
        """Env steps taken so far, summed over copies."""
        return self.interaction.global_step

    @property
    def iteration(self) -> int:
        """Collect-and-update iterations done so far."""
        return self.interaction.iteration
