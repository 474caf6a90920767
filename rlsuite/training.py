"""What every agent's training loop shares with its caller: hooks and the divergence error."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch


class TrainingDiverged(RuntimeError):
    """A loss, parameter or action became NaN/inf; the run stops before the bad state is
    checkpointed. Raised by :func:`check_finite` (every learner's one divergence path)."""


def check_finite(
    who: str,
    step: int,
    metrics: Mapping[str, torch.Tensor | float],
    params: Iterable[tuple[str, torch.Tensor]] = (),
    actions: torch.Tensor | None = None,
    unchecked: Mapping[str, torch.Tensor | float] | None = None,
) -> dict[str, float]:
    """``metrics`` as host floats, after checking them, ``params`` and ``actions`` for NaN/inf.

    Call once per iteration (not per step or per update): every check is a device reduction,
    and all of them come back with the metrics in one host sync, the one the iteration already
    makes to log its losses. ``params`` are ``(name, tensor)`` pairs (``module.named_parameters()``);
    ``actions`` the iteration's actions (a discrete policy's integer actions are always finite and
    may be left out). ``unchecked`` values come back in the same sync without the check (a
    statistic that is legitimately NaN, e.g. a return CVaR when no episode ended).

    Raises:
        TrainingDiverged: naming ``who`` (the agent), ``step`` and every non-finite quantity,
            e.g. ``PPO diverged at step 4096: non-finite loss train/value_loss=nan,
            train/approx_kl=nan; parameter actor.0.weight, actor.0.bias``. Callers raise before
            their hooks run, so the last checkpoint written stays the last good one.
    """
    names = list(metrics)
    metrics = {**(unchecked or {}), **metrics}
    device_values = [v for v in metrics.values() if isinstance(v, torch.Tensor)]
    named = list(params)
    flags = [torch.isfinite(p.detach()).all() for _, p in named]
    if actions is not None and actions.is_floating_point():
        flags.append(torch.isfinite(actions).all())
    packed: list[float] = []
    if device_values or flags:
        stacked = [v.detach().reshape(()).to(torch.float64) for v in device_values]
        stacked += [f.to(torch.float64) for f in flags]
        if len({t.device for t in stacked}) > 1:  # metrics on the CPU beside a GPU model's flags
            stacked = [t.cpu() for t in stacked]
        packed = torch.stack(stacked).tolist()  # the one host sync
    host = iter(packed[: len(device_values)])
    out = {k: next(host) if isinstance(v, torch.Tensor) else float(v) for k, v in metrics.items()}
    ok = packed[len(device_values):]
    losses = [f"{k}={out[k]}" for k in names if not math.isfinite(out[k])]
    weights = [name for (name, _), good in zip(named, ok, strict=False) if not good]
    bad = [f"loss {', '.join(losses)}"] if losses else []
    if weights:  # the first few names say where; a whole network's list would bury the message
        more = f" and {len(weights) - 4} more" if len(weights) > 5 else ""
        bad.append(f"parameter {', '.join(weights[:4] if more else weights)}{more}")
    if actions is not None and actions.is_floating_point() and not ok[-1]:
        bad.append("action")
    if bad:
        raise TrainingDiverged(f"{who} diverged at step {step}: non-finite {'; '.join(bad)}")
    return out


class TrainingHooks:
    """Called by an agent's ``learn`` loop after each iteration (logging, checkpoints, progress).

    The default does nothing, so agents train the same from Python and from the CLI.
    """

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """``step``: env steps so far; ``metrics``: host floats, tagged SB3-style."""

    def interrupt_point(self) -> None:
        """Called between the inner iterations of a stretch of training that has no state of its
        own to checkpoint (an IWOCS phase: its checkpoints hold phase boundaries only).

        The runner's hooks raise :class:`rlsuite.jobs.Preempted` here once a preemption signal
        has arrived, so the run stops within seconds and resumes from its last checkpoint,
        instead of finishing a stretch that a cluster's grace period may not leave time for.
        The default does nothing.
        """


def updates_due(utd: float, global_step: int, learning_starts: int, num_updates: int) -> int:
    """Gradient updates owed now by an off-policy learner: ``utd`` per env step after
    ``learning_starts``, minus the ``num_updates`` already made (never negative).

    The 1e-9 keeps e.g. ``0.29 * 100 = 28.999...`` from rounding down to 28.
    """
    owed = utd * max(0, global_step - learning_starts)
    return max(int(owed + 1e-9) - num_updates, 0)


class LossTotals:
    """Sums an iteration's per-update loss statistics on the device and averages them with the one
    host sync of the iteration; a non-finite mean raises :class:`TrainingDiverged`."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        """Accumulate one update's statistics (0-dim tensors, kept on the device)."""
        for key, value in stats.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1

    def means(self, who: str, step: int, prefix: str = "train/",
              params: Iterable[tuple[str, torch.Tensor]] = ()) -> dict[str, float]:
        """``{prefix + key: mean}`` as host floats ({} when nothing was added).

        Raises TrainingDiverged (naming ``who``, ``step`` and the quantity) when a mean or one of
        ``params`` (``(name, tensor)`` pairs) is NaN/inf, before any caller can checkpoint the
        bad state (:func:`check_finite`, in the same single host sync).
        """
        means = {f"{prefix}{key}": value / self.count for key, value in self.sums.items()}
        return check_finite(who, step, means, params)
