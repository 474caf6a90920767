"""Observation and action spaces that know their device and their batch shape.

``Box`` and ``Discrete`` describe one copy of an env (``batch_shape == ()``) or ``B`` copies
(``batch_shape == (B,)``). They sample with an explicit ``torch.Generator``, check membership with
tensor ops, and convert to gymnasium spaces for the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import gymnasium
import numpy as np
import torch


@dataclass(frozen=True)
class Box:
    """A box ``low <= x <= high`` of float values with event shape ``shape``."""

    low: torch.Tensor
    high: torch.Tensor
    batch_shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.float32

    @staticmethod
    def make(
        low: float | torch.Tensor | np.ndarray,
        high: float | torch.Tensor | np.ndarray,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Box:
        """Build a Box from scalar or array bounds (scalars need ``shape``)."""
        low_t = torch.as_tensor(low, dtype=dtype, device=device)
        high_t = torch.as_tensor(high, dtype=dtype, device=device)
        if shape is not None:
            low_t, high_t = low_t.expand(shape).clone(), high_t.expand(shape).clone()
        if low_t.shape != high_t.shape:
            raise ValueError(f"Box low {tuple(low_t.shape)} and high {tuple(high_t.shape)} differ")
        if bool((low_t > high_t).any()):
            raise ValueError("Box low must be <= high everywhere")
        return Box(low_t, high_t, (), dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """Event shape of one copy."""
        return tuple(self.low.shape)

    @property
    def device(self) -> torch.device:
        """Device the bounds (and samples) live on."""
        return self.low.device

    def batched(self, n: int) -> Box:
        """The same space for ``n`` copies."""
        return replace(self, batch_shape=(n,))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform sample of shape ``batch_shape + shape`` (infinite bounds fall back to N(0, 1))."""
        size = self.batch_shape + self.shape
        u = torch.rand(size, generator=generator, device=self.device, dtype=self.dtype)
        finite = torch.isfinite(self.low) & torch.isfinite(self.high)
        span = torch.where(finite, self.high - self.low, torch.ones_like(self.low))
        base = torch.where(finite, self.low, torch.zeros_like(self.low))
        bounded = base + span * u
        if bool(finite.all()):
            return bounded
        normal = torch.randn(size, generator=generator, device=self.device, dtype=self.dtype)
        return torch.where(finite, bounded, normal)

    def contains(self, x: torch.Tensor) -> bool:
        """True when ``x`` has this space's shape and lies inside the bounds."""
        if tuple(x.shape) != self.batch_shape + self.shape:
            return False
        return bool(((x >= self.low) & (x <= self.high)).all())

    def to_gymnasium(self) -> gymnasium.spaces.Box:
        """The single-copy gymnasium space (numpy float32 bounds)."""
        return gymnasium.spaces.Box(
            self.low.cpu().numpy().astype(np.float32),
            self.high.cpu().numpy().astype(np.float32),
            dtype=np.float32,
        )


@dataclass(frozen=True)
class Discrete:
    """Integers ``0 .. n - 1``, stored as int64."""

    n: int
    batch_shape: tuple[int, ...] = ()
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.int64

    @property
    def shape(self) -> tuple[int, ...]:
        """Event shape of one copy (scalar)."""
        return ()

    def batched(self, n: int) -> Discrete:
        """The same space for ``n`` copies."""
        return replace(self, batch_shape=(n,))

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform integers of shape ``batch_shape``."""
        return torch.randint(
            0, self.n, self.batch_shape, generator=generator, device=self.device, dtype=self.dtype
        )

    def contains(self, x: torch.Tensor) -> bool:
        """True when ``x`` is an integer tensor of this batch shape with values in range."""
        if tuple(x.shape) != self.batch_shape or x.is_floating_point():
            return False
        return bool(((x >= 0) & (x < self.n)).all())

    def to_gymnasium(self) -> gymnasium.spaces.Discrete:
        """The single-copy gymnasium space."""
        return gymnasium.spaces.Discrete(self.n)


Space = Box | Discrete
