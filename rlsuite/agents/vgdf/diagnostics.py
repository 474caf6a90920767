"""Diagnostics that explain a VGDF run's outcome, logged once per iteration under ``vgdf/``.

Each is a small pure function on tensors. The agent computes them (on the device) on the source
batch of the last update of each iteration, one batch per iteration being enough to follow them
over a run at a fraction of the cost of every update, and reads them with the iteration's single
host sync (:class:`rlsuite.training.LossTotals`). None draws from a generator, so computing them
leaves the agent's random streams, and hence its numbers, unchanged.

* ``vgdf/accept_ratio``: fraction of each source batch the filter keeps (0.25 after the warm-up by
  construction, 1 before).
* ``vgdf/fvp_{std,iqr,min,median,max}`` (:func:`fvp_spread`): spread of the fictitious value
  proximity scores (paper eq. 7) of a source batch. A narrow spread means the top-``xi`` cut keeps
  samples that the filter barely distinguishes from those it drops.
* ``vgdf/value_{kept,rejected}`` (:func:`next_state_values`, pooled with :func:`masked_sum`): mean
  ``V(s') = min_k Qbar_k(s', mean pi(s'))`` of the next states of kept and of rejected source
  transitions under the target critics: whether the filter prefers high- or low-value next states
  (the policy's mean action, so no draw).
* ``vgdf/model_fresh_mse`` (:func:`ensemble_next_state_mse`): mean squared next-state error of the
  ensemble's mean prediction on the target transitions collected since the previous fit, computed
  just before the next refit, so on data the model has not been fitted on (logged from the second
  fit on; the first fit has no previous model). Compare ``vgdf/model_holdout_mse``, the fit's own
  hold-out loss.
* ``vgdf/dyn_diff_{kept,rejected}`` (:func:`dynamics_differ`, pooled): fraction of kept and of
  rejected source transitions whose next state differs (by more than ``tol`` in some coordinate)
  from the one the *target* dynamics reach from the same state and action. Only where the target
  dynamics are known and a state can be rebuilt from an observation (the engine's shift envs,
  :func:`rlsuite.envs.shifts.step_from_obs`); skipped with a warning otherwise. If the filter finds
  the transitions whose dynamics match the target's, ``dyn_diff_kept < dyn_diff_rejected``.

Quantities with a per-sample mask (kept / rejected) are pooled over the batches they are computed
on: each contributes a sum and a count (:func:`masked_sum`, under the ``POOL`` prefix) and
:func:`pool_means` divides the totals, leaving a key out when its count is 0 (e.g. no rejected
sample during the warm-up), since a mean over nothing is not a number.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlsuite.agents.vgdf.filter import Predict

POOL = "vgdf_pool/"
"""Prefix of the pooled sums and counts (``POOL + name + "/sum"`` and ``"/n"``)."""
DYN_DIFF_TOL = 1e-4
"""Default tolerance of :func:`dynamics_differ`: float32 observations rebuild a state to ~1e-7,
so differences below this are rounding, not dynamics."""


def fvp_spread(scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spread of a batch's FVP scores ``[N]``: ``std`` (unbiased), ``iqr`` (75th minus 25th
    percentile, linear interpolation as ``torch.quantile``), ``min``, ``median`` (the 50th
    percentile, interpolated) and ``max``; 0-dim tensors."""
    if scores.dim() != 1 or scores.numel() < 2:
        raise ValueError(f"fvp_spread: need scores [N] with N >= 2, got {tuple(scores.shape)}")
    q = torch.quantile(scores, torch.tensor([0.25, 0.5, 0.75], device=scores.device,
                                            dtype=scores.dtype))
    return {"std": scores.std(), "iqr": q[2] - q[0], "min": scores.min(), "median": q[1],
            "max": scores.max()}


def next_state_values(value: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      mean_action: Callable[[torch.Tensor], torch.Tensor],
                      next_obs: torch.Tensor) -> torch.Tensor:
    """``[N]`` values ``value(s', mean_action(s'))`` of next states ``[N, d]`` (the agent passes
    the target critics' minimum and the policy's mean action: no generator draw)."""
    with torch.no_grad():
        return value(next_obs, mean_action(next_obs))


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of values where mask, number of such samples)`` as float 0-dim tensors, for means
    pooled over several batches (:func:`pool_means`)."""
    m = mask.to(values.dtype)
    return (values * m).sum(), m.sum()


def pooled(name: str, values: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The ``POOL`` keys of ``name``'s masked sum and count (see :func:`pool_means`)."""
    total, count = masked_sum(values, mask)
    return {f"{POOL}{name}/sum": total, f"{POOL}{name}/n": count}


def pool_means(metrics: dict[str, float]) -> dict[str, float]:
    """Replace the ``POOL`` sums and counts in ``metrics`` by ``name: sum / count``, leaving a
    name out when its count is 0. The sums and counts may each be divided by the same number of
    updates (``LossTotals``' average): the ratio is unchanged."""
    out = {k: v for k, v in metrics.items() if not k.startswith(POOL)}
    for key, total in metrics.items():
        if key.startswith(POOL) and key.endswith("/sum"):
            name = key[len(POOL):-len("/sum")]
            count = metrics[f"{POOL}{name}/n"]
            if count > 0:
                out[name] = total / count
    return out


def ensemble_next_state_mse(predict: Predict, obs: torch.Tensor, action: torch.Tensor,
                            next_obs: torch.Tensor) -> torch.Tensor:
    """0-dim mean over samples and coordinates of ``(s + mean_e delta_e(s, a) - s')^2``: the
    squared next-state error of the ensemble's mean prediction (``predict``'s layout: reward
    first, then the change of observation, as :data:`rlsuite.agents.vgdf.filter.Predict`)."""
    with torch.no_grad():
        mean, _ = predict(obs, action)
        n = obs.shape[0]
        pred = obs.reshape(n, -1) + mean[..., 1:].mean(dim=0)
        return (pred - next_obs.reshape(n, -1)).pow(2).mean()


def dynamics_differ(next_source: torch.Tensor, next_target: torch.Tensor,
                    tol: float = DYN_DIFF_TOL) -> torch.Tensor:
    """``[N]`` bool: where the source transition's next state differs from the target dynamics'
    from the same state and action, ``max_j |s'_source - s'_target|_j > tol``."""
    if next_source.shape != next_target.shape:
        raise ValueError(f"dynamics_differ: shapes differ, {tuple(next_source.shape)} vs "
                         f"{tuple(next_target.shape)}")
    n = next_source.shape[0]
    diff = (next_source.reshape(n, -1).float() - next_target.reshape(n, -1).float()).abs()
    return diff.amax(dim=1) > tol
