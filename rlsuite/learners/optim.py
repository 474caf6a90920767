"""Optimizer learning rates that follow the agent's config, also after a checkpoint is loaded.

``torch.optim.Optimizer.load_state_dict`` restores the ``param_groups`` it was saved with, learning
rate included. A run resumed with another learning rate (``agent.learning_rate=...``, see
:mod:`rlsuite.identity`) would therefore keep training at the old one. Every agent loads its
optimizers through :func:`load_optimizer`, which re-applies the rate its (new) config asks for.
An agent with a schedule (PPO's linear decay) also passes the base rate the state was saved
under: the loaded rate keeps its place in the schedule, rescaled to the new base, and an
unchanged base leaves the loaded state exactly as saved (a checkpoint round trip is bit for bit).
"""

from __future__ import annotations

from typing import Any

import torch

from rlsuite.core.patching import optimizer_without_dynamo


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every param group of ``optimizer`` (in place, keeping a tensor lr a tensor:
    a fused or capturable Adam may hold its lr as a tensor)."""
    for group in optimizer.param_groups:
        current = group["lr"]
        if isinstance(current, torch.Tensor):
            current.fill_(lr)
        else:
            group["lr"] = float(lr)


def unshared(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer ``state_dict`` whose per-parameter tensors (moments, step counts) are copies.

    ``torch.optim.Optimizer.load_state_dict`` keeps a given tensor that already has the
    parameter's dtype and device, and then steps it in place. Loading another live agent's
    ``state_dict()`` (or one dict into two agents) would therefore make both optimizers advance
    the same moments and step counts; a checkpoint read from a file is unaffected, having no
    other owner.
    """
    return {**state, "state": {key: {name: v.clone() if isinstance(v, torch.Tensor) else v
                                     for name, v in per_param.items()}
                               for key, per_param in state["state"].items()}}


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any], lr: float,
                   saved_base: float | None = None) -> None:
    """``optimizer.load_state_dict(state)`` on a copy of the state's tensors (:func:`unshared`),
    then the learning rate of the config the agent was built with: the moments and step counts
    come from the checkpoint, the rate from ``lr``.

    Without ``saved_base`` every group gets ``lr``. With it (a scheduled rate: ``saved_base`` is
    the base the saved rates were scheduled from), each group's saved rate is rescaled to the new
    base, ``lr * saved / saved_base``; when ``lr == saved_base`` the saved rates stay as they are.
    """
    optimizer.load_state_dict(unshared(state))
    if saved_base is None:
        set_lr(optimizer, lr)
        return
    if lr == saved_base:  # the same base: keep the saved (scheduled) rates bit for bit
        return
    for group in optimizer.param_groups:
        fraction = float(group["lr"]) / float(saved_base)  # the place in the schedule
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr * fraction)
        else:
            group["lr"] = lr * fraction


def adam(params: Any, **options: Any) -> torch.optim.Adam:
    """``torch.optim.Adam(params, **options)``, built without importing TorchDynamo
    (:func:`rlsuite.core.patching.optimizer_without_dynamo`: ~0.9 s of a process's start-up on
    this project's CPU, where the fast path steps the optimizer with its own kernel)."""
    with optimizer_without_dynamo():
        return torch.optim.Adam(params, **options)
