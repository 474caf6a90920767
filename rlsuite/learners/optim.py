"""Optimizer learning rates that follow the agent's config, also after a checkpoint is loaded.

``torch.optim.Optimizer.load_state_dict`` restores the ``param_groups`` it was saved with, learning
rate included. A run resumed with another learning rate (``agent.learning_rate=...``, see
:mod:`rlsuite.identity`) would therefore keep training at the old one. Every agent loads its
optimizers through :func:`load_optimizer`, which re-applies the rate its (new) config asks for;
a schedule (PPO's linear decay) recomputes its value from that base at its next iteration.
"""

from __future__ import annotations

from typing import Any

import torch


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every param group of ``optimizer`` (in place, keeping a tensor lr a tensor:
    a fused or capturable Adam may hold its lr as a tensor)."""
    for group in optimizer.param_groups:
        current = group["lr"]
        if isinstance(current, torch.Tensor):
            current.fill_(lr)
        else:
            group["lr"] = float(lr)


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any], lr: float) -> None:
    """``optimizer.load_state_dict(state)``, then :func:`set_lr` ``lr``: the moments and step
    counts come from the checkpoint, the learning rate from the config the agent was built with."""
    optimizer.load_state_dict(state)
    set_lr(optimizer, lr)
