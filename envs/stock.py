"""Stock augmentation for any engine env (Avila Pires et al., arXiv 2501.13028, section 3).

:class:`StockAugmentedEnv` tracks the stock ``c`` of every copy on the env's device:
``c_0 ~ Uniform[stock_low, stock_high]`` (per copy, from the params; equal bounds fix it) at every
reset, ``c_{t+1} = (c_t + r_{t+1}) / gamma`` after every step (``docs/distributional_dp.md``). The
observation is the wrapped one (flattened, or one-hot for a Discrete space) with the stock appended
(and, with ``include_time``, the step count in the episode, which finite-horizon policies need).

Autoreset: where an episode ends, ``step.obs`` carries the *new* episode's initial stock and
``step.final_obs`` the *post-reward* stock ``(c_T-1 + r_T) / gamma`` of the episode that ended
(the pre-reset observation), so a replay buffer stores ``s'`` with the stock the target needs.
``clip`` (optional) clamps the stock into ``[low, high]``: with the exact bounds
``[-G_max, -G_min]`` this loses nothing for piecewise-affine objectives (section 1.4) and keeps
``gamma^-t`` from blowing up on long episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv, Step


@dataclass(frozen=True)
class StockParams:
    """The wrapped env's params plus each copy's initial-stock range."""

    inner: Any
    """Params of the wrapped env."""
    stock_low: torch.Tensor
    """``[B]`` lower end of the initial stock's uniform distribution."""
    stock_high: torch.Tensor
    """``[B]`` upper end (``== stock_low``: a fixed initial stock)."""


@dataclass(frozen=True)
class StockState:
    """The wrapped env's state plus the stock and the steps taken in the episode."""

    inner: Any
    stock: torch.Tensor
    """``[B]`` current stock ``c_t``."""
    time: torch.Tensor
    """``[B]`` int64 steps taken in the current episode."""


class StockAugmentedEnv(BatchedEnv[StockState, StockParams]):
    """Any engine env with the stock appended to its observation (see the module docstring).

    Args:
        env: the wrapped env (its rewards must be scalar).
        gamma: the discount of the stock recursion.
        initial_stock: ``c_0`` of the default params, a float or a ``(low, high)`` range.
        include_time: append the episode's step count to the observation.
        clip: optional ``(low, high)`` bounds of the stock.
        dtype: dtype of the stock and of the observation.
    """

    def __init__(self, env: BatchedEnv, gamma: float, initial_stock: float | tuple[float, float] = 0.0,
                 include_time: bool = False, clip: tuple[float, float] | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(env.device)
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"StockAugmentedEnv: gamma = {gamma} must be in (0, 1]")
        if clip is not None and clip[0] > clip[1]:
            raise ValueError(f"StockAugmentedEnv: clip = {clip} needs low <= high")
        self.env, self.gamma, self.include_time, self.clip, self.dtype = (
            env, float(gamma), include_time, clip, dtype)
        lo, hi = (initial_stock, initial_stock) if isinstance(initial_stock, (int, float)) \
            else initial_stock
        if lo > hi:
            raise ValueError(f"StockAugmentedEnv: initial_stock range {initial_stock} needs low <= high")
        self.initial_stock = (float(lo), float(hi))
        self.name = f"{env.name}+stock"
        self.max_episode_steps = env.max_episode_steps
        self.action_space = env.action_space
        inner = env.observation_space
        self.one_hot = isinstance(inner, spaces.Discrete)
        base_dim = (inner.n if isinstance(inner, spaces.Discrete)
                    else max(1, int(torch.Size(inner.shape).numel())))
        self.base_dim = base_dim
        extra = 2 if include_time else 1
        self.observation_space = spaces.Box.make(-torch.inf, torch.inf, (base_dim + extra,),
                                                 dtype=dtype, device=self.device)

    def default_params(self, batch_size: int = 1) -> StockParams:
        """The wrapped env's default params with the constructor's initial-stock range."""
        lo, hi = self.initial_stock
        full = lambda v: torch.full((batch_size,), v, dtype=self.dtype, device=self.device)  # noqa: E731
        return StockParams(self.env.default_params(batch_size), full(lo), full(hi))

    def wrap_params(self, inner: Any, initial_stock: float | torch.Tensor
                    | tuple[float, float] | None = None) -> StockParams:
        """Params around ``inner`` params: a fixed stock (float or ``[B]`` per copy), a range, or
        the constructor's range (``None``)."""
        b = tree.batch_size(inner)
        if initial_stock is None:
            initial_stock = self.initial_stock
        if isinstance(initial_stock, tuple):
            lo, hi = initial_stock
        else:
            lo = hi = initial_stock
        as_b = lambda v: torch.as_tensor(v, dtype=self.dtype, device=self.device).expand(b).clone()  # noqa: E731
        return StockParams(inner, as_b(lo), as_b(hi))

    def check_params(self, params: StockParams, batch_size: int | None = None) -> None:
        """Check the wrapped params and the stock ranges."""
        self.env.check_params(params.inner, batch_size)
        if bool((params.stock_low > params.stock_high).any()):
            raise ValueError("StockParams.stock_low must be <= stock_high in every copy")

    def _draw(self, params: StockParams, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(params.stock_low.shape, generator=generator, device=self.device,
                       dtype=self.dtype)
        return params.stock_low + u * (params.stock_high - params.stock_low)

    def _clip(self, stock: torch.Tensor) -> torch.Tensor:
        return stock if self.clip is None else stock.clamp(self.clip[0], self.clip[1])

    def observe(self, obs: torch.Tensor, stock: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """``[B, base_dim + 1 (+ 1)]``: the wrapped observation, the stock (and the time)."""
        b = stock.shape[0]
        if self.one_hot:
            base = torch.nn.functional.one_hot(obs.long(), self.base_dim).to(self.dtype)
        else:
            base = obs.reshape(b, -1).to(self.dtype)
        parts = [base, stock.unsqueeze(1)]
        if self.include_time:
            parts.append(time.to(self.dtype).unsqueeze(1))
        return torch.cat(parts, 1)

    def reset(self, params: StockParams, generator: torch.Generator) -> tuple[torch.Tensor, StockState]:
        """Reset the wrapped env and draw every copy's initial stock."""
        obs, inner = self.env.reset(params.inner, generator)
        stock = self._clip(self._draw(params, generator))
        time = torch.zeros(stock.shape[0], dtype=torch.int64, device=self.device)
        return self.observe(obs, stock, time), StockState(inner, stock, time)

    def step(self, state: StockState, action: torch.Tensor, params: StockParams,
             generator: torch.Generator) -> Step[StockState]:
        """Step the wrapped env; update the stock, or redraw it where the episode ended."""
        st = self.env.step(state.inner, action, params.inner, generator)
        after = self._clip((state.stock + st.reward.to(self.dtype)) / self.gamma)
        done = st.terminated | st.truncated
        fresh = self._clip(self._draw(params, generator))  # drawn every step: a fixed stream
        stock = torch.where(done, fresh, after)
        time_after = state.time + 1
        time = torch.where(done, torch.zeros_like(time_after), time_after)
        return Step(self.observe(st.obs, stock, time), StockState(st.state, stock, time),
                    st.reward, st.terminated, st.truncated,
                    self.observe(st.final_obs, after, time_after))
