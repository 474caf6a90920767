"""Ensembles of small MLPs evaluated in one call, and the probabilistic head of PETS / MBPO.

:class:`Ensemble` holds ``E`` MLPs of one architecture as stacked weights ``[E, out, in]``
(``nn.Linear``'s layout) and biases ``[E, 1, out]`` and evaluates all members with one
``torch.baddbmm`` per layer. Inputs are either shared by every member (``[N, in]``, e.g.
predicting from one batch of states) or per member (``[E, N, in]``, e.g. each member's bootstrap
sample during training); outputs are ``[E, N, out]``.
All members live in one module, so one optimizer trains them, and since no operation mixes the
``E`` slices, each member's gradient depends only on its own output.

Why stacked weights and ``baddbmm`` rather than ``torch.func.stack_module_state`` + ``vmap``
over ``functional_call``: ``scripts/bench_ensemble.py`` on this project's shared 2-core CPU (one
thread, torch 2.13; E = 7, in 20, four hidden layers of 200 SiLU units, out 34, batch 256;
interleaved rounds, median ms):

    =====================================  ======  =======
    case                                    vmap   baddbmm
    =====================================  ======  =======
    predict, shared input, no_grad           24.0     18.6
    train step, per-member input, fwd+bwd    71.4     57.4
    =====================================  ======  =======

(an earlier run under heavier load: 32.1 / 24.0 and 94.2 / 87.4). ``baddbmm`` is 15-25% faster
(vmap lowers to the same batched matmuls plus its own dispatch) and the module stays an ordinary
``nn.Module`` with a plain ``state_dict``. Keeping ``nn.Linear``'s ``[out, in]`` layout (and
multiplying by its transposed view, which costs nothing: measured equal) makes each member's
matrix product the one ``nn.Linear`` runs, so at the sizes used here the outputs equal each
member's own ``nn.Linear`` stack bit for bit on CPU (vmap differed by 1.5e-8 in one of two
runs). That is not guaranteed for a 1-unit output layer or tiny matrices, where ``nn.Linear``
and ``bmm`` take different CPU kernels (a few ulp apart).

:class:`GaussianEnsemble` is the probabilistic ensemble of Chua et al. 2018 (PETS, arXiv
1805.12114) as used by MBPO (Janner et al. 2019, arXiv 1906.08253) and VGDF's dynamics model:
each member outputs a mean and a log-variance, the log-variance is kept inside learned bounds by
soft clamps (``max - softplus(max - x)``, then ``min + softplus(x - min)``) and the bounds are
pulled inward by a small penalty in the loss. Initial bounds 0.5 / -10 and the penalty weight
0.01 are those of the PETS and MBPO code; weights start from a normal truncated at two standard
deviations with ``std = 1 / (2 sqrt(in))``, zero biases (the same code bases).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

MAX_LOGVAR_INIT = 0.5
"""Initial upper bound of the log-variance (PETS / MBPO)."""
MIN_LOGVAR_INIT = -10.0
"""Initial lower bound of the log-variance (PETS / MBPO)."""


class Ensemble(nn.Module):
    """``E`` independent MLPs ``in -> hidden... -> out`` evaluated together.

    Args:
        num_members: E.
        in_dim, out_dim: input and output features.
        hidden: hidden widths (MBPO: four layers of 200).
        activation: module class applied after every hidden layer (MBPO: swish = SiLU).
        generator: draws the initial weights (the global generator when None).
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (200, 200, 200, 200),
        activation: type[nn.Module] = nn.SiLU,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        sizes = [("num_members", num_members), ("in_dim", in_dim), ("out_dim", out_dim)]
        sizes += [(f"hidden[{i}]", h) for i, h in enumerate(hidden)]
        for name, value in sizes:
            if value < 1:
                raise ValueError(f"Ensemble: {name} must be >= 1, got {value}")
        self.num_members, self.in_dim, self.out_dim = num_members, in_dim, out_dim
        dims = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            w = torch.empty(num_members, b, a)
            std = 1.0 / (2.0 * math.sqrt(a))
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(num_members, 1, b)))
        self.activation = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, in]`` (shared) or ``[E, N, in]`` (per member) -> ``[E, N, out]``."""
        if x.dim() == 2 and x.shape[1] == self.in_dim:
            x = x.unsqueeze(0).expand(self.num_members, -1, -1)
        elif not (x.dim() == 3 and x.shape[0] == self.num_members and x.shape[2] == self.in_dim):
            raise ValueError(
                f"Ensemble input has shape {tuple(x.shape)}; expected [N, {self.in_dim}] or "
                f"[{self.num_members}, N, {self.in_dim}]"
            )
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w.transpose(1, 2))  # x[e] @ w[e].T + b[e], every e at once
            if i < last:
                x = self.activation(x)
        return x

    @classmethod
    def from_members(cls, members: Sequence[nn.Sequential]) -> Ensemble:
        """An ensemble holding copies of ``members``' weights.

        Each member must be ``Linear, act, Linear, act, ..., Linear`` with the same shapes and the
        same activation class (the first member's is used).
        """
        if not members:
            raise ValueError("Ensemble.from_members needs at least one member")
        linears = [[m for m in seq if isinstance(m, nn.Linear)] for seq in members]
        acts = [type(m) for m in members[0] if not isinstance(m, nn.Linear)]
        shapes = [[tuple(layer.weight.shape) for layer in ls] for ls in linears]
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                raise ValueError(f"Ensemble.from_members: member {i} has layer shapes {s}, "
                                 f"member 0 has {shapes[0]}")
        first = linears[0]
        # The initial draw is overwritten; a private generator leaves the global RNG untouched.
        ens = cls(len(members), first[0].in_features, first[-1].out_features,
                  [layer.out_features for layer in first[:-1]],
                  acts[0] if acts else nn.Identity, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            for j in range(len(first)):
                ens.weights[j].copy_(torch.stack([ls[j].weight for ls in linears]))
                ens.biases[j].copy_(torch.stack([ls[j].bias for ls in linears]).unsqueeze(1))
        return ens.to(first[0].weight)

    def member(self, index: int) -> nn.Sequential:
        """Member ``index`` as a standalone ``nn.Sequential`` of ``nn.Linear`` (a copy)."""
        if not 0 <= index < self.num_members:
            raise IndexError(f"member index {index} out of range for {self.num_members} members")
        layers: list[nn.Module] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            linear = nn.Linear(w.shape[2], w.shape[1]).to(w)
            with torch.no_grad():
                linear.weight.copy_(w[index])
                linear.bias.copy_(b[index, 0])
            layers.append(linear)
            if i < last:
                layers.append(type(self.activation)())
        return nn.Sequential(*layers)

    def decay_loss(self, coefs: Sequence[float]) -> torch.Tensor:
        """Per-layer L2 penalty ``sum_l coefs[l] * sum(W_l^2) / 2`` over all members (weights only,
        no biases), as the MBPO / VGDF dynamics models add to their loss (VGDF
        ``model/dynamics.py``: 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4 for its five layers).

        Summed over members, like the per-member losses, so each member's gradient is its own
        layer decay.
        """
        if len(coefs) != len(self.weights):
            raise ValueError(f"Ensemble.decay_loss: got {len(coefs)} coefficients for "
                             f"{len(self.weights)} layers")
        total = self.weights[0].new_zeros(())
        for c, w in zip(coefs, self.weights, strict=True):
            if c < 0:
                raise ValueError(f"Ensemble.decay_loss: coefficients must be >= 0, got {c}")
            if c:
                total = total + 0.5 * c * w.pow(2).sum()
        return total


def soft_clamp_logvar(
    raw: torch.Tensor, min_logvar: torch.Tensor, max_logvar: torch.Tensor
) -> torch.Tensor:
    """``min + softplus(max - softplus(max - raw) - min)``: smooth bounds, gradients everywhere
    (PETS / MBPO; a hard clamp would stop the gradient at the bounds)."""
    logvar = max_logvar - F.softplus(max_logvar - raw)
    return min_logvar + F.softplus(logvar - min_logvar)


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-member Gaussian negative log-likelihood (up to constants), ``[E]``.

    ``mean over N and features of (target - mean)^2 exp(-logvar) + logvar`` (MBPO's training
    loss; twice ``F.gaussian_nll_loss``). Sum over members to train them all with one optimizer.
    """
    return ((target - mean).pow(2) * torch.exp(-logvar) + logvar).mean(dim=(-2, -1))


def bootstrap_indices(num_members: int, n: int, generator: torch.Generator,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """``[E, n]`` row indices drawn with replacement, one bootstrap sample per member (PETS)."""
    return torch.randint(n, (num_members, n), generator=generator, device=device)


class GaussianEnsemble(nn.Module):
    """Probabilistic ensemble: each member predicts a diagonal Gaussian ``N(mean, exp(logvar))``.

    Inputs are standardized with stored statistics (:meth:`set_input_stats`, MBPO's
    ``StandardScaler``), kept as buffers so they are checkpointed with the weights.

    MBPO-style elites: :meth:`set_elites` keeps the ``num_elites`` members with the lowest
    held-out loss (a buffer, checkpointed); :meth:`elite_forward` evaluates only those.

    Args:
        num_members, in_dim, out_dim, hidden, activation, generator: as :class:`Ensemble`
            (the trunk outputs ``2 * out_dim``: means then raw log-variances).
        weight_decay: one L2 coefficient per linear layer (``len(hidden) + 1``), added to
            :meth:`loss` through :meth:`Ensemble.decay_loss`; None adds none.
        num_elites: members kept by :meth:`set_elites` (None: all; MBPO / VGDF: 5 of 7).
    """

    def __init__(
        self,
        num_members: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (200, 200, 200, 200),
        activation: type[nn.Module] = nn.SiLU,
        generator: torch.Generator | None = None,
        weight_decay: Sequence[float] | None = None,
        num_elites: int | None = None,
    ) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = Ensemble(num_members, in_dim, 2 * out_dim, hidden, activation, generator)
        if weight_decay is not None:
            if len(weight_decay) != len(hidden) + 1:
                raise ValueError(f"GaussianEnsemble: weight_decay needs {len(hidden) + 1} "
                                 f"coefficients (one per layer), got {list(weight_decay)}")
            if any(c < 0 for c in weight_decay):
                raise ValueError(f"GaussianEnsemble: weight_decay must be >= 0, got {list(weight_decay)}")
        self.weight_decay = None if weight_decay is None else tuple(float(c) for c in weight_decay)
        num_elites = num_members if num_elites is None else num_elites
        if not 1 <= num_elites <= num_members:
            raise ValueError(f"GaussianEnsemble: num_elites must be in [1, {num_members}], "
                             f"got {num_elites}")
        self.num_elites = num_elites
        self.max_logvar = nn.Parameter(torch.full((out_dim,), MAX_LOGVAR_INIT))
        self.min_logvar = nn.Parameter(torch.full((out_dim,), MIN_LOGVAR_INIT))
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_std", torch.ones(in_dim))
        self.register_buffer("elites", torch.arange(num_elites))

    @property
    def num_members(self) -> int:
        """E."""
        return self.net.num_members

    @torch.no_grad()
    def set_input_stats(self, inputs: torch.Tensor) -> None:
        """Standardize future inputs with the mean / std of ``inputs`` (``[N, in]``); features
        with std below 1e-12 are left unscaled (MBPO's ``StandardScaler``)."""
        flat = inputs.reshape(-1, inputs.shape[-1])
        std = flat.std(dim=0, unbiased=False)
        self.input_mean.copy_(flat.mean(dim=0))
        self.input_std.copy_(torch.where(std < 1e-12, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, in]`` or ``[E, N, in]`` -> ``(mean, logvar)``, each ``[E, N, out]``."""
        out = self.net((x - self.input_mean) / self.input_std)
        mean, raw = out.split(self.out_dim, dim=-1)
        return mean, soft_clamp_logvar(raw, self.min_logvar, self.max_logvar)

    def logvar_bound_penalty(self, coef: float = 0.01) -> torch.Tensor:
        """``coef * (sum max_logvar - sum min_logvar)``: keeps the learned bounds tight."""
        return coef * (self.max_logvar.sum() - self.min_logvar.sum())

    def loss(self, x: torch.Tensor, target: torch.Tensor, penalty: float = 0.01
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training loss ``sum_e nll_e + penalty``, and the per-member NLL ``[E]`` (detached).

        ``x`` and ``target`` are ``[E, N, .]`` (bootstrap samples) or shared ``[N, .]``.
        """
        mean, logvar = self(x)
        nll = gaussian_nll(mean, logvar, target)
        total = nll.sum() + self.logvar_bound_penalty(penalty)
        if self.weight_decay is not None:
            total = total + self.net.decay_loss(self.weight_decay)
        return total, nll.detach()

    @torch.no_grad()
    def set_elites(self, holdout_loss: torch.Tensor) -> torch.Tensor:
        """Keep the ``num_elites`` members with the lowest ``holdout_loss`` (``[E]``), best first
        (MBPO's ranking by held-out MSE); returns their indices."""
        if holdout_loss.shape != (self.num_members,):
            raise ValueError(f"set_elites: holdout_loss must have shape ({self.num_members},), "
                             f"got {tuple(holdout_loss.shape)}")
        order = torch.argsort(holdout_loss, stable=True)[: self.num_elites]
        self.elites.copy_(order.to(self.elites))
        return self.elites.clone()

    def elite_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of the elites only, each ``[num_elites, N, out]``."""
        mean, logvar = self(x)
        return mean[self.elites], logvar[self.elites]

    @torch.no_grad()
    def sample(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One draw per member, ``[E, N, out]``: ``mean + exp(logvar / 2) * noise``."""
        mean, logvar = self(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise
