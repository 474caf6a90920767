"""VGDF's target-domain dynamics model: a Gaussian ensemble over ``(reward, next_obs - obs)``
from ``(obs, action)``, retrained on all target data (VGDF ``agent/vgdf.py``, ``train_model``)."""

from __future__ import annotations

import torch

from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.learners.buffers import Transitions
from rlsuite.learners.dynamics_fit import FitConfig, FitResult, fit_ensemble, patience_at
from rlsuite.learners.ensemble import GaussianEnsemble


def build_model(cfg: VGDFConfig, obs_dim: int, act_dim: int) -> GaussianEnsemble:
    """The ensemble (Swish MLPs, inputs standardised, per-layer decay, elites); the log-variance
    bounds are frozen when ``learn_logvar_bounds`` is False (the code)."""
    model = GaussianEnsemble(cfg.ensemble_size, obs_dim + act_dim, 1 + obs_dim, cfg.model_hidden,
                             weight_decay=cfg.model_weight_decay, num_elites=cfg.num_elites)
    model.max_logvar.requires_grad_(cfg.learn_logvar_bounds)
    model.min_logvar.requires_grad_(cfg.learn_logvar_bounds)
    return model


def model_io(data: Transitions) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[N, obs + act]`` and labels ``[N, 1 + obs]`` (reward, then the change of obs)."""
    obs = data.obs.reshape(len(data), -1).float()
    nxt = data.next_obs.reshape(len(data), -1).float()
    act = data.action.reshape(len(data), -1).float()
    return torch.cat([obs, act], -1), torch.cat([data.reward.float().unsqueeze(-1), nxt - obs], -1)


def train_model(model: GaussianEnsemble, optimizer: torch.optim.Optimizer, data: Transitions,
                step: int, cfg: VGDFConfig, generator: torch.Generator) -> FitResult:
    """Fit ``model`` on ``data`` (all target transitions) with the patience of step ``step``."""
    x, y = model_io(data)
    fit_cfg = FitConfig(batch_size=cfg.model_batch_size, holdout_ratio=cfg.model_holdout_ratio,
                        max_epochs=cfg.model_max_epochs)
    patience = patience_at(step, cfg.model_patience, cfg.model_patience_decay)
    return fit_ensemble(model, optimizer, x, y, generator, patience, fit_cfg)


def make_predict(model: GaussianEnsemble, members: str):
    """``(obs, action) -> (mean, logvar)`` of all members or of the elites only."""
    if members not in ("all", "elites"):
        raise ValueError(f"VGDF: fve_members must be 'all' or 'elites', got {members!r}")

    def predict(obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs.reshape(len(obs), -1).float(), action.reshape(len(action), -1)], -1)
        return model(x) if members == "all" else model.elite_forward(x)

    return predict
