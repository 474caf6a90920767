"""Fitting a :class:`~rlsuite.learners.ensemble.GaussianEnsemble` to transitions: hold-out split,
epochs of per-member shuffled minibatches, elites by hold-out MSE, MBPO-style early stopping.

The schedule is the one of the MBPO code and of VGDF's ``model/dynamics.py``
(``EnsembleDynamicsModel.train``): a random ``holdout_ratio`` of the data is held out; input
statistics come from the training part; every epoch each member sees the whole training part in its
own random order, in minibatches of ``batch_size`` (the last one partial); after every epoch the
per-member hold-out MSE (no variance term) ranks the elites, and a member counts as improved when
its hold-out MSE drops by more than ``improvement`` (1 %) relative to its best so far. Training
stops once no member has improved for more than ``patience`` epochs. VGDF shrinks the patience as
training goes on: ``max(0, 5 - floor(step / 150000))`` (:func:`patience_at`).

Departures from that code, each a switch: ``max_epochs`` caps the epochs (the code has no cap;
None keeps it that way), and with fewer than ``1 / holdout_ratio`` samples the hold-out would be
empty, so the training set is scored instead (the code would score an empty set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsuite.learners.ensemble import GaussianEnsemble


@dataclass
class FitConfig:
    """How one call of :func:`fit_ensemble` trains (defaults: VGDF's released configs)."""

    batch_size: int = 256
    """Minibatch size per member (``dynamics_batch_size``)."""
    holdout_ratio: float = 0.1
    """Fraction of the data held out for early stopping and elites (``dynamics_holdout_ratio``)."""
    improvement: float = 0.01
    """Relative drop of a member's hold-out MSE that counts as an improvement (1 %)."""
    max_epochs: int | None = None
    """Cap on epochs per call; None trains until the patience runs out (the code's behaviour)."""
    penalty: float = 0.01
    """Weight of the log-variance bound penalty (PETS / MBPO)."""


def patience_at(step: int, base: int = 5, decay_interval: int = 150_000) -> int:
    """Epochs without improvement tolerated at env step ``step``: ``max(0, base - floor(step /
    decay_interval))`` (VGDF ``agent/vgdf.py``, ``train_model``)."""
    if decay_interval <= 0:
        raise ValueError(f"patience_at: decay_interval must be > 0, got {decay_interval}")
    return max(0, base - step // decay_interval)


@dataclass
class FitResult:
    """What one :func:`fit_ensemble` call did."""

    epochs: int
    """Epochs trained."""
    stopped_early: bool
    """True when the patience ran out (False: ``max_epochs`` reached)."""
    holdout_mse: torch.Tensor
    """``[E]`` per-member hold-out MSE after the last epoch."""
    mean_holdout_mse: float
    """Mean over epochs of the members' mean hold-out MSE (VGDF logs this as ``loss_dynamics``)."""
    elites: torch.Tensor
    """Indices of the elite members, best first."""


@torch.no_grad()
def holdout_mse(model: GaussianEnsemble, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[E]``: each member's mean squared error of its mean prediction (no variance term)."""
    mean, _ = model(inputs)
    return (mean - targets).pow(2).mean(dim=(-2, -1))


def fit_ensemble(
    model: GaussianEnsemble,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    patience: int = 5,
    config: FitConfig | None = None,
) -> FitResult:
    """Train ``model`` on ``(inputs [N, in], targets [N, out])`` until early stopping.

    Continues from the model's current weights (VGDF retrains the same ensemble every 250 steps)
    and leaves the elites set on the model.
    """
    cfg = config or FitConfig()
    if inputs.dim() != 2 or targets.dim() != 2 or len(inputs) != len(targets):
        raise ValueError(f"fit_ensemble: need inputs [N, in] and targets [N, out], got "
                         f"{tuple(inputs.shape)} and {tuple(targets.shape)}")
    if not 0.0 <= cfg.holdout_ratio < 1.0:
        raise ValueError(f"fit_ensemble: holdout_ratio must be in [0, 1), got {cfg.holdout_ratio}")
    if cfg.batch_size < 1 or patience < 0:
        raise ValueError(f"fit_ensemble: need batch_size >= 1 and patience >= 0, got "
                         f"{cfg.batch_size} and {patience}")
    n = len(inputs)
    num_holdout = int(n * cfg.holdout_ratio)
    perm = torch.randperm(n, generator=generator, device=inputs.device)
    inputs, targets = inputs[perm], targets[perm]
    train_x, train_y = inputs[num_holdout:], targets[num_holdout:]
    hold_x, hold_y = (inputs[:num_holdout], targets[:num_holdout]) if num_holdout else (train_x, train_y)
    model.set_input_stats(train_x)
    e, n_train = model.num_members, len(train_x)
    best = torch.full((e,), float("inf"), device=inputs.device)
    since_update, epoch, per_epoch = 0, 0, []
    stopped_early = False
    while cfg.max_epochs is None or epoch < cfg.max_epochs:
        # Each member its own random order of the whole training part (not a bootstrap).
        order = torch.argsort(torch.rand((e, n_train), generator=generator, device=inputs.device), dim=1)
        for start in range(0, n_train, cfg.batch_size):
            idx = order[:, start:start + cfg.batch_size]
            loss, _ = model.loss(train_x[idx], train_y[idx], cfg.penalty)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epoch += 1
        mse = holdout_mse(model, hold_x, hold_y)
        per_epoch.append(mse.mean())
        model.set_elites(mse)
        # Relative improvement against each member's best so far (the first epoch always counts).
        improved = torch.where(torch.isinf(best), torch.ones_like(mse, dtype=torch.bool),
                               (best - mse) / best > cfg.improvement)
        best = torch.where(improved, mse, best)
        if bool(improved.any()):  # one host sync per epoch
            since_update = 0
        else:
            since_update += 1
        if since_update > patience:
            stopped_early = True
            break
    return FitResult(epochs=epoch, stopped_early=stopped_early, holdout_mse=mse,
                     mean_holdout_mse=float(torch.stack(per_epoch).mean()),
                     elites=model.elites.clone())
