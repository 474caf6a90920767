"""Uncertainty boxes over the physical params of the batched classic-control envs.

A box is a set of static models ``T_psi``, ``psi`` in ``prod_k [low_k, high_k]`` over named fields
of the env's params dataclass (:class:`rlsuite.envs.pendulum.PendulumParams`,
:class:`rlsuite.envs.cartpole.CartPoleParams`); fields not named keep the nominal value. Search
happens in the normalized cube ``[0, 1]^d`` (the paper's CMA-ES starts at mean 0.5, std 0.5 there,
App. H, Table 5) and :meth:`UncertaintyBox.params` maps points to per-copy params, so a whole grid
or a CMA-ES population is one batched rollout.

Grid convention: ``linspace(low, high, n)`` per axis, both bounds included (M2TD3's
``evaluate.py``; RRLS's ``arange`` grid leaves the upper bound out; ``docs/iwocs.md``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core import params as params_lib
from rlsuite.core import tree


@dataclass(frozen=True)
class UncertaintyBox:
    """A box of static models over named params fields of one env."""

    env: str
    """Registry name of the env (``rlsuite.envs.make``)."""
    names: tuple[str, ...]
    """Params fields, one per dimension."""
    low: tuple[float, ...]
    """Lower bounds, one per dimension."""
    high: tuple[float, ...]
    """Upper bounds, one per dimension."""

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.low) == len(self.high)) or not self.names:
            raise ValueError(f"UncertaintyBox({self.env}): names {self.names}, low {self.low} and "
                             f"high {self.high} must be non-empty and of equal length")
        for n, lo, hi in zip(self.names, self.low, self.high, strict=True):
            if not lo < hi:
                raise ValueError(f"UncertaintyBox({self.env}): {n} has low {lo} >= high {hi}")

    @property
    def dim(self) -> int:
        """Number of uncertain params ``d``."""
        return len(self.names)

    def denormalize(self, unit: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` points of ``[0, 1]^d`` (clamped there) to physical values."""
        low = torch.tensor(self.low, dtype=torch.float64)
        high = torch.tensor(self.high, dtype=torch.float64)
        return low + (high - low) * unit.to(torch.float64).clamp(0.0, 1.0)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """``[N, d]`` physical values to ``[0, 1]^d``."""
        low = torch.tensor(self.low, dtype=torch.float64)
        high = torch.tensor(self.high, dtype=torch.float64)
        return (values.to(torch.float64) - low) / (high - low)

    def grid(self, points: int) -> torch.Tensor:
        """``[points^d, d]`` physical grid (linspace, both bounds; the last axis varies fastest)."""
        if points < 1:
            raise ValueError(f"grid: points = {points} must be >= 1")
        axes = [torch.linspace(lo, hi, points, dtype=torch.float64).tolist()
                for lo, hi in zip(self.low, self.high, strict=True)]
        return torch.tensor(list(itertools.product(*axes)), dtype=torch.float64)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[n, d]`` physical values drawn uniformly in the box (domain randomization)."""
        u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64,
                       device=generator.device)
        return self.denormalize(u.cpu())

    def params(self, nominal: Any, values: torch.Tensor) -> Any:
        """Per-copy params: ``nominal`` (batch 1) repeated ``N`` times with the box fields set from
        ``values`` ``[N, d]``."""
        if tree.batch_size(nominal) != 1:
            raise ValueError("UncertaintyBox.params: nominal params must have batch size 1")
        vals = torch.as_tensor(values, dtype=torch.float64).reshape(-1, self.dim)
        base = tree.repeat(nominal, vals.shape[0])
        return params_lib.with_values(base, **{n: vals[:, k] for k, n in enumerate(self.names)})

    def nominal_values(self, nominal: Any) -> torch.Tensor:
        """``[d]`` the nominal params' values of the box fields."""
        return torch.tensor([float(getattr(nominal, n).reshape(-1)[0]) for n in self.names],
                            dtype=torch.float64)

    def describe(self, values: torch.Tensor) -> dict[str, float]:
        """``{name: value}`` of one point (for logs and result tables)."""
        return {n: float(v) for n, v in zip(self.names, values.reshape(-1).tolist(), strict=True)}


BOXES: dict[str, UncertaintyBox] = {
    # Pendulum-v1 mass x length (nominal 1, 1). Torque over gravity, 2 u_max / (m g l), is 0.4 at
    # the nominal model and falls as m l grows. The default box keeps m l <= 1.5 so that the worst
    # models stay learnable at a CPU budget; the wider box of the usual CPU recipe (m l up to 3) is
    # "pendulum_mass_length_wide": there a 6k-step SAC trained on the (2, 1.5) corner itself
    # scores -978 on it (measured, 20 episodes), i.e. no method swings it up and the worst-case
    # comparison is noise.
    "pendulum_mass_length": UncertaintyBox("pendulum", ("m", "l"), (0.5, 0.5), (1.5, 1.0)),
    "pendulum_mass_length_wide": UncertaintyBox("pendulum", ("m", "l"), (0.5, 0.5), (2.0, 1.5)),
    "pendulum_mass_length_gravity": UncertaintyBox(
        "pendulum", ("m", "l", "g"), (0.5, 0.5, 8.0), (2.0, 1.5, 12.0)),
    # The CPU recipe's CartPole box: masspole x length (half-length, gymnasium's convention), nominal
    # (0.1, 0.5); force_mag for the 3-D set (nominal 10). The batched CartPole recomputes
    # total_mass and polemass_length from the params every step (the gymnasium pitfall is moot).
    "cartpole_masspole_length": UncertaintyBox(
        "cartpole", ("masspole", "length"), (0.05, 0.25), (1.0, 1.5)),
    "cartpole_masspole_length_force": UncertaintyBox(
        "cartpole", ("masspole", "length", "force_mag"), (0.05, 0.25, 5.0), (1.0, 1.5, 15.0)),
    # The same box on the continuous-force CartPole (envs/shifts.py), which deep IWOCS's SAC
    # experts can drive (the discrete CartPole needs a discrete-action learner).
    "cartpole_continuous_masspole_length": UncertaintyBox(
        "cartpole_continuous", ("masspole", "length"), (0.05, 0.25), (1.0, 1.5)),
}
"""Named boxes (``agent.box=<name>``)."""


def get_box(name: str) -> UncertaintyBox:
    """The box called ``name``: a classic-control box, or a MuJoCo set's box (a KeyError lists the
    known ones)."""
    from rlsuite.agents.iwocs.mujoco_sets import MUJOCO_BOXES  # it imports this module

    if name in BOXES:
        return BOXES[name]
    if name in MUJOCO_BOXES:
        return MUJOCO_BOXES[name].box
    raise KeyError(f"unknown uncertainty box {name!r}; known: {sorted(BOXES)} and the MuJoCo "
                   f"sets {sorted(MUJOCO_BOXES)}")
