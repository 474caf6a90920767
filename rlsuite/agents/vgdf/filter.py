"""VGDF's value-guided data filter (Xu et al. 2023, section 5.1, Algorithm 1, eqs. 5-7).

For each source transition ``(s, a, r, s')``:

1. **Fictitious value ensemble (FVE).** Every member ``i`` of the target-domain dynamics ensemble
   predicts ``(r_i, s_i' - s)``; the fictitious value target is ``y_i = r + gamma notdone(s_i')
   V(s_i')`` with ``V(x) = min_k Qbar_k(x, a')``, ``a'`` from the policy at ``x``.
2. **Fictitious value proximity (FVP).** The source transition's own value target ``y_src = r +
   gamma (1 - terminated) V(s')`` is scored by the density of ``N(mean_i y_i, std_i y_i)`` (unbiased
   std over members, + 1e-8): high when the target dynamics would lead to the same value.
3. **Rejection.** After the warm-up, only the samples whose score is strictly above the
   ``1 - xi`` quantile of the batch's scores (linear interpolation) are kept (top ``xi`` = 25 %).

Where the official code (Kavka1/VGDF ``agent/vgdf.py``) departs from the paper's text, each
function takes a switch whose default is the paper's (``docs/vgdf.md``):

* ``next_state``: ``"sample"`` draws ``s_i' ~ N(mu_i, sigma_i^2)`` (the paper: a sample of model
  ``i``); ``"mean"`` uses ``mu_i``; ``"mean_plus_var"`` uses ``mu_i + sigma_i^2`` (the code).
* ``reward``: ``"source"`` uses the transition's own reward in every ``y_i`` (the paper compares
  values of next states, the reward being shared by the domains); ``"model"`` uses the ensemble's
  predicted ``r_i`` (the code compares full one-step targets).
* ``next_action``: ``"sample"`` draws ``a' ~ pi`` at the fictitious states (the paper), ``"mean"``
  takes ``pi``'s mean action there (the code). ``y_src`` always uses a sampled ``a'`` and no
  entropy term (both).
* :func:`source_loss_weights` normalises the source TD loss per kept sample (the paper) or per
  batch (the code: masked samples still count in the mean).

The functions take plain callables (model prediction, value, policy), so the unit tests can hand
them exactly known dynamics and critics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Predict = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``(obs [N, d], action [N, k]) -> (mean, logvar)``, each ``[E, N, 1 + d]``: reward first, then
the change of observation (the layout of VGDF's labels)."""
ValueFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(obs [N, d], action [N, k]) -> [N]``: ``min_k Qbar_k``, the target critics' minimum."""
PolicyFn = Callable[[torch.Tensor, torch.Generator, bool], torch.Tensor]
"""``(obs [N, d], generator, deterministic) -> action [N, k]``."""
TerminalFn = Callable[[torch.Tensor], torch.Tensor]
"""``next_obs [..., d] -> bool [...]``: the env's hand-coded terminal predicate."""

NEXT_STATE_MODES = ("sample", "mean", "mean_plus_var")
REWARD_MODES = ("source", "model")
ACTION_MODES = ("sample", "mean")
NORMALISATIONS = ("kept", "batch")
RANKINGS = ("fvp", "random")
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
"""As ``torch.distributions.Normal.log_prob`` computes it (not ``0.5 * log(2 pi)``: other bits)."""
STD_EPS = 1e-8
"""Added to the FVE's standard deviation (the code's ``scale = std + 1e-8``)."""


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"VGDF filter: {name} must be one of {allowed}, got {value!r}")


@torch.no_grad()
def fictitious_targets(
    predict: Predict, value: ValueFn, policy: PolicyFn, obs: torch.Tensor, action: torch.Tensor,
    reward: torch.Tensor, gamma: float, generator: torch.Generator, *,
    terminal: TerminalFn | None = None, next_state: str = "sample", reward_mode: str = "source",
    next_action: str = "sample",
) -> torch.Tensor:
    """``[E, N]`` fictitious value targets ``y_i`` of the source pairs ``(obs, action)``."""
    _check("next_state", next_state, NEXT_STATE_MODES)
    _check("reward", reward_mode, REWARD_MODES)
    _check("next_action", next_action, ACTION_MODES)
    mean, logvar = predict(obs, action)
    if next_state == "sample":
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        pred = mean + torch.exp(0.5 * logvar) * noise
    elif next_state == "mean":
        pred = mean
    else:  # the official code: one variance added to the mean (agent/vgdf.py, _value_expansion)
        pred = mean + torch.exp(logvar)
    e, n = pred.shape[:2]
    next_obs = obs.reshape(n, -1).unsqueeze(0) + pred[..., 1:]  # [E, N, d]
    flat = next_obs.reshape(e * n, -1)
    next_act = policy(flat, generator, next_action == "mean")
    v = value(flat, next_act).reshape(e, n)
    notdone = torch.ones_like(v) if terminal is None else (~terminal(next_obs)).to(v.dtype)
    r = reward.to(v.dtype).unsqueeze(0).expand(e, n) if reward_mode == "source" else pred[..., 0]
    return r + gamma * notdone * v


@torch.no_grad()
def source_targets(
    value: ValueFn, policy: PolicyFn, reward: torch.Tensor, next_obs: torch.Tensor,
    terminated: torch.Tensor, gamma: float, generator: torch.Generator,
) -> torch.Tensor:
    """``[N]`` the source transitions' own value targets ``r + gamma (1 - d) V(s')``, ``a' ~ pi``
    sampled, no entropy term (paper eq. 6 and the code)."""
    next_act = policy(next_obs, generator, False)
    v = value(next_obs, next_act)
    return reward.to(v.dtype) + gamma * (~terminated).to(v.dtype) * v


def fvp_scores(fictitious: torch.Tensor, y_src: torch.Tensor) -> torch.Tensor:
    """``[N]`` fictitious value proximity: the density of ``N(mean_i y_i, std_i y_i + 1e-8)`` at
    ``y_src`` (paper eq. 7; unbiased std over the ``E`` members, as ``torch.std``)."""
    if fictitious.dim() != 2 or fictitious.shape[1] != y_src.shape[0]:
        raise ValueError(f"fvp_scores: need fictitious [E, N] and y_src [N], got "
                         f"{tuple(fictitious.shape)} and {tuple(y_src.shape)}")
    if fictitious.shape[0] < 2:
        raise ValueError("fvp_scores: the FVE needs at least 2 members for a standard deviation")
    mu = fictitious.mean(dim=0)
    sd = fictitious.std(dim=0) + STD_EPS
    # torch.distributions.Normal(mu, sd).log_prob(y_src) written out op for op (the same bits)
    # without building the distribution, whose argument checks cost more than the formula.
    log_prob = -((y_src - mu) ** 2) / (2 * sd**2) - sd.log() - _LOG_SQRT_2PI
    return log_prob.exp()


@dataclass(frozen=True)
class Selection:
    """Which source samples feed the critic."""

    mask: torch.Tensor
    """``[N]`` bool, True where kept."""
    threshold: torch.Tensor
    """0-dim: the ``1 - xi`` quantile of the scores (``-inf`` before the warm-up)."""


def select(scores: torch.Tensor, keep_fraction: float, active: bool) -> Selection:
    """Keep the samples whose score is strictly above the ``1 - keep_fraction`` quantile
    (linear interpolation, as ``torch.quantile``); keep all while ``active`` is False (warm-up)."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"VGDF filter: keep_fraction (xi) must be in (0, 1], got {keep_fraction}")
    if not active or keep_fraction >= 1.0:
        # xi = 100 % is "Mix": every source sample (a strict > would drop the lowest score).
        return Selection(torch.ones_like(scores, dtype=torch.bool),
                         torch.tensor(float("-inf"), device=scores.device))
    threshold = torch.quantile(scores, 1.0 - keep_fraction)
    return Selection(scores > threshold, threshold)


def source_loss_weights(mask: torch.Tensor, normalisation: str = "kept") -> torch.Tensor:
    """``[N]`` weights such that ``mean(w * err)`` is the source TD loss.

    ``"kept"``: mean over the kept samples only (the paper's ``E[1(Lambda > threshold) ...]`` over
    accepted data); ``"batch"``: ``mean(mask * err)`` over the whole batch (the code).
    """
    _check("src_loss_normalisation", normalisation, NORMALISATIONS)
    w = mask.to(torch.float32)
    if normalisation == "kept":
        w = w * (mask.numel() / mask.sum().clamp(min=1).to(torch.float32))
    return w
