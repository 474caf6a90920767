"""``TabularEnv``: B copies of finite MDPs stepped as tensors, next outcomes drawn by alias tables.

Each copy has its own MDP tables in :class:`TabularParams` (robust RL evaluates one policy on many
transition models in one call). A step is::

    row    = s * A + a                              # the (s, a) row, [B]
    slot   = randint(K); u = rand()                 # one draw each
    pick   = 2 * (row * K + slot) + (u >= threshold[row * K + slot])   # keep the slot or its alias
    s', r, terminal = next_state[pick], reward[pick], terminal[pick]   # pair tables [.., K, 2]

The outcome tables are stored as alias *pair tables* (:func:`alias.pair_table`): entry
``[s, a, k, 0]`` is outcome ``k``, entry ``[s, a, k, 1]`` the outcome its alias stands for, so one
gather per field yields the drawn outcome (no ``where`` between slot and alias; see
:func:`alias.draw`).

Where all copies share one MDP, :meth:`TabularMDP.params` *expands* one table over ``B`` (stride 0,
no copy) and the step gathers from that single table with the row index alone. Per-copy tables
(:func:`params_from_mdps`) are gathered from the flattened ``[B * S * A * K (* 2)]`` tables at an
offset ``copy * S * A * K (* 2)``. Both layouts are one ``index_select`` per field; the per-copy
one costs two extra adds and tables ``B`` times larger (``38 * S * A * K`` bytes per copy), which
no longer fit the cache at large ``B``; so share when the MDP is shared (measurements:
``scripts/bench_tabular.py``).

Autoreset draws initial states from each copy's alias table over ``S``. ``core/autoreset.py``
pools i.i.d. float states shared by all copies, which does not fit per-copy initial
distributions, so this env resets its own way, with the same split by device: on the CPU only the
copies that reset draw (``nonzero`` + ``index_put``, nothing drawn on a step where no episode
ends); elsewhere every copy draws and ``torch.where`` selects, so a CUDA step never syncs with the
host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch

from rlsuite.core import autoreset, spaces
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.envs.tabular import alias as alias_lib
from rlsuite.envs.tabular.mdp import TabularMDP

NO_HORIZON = torch.iinfo(torch.int32).max
"""``TabularParams.horizon`` of a copy without a time limit."""
_ONE = torch.ones((), dtype=torch.int32)  # 0-d CPU tensors act as scalars on any device


@dataclass(frozen=True)
class TabularParams:
    """Per-copy MDP tables (``B`` copies, ``S`` states, ``A`` actions, ``K`` outcome slots).

    Outcome slot ``k`` of ``(s, a)`` has flat index ``(s * A + a) * K + k`` within a copy. The
    outcome fields are alias pair tables: ``[..., k, 0]`` describes outcome ``k`` itself (so
    ``next_state[..., 0]`` is the MDP's ``next_state``), ``[..., k, 1]`` the outcome drawn when
    slot ``k`` is picked and rejected. Copies sharing one MDP should share storage (stride 0 over
    ``B``, as :meth:`TabularMDP.params` builds them); the step then indexes a single table.
    """

    next_state: torch.Tensor
    """``[B, S, A, K, 2]`` int64 next state of each outcome (``[..., 0]``) and of its alias."""
    reward: torch.Tensor
    """``[B, S, A, K, 2]`` float32 reward of each outcome and of its alias."""
    terminal: torch.Tensor
    """``[B, S, A, K, 2]`` bool, the outcome (its alias) terminates."""
    alias_threshold: torch.Tensor
    """``[B, S, A, K]`` float32 chance of keeping slot ``k`` once it is drawn."""
    prob: torch.Tensor
    """``[B, S, A, K]`` float64 outcome probabilities (for inspection; the step reads the alias
    tables)."""
    initial: torch.Tensor
    """``[B, S]`` float64 initial distribution (for inspection)."""
    initial_threshold: torch.Tensor
    """``[B, S]`` float32 alias thresholds of the initial distribution."""
    initial_state: torch.Tensor
    """``[B, S, 2]`` int64 pair table of the initial distribution: ``[..., i, 0] = i``,
    ``[..., i, 1]`` the alias of state ``i``."""
    horizon: torch.Tensor
    """``[B]`` int32 time limit (``NO_HORIZON``: none); ``truncated`` once ``time >= horizon``."""

    def dense_P(self) -> torch.Tensor:  # noqa: N802
        """``[B, S, A, S]`` float64 transition probabilities of every copy."""
        b, s, a, _ = self.prob.shape
        out = torch.zeros(b, s, a, s, dtype=torch.float64, device=self.prob.device)
        return out.scatter_add_(3, self.next_state[..., 0], self.prob)

    @cached_property
    def flat(self) -> FlatTables:
        """The tables as the step indexes them, built once per params object (views, no copy
        where the tables are contiguous or expanded)."""
        b, s, a, k = self.prob.shape
        outcome = (self.next_state, self.reward, self.terminal, self.alias_threshold)
        initial = (self.initial_threshold, self.initial_state)
        shared, init_shared = _shared(b, *outcome), _shared(b, *initial)
        device = self.prob.device
        offset = None if shared else torch.arange(0, b * s * a * k, s * a * k, device=device)
        init_offset = None if init_shared else torch.arange(0, b * s, s, device=device)
        return FlatTables(
            next_state=_flat(self.next_state, shared),
            reward=_flat(self.reward, shared),
            terminal=_flat(self.terminal, shared),
            alias_threshold=_flat(self.alias_threshold, shared),
            offset=offset,
            pair_offset=None if offset is None else 2 * offset,
            initial_threshold=_flat(self.initial_threshold, init_shared),
            initial_state=_flat(self.initial_state, init_shared),
            initial_offset=init_offset,
            initial_pair_offset=None if init_offset is None else 2 * init_offset,
            num_outcomes=k,
        )


class FlatTables(NamedTuple):
    """:class:`TabularParams` flattened for ``index_select``. Tables shared by all copies (stride
    0 over ``B``) are copy 0's rows and their offsets ``None``; per-copy tables hold all copies'
    rows, and ``offset [B]`` is ``copy * S * A * K`` into ``alias_threshold``, ``pair_offset``
    twice that into the pair tables (``initial_*`` likewise with ``S``)."""

    next_state: torch.Tensor
    reward: torch.Tensor
    terminal: torch.Tensor
    alias_threshold: torch.Tensor
    offset: torch.Tensor | None
    pair_offset: torch.Tensor | None
    initial_threshold: torch.Tensor
    initial_state: torch.Tensor
    initial_offset: torch.Tensor | None
    initial_pair_offset: torch.Tensor | None
    num_outcomes: int


@dataclass(frozen=True)
class TabularState:
    """Per-copy state."""

    s: torch.Tensor
    """``[B]`` int64 current state (also the observation)."""
    time: torch.Tensor
    """``[B]`` int32 steps taken in the current episode."""


def params_from_mdps(
    mdps: Sequence[TabularMDP],
    device: torch.device | str | None = None,
    horizon: int | None = None,
    copies: int = 1,
) -> TabularParams:
    """Params with one copy per MDP (each repeated ``copies`` times, consecutively).

    All MDPs need the same ``S`` and ``A``; ``K`` is padded to the largest (probability-0 slots).
    ``horizon`` overrides every MDP's own. The tables are contiguous, ``[len(mdps) * copies, ...]``.
    """
    if not mdps:
        raise ValueError("params_from_mdps needs at least one MDP")
    s, a = mdps[0].num_states, mdps[0].num_actions
    for i, mdp in enumerate(mdps):
        if (mdp.num_states, mdp.num_actions) != (s, a):
            raise ValueError(
                f"mdps[{i}] has S={mdp.num_states}, A={mdp.num_actions}; mdps[0] has S={s}, A={a}"
            )
    if copies < 1:
        raise ValueError(f"copies = {copies} must be >= 1")
    k = max(mdp.num_outcomes for mdp in mdps)
    device = torch.device(device if device is not None else mdps[0].device)

    def pad(t: torch.Tensor, value: torch.Tensor | float | bool) -> torch.Tensor:
        t = t.cpu()
        if t.shape[-1] == k:
            return t
        fill = torch.empty(s, a, k - t.shape[-1], dtype=t.dtype)
        fill[...] = value if not isinstance(value, torch.Tensor) else value.view(-1, 1, 1)
        return torch.cat([t, fill], dim=-1)

    fields: dict[str, list[torch.Tensor]] = {name: [] for name in _FIELDS}
    for mdp in mdps:
        prob = pad(mdp.prob, 0.0)
        threshold, slot = _padded_alias(mdp, prob)
        init_threshold, init_slot = mdp.initial_alias
        next_state = pad(mdp.next_state, torch.arange(s))  # padding: a self loop
        fields["next_state"].append(alias_lib.pair_table(next_state, slot))
        fields["reward"].append(alias_lib.pair_table(pad(mdp.reward, 0.0).float(), slot))
        fields["terminal"].append(alias_lib.pair_table(pad(mdp.terminal, False), slot))
        fields["alias_threshold"].append(threshold.float())
        fields["prob"].append(prob)
        fields["initial"].append(mdp.initial.cpu())
        fields["initial_threshold"].append(init_threshold.float())
        fields["initial_state"].append(alias_lib.pair_table(torch.arange(s), init_slot))
        h = horizon if horizon is not None else mdp.horizon
        fields["horizon"].append(torch.tensor(NO_HORIZON if h is None else min(h, NO_HORIZON)))
    stacked = {
        name: torch.stack(values).repeat_interleave(copies, 0).to(device)
        for name, values in fields.items()
    }
    stacked["horizon"] = stacked["horizon"].to(torch.int32)
    return TabularParams(**stacked)


_FIELDS = tuple(f.name for f in dataclasses.fields(TabularParams))
_OUTCOME_FIELDS = ("next_state", "reward", "terminal", "alias_threshold", "prob")


def _padded_alias(mdp: TabularMDP, prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Outcome alias tables of ``mdp`` over the padded ``prob [S, A, K]``. A padded row needs
    its own tables: a draw picks one of all ``K`` slots uniformly, so tables built over fewer
    slots would sample a different distribution."""
    if prob.shape[-1] == mdp.num_outcomes:
        return mdp.outcome_alias  # cached on the MDP
    return alias_lib.build(prob)


def _shared(batch: int, *tables: torch.Tensor) -> bool:
    """True when every table is one table expanded over the batch (or there is one copy)."""
    return batch == 1 or all(t.stride(0) == 0 for t in tables)


def _flat(table: torch.Tensor, shared: bool) -> torch.Tensor:
    """The table as ``[N]``: copy 0's rows when shared, else all copies' rows (a view when
    contiguous)."""
    return table[0].reshape(-1) if shared else table.reshape(-1)


class TabularEnv(BatchedEnv[TabularState, TabularParams]):
    """``B`` copies of finite MDPs; observations and actions are int64 ``[B]`` indices.

    Toy-text semantics: the reward is the sampled outcome's, ``terminated`` is its flag, and
    ``truncated`` is set when the copy's episode reaches ``params.horizon`` steps. Episodes
    restart from each copy's initial distribution inside :meth:`step`.

    Args:
        mdp: the MDP of :meth:`default_params` (and the source of ``S`` and ``A``).
        device: where state, params and observations live.
        max_episode_steps: time limit of the default params (``None``: the MDP's ``horizon``).
            The step reads each copy's ``params.horizon``, which may differ between copies.
        check_actions: on the CPU, raise on actions outside ``0 .. A-1`` (an out-of-range action
            would silently read another state's row). Costs one reduction per step; never done
            on CUDA, where it would sync with the host.

    Attribute ``index_resets`` picks the autoreset path: True (the CPU default) draws initial
    states for the resetting copies only, False (elsewhere) draws for all and selects by
    ``torch.where``. Both draw from the same distributions, from different random streams.
    """

    name = "tabular"

    def __init__(
        self,
        mdp: TabularMDP,
        device: torch.device | str = "cpu",
        max_episode_steps: int | None = None,
        check_actions: bool = True,
    ) -> None:
        super().__init__(device)
        self.mdp = mdp
        self.num_states = mdp.num_states
        self.num_actions = mdp.num_actions
        self.max_episode_steps = max_episode_steps if max_episode_steps is not None else mdp.horizon
        self.check_actions = check_actions
        self.index_resets = autoreset.uses_pool(self.device)
        self.observation_space = spaces.Discrete(self.num_states, device=self.device)
        self.action_space = spaces.Discrete(self.num_actions, device=self.device)
        self._base_params = mdp.params(1, device=self.device, horizon=self.max_episode_steps)

    def default_params(self, batch_size: int = 1) -> TabularParams:
        """The env's MDP for ``batch_size`` copies, sharing one table (stride 0 over ``B``)."""
        base = self._base_params
        return dataclasses.replace(
            base,
            **{
                f.name: getattr(base, f.name).expand(batch_size, *getattr(base, f.name).shape[1:])
                for f in dataclasses.fields(base)
            },
        )

    def check_params(self, params: TabularParams, batch_size: int | None = None) -> None:
        """Raise naming the field if ``params`` does not fit this env (``K`` may differ)."""
        if not isinstance(params, TabularParams):
            raise TypeError(f"params must be TabularParams, got {type(params).__name__}")
        b = params.horizon.shape[0] if batch_size is None else batch_size
        s, a = self.num_states, self.num_actions
        # K is free (params_from_mdps pads to the largest); take the one most outcome fields
        # agree on, so the error names the odd field out.
        ks = [
            getattr(params, n).shape[3] for n in _OUTCOME_FIELDS if getattr(params, n).dim() > 3
        ]
        k = max(set(ks), key=ks.count) if ks else -1
        f64, f32, i64 = torch.float64, torch.float32, torch.int64
        expected = {
            "next_state": ((b, s, a, k, 2), i64), "reward": ((b, s, a, k, 2), f32),
            "terminal": ((b, s, a, k, 2), torch.bool), "alias_threshold": ((b, s, a, k), f32),
            "prob": ((b, s, a, k), f64), "initial": ((b, s), f64),
            "initial_threshold": ((b, s), f32), "initial_state": ((b, s, 2), i64),
            "horizon": ((b,), torch.int32),
        }
        for name, (shape, dtype) in expected.items():
            value = getattr(params, name)
            if tuple(value.shape) != shape:
                raise ValueError(f"params.{name} has shape {tuple(value.shape)}; expected {shape}")
            if value.dtype != dtype:
                raise ValueError(f"params.{name} has dtype {value.dtype}; expected {dtype}")
            if value.device.type != self.device.type:
                raise ValueError(
                    f"params.{name} is on {value.device}; the env runs on {self.device}"
                )

    # -- dynamics -----------------------------------------------------------------------------
    def _draw_initial(
        self, tables: FlatTables, generator: torch.Generator, n: int, index: torch.Tensor | None
    ) -> torch.Tensor:
        """``[n]`` initial states of copies ``index`` (``None``: all ``n = B`` copies)."""
        s = self.num_states
        offset, pair_offset = tables.initial_offset, tables.initial_pair_offset
        if offset is not None and index is not None:
            offset = index * s
            pair_offset = index * (2 * s)
        pick = alias_lib.draw(tables.initial_threshold, s, n, generator, offset=offset)
        at = pick if pair_offset is None else pick + pair_offset
        return tables.initial_state.index_select(0, at)

    def reset(
        self, params: TabularParams, generator: torch.Generator
    ) -> tuple[torch.Tensor, TabularState]:
        """Draw every copy's start state from its initial distribution: ``(obs [B], state)``."""
        self.check_params(params)
        b = params.horizon.shape[0]
        s = self._draw_initial(params.flat, generator, b, None)
        return s, TabularState(s, torch.zeros(b, dtype=torch.int32, device=self.device))

    def step(
        self,
        state: TabularState,
        action: torch.Tensor,
        params: TabularParams,
        generator: torch.Generator,
    ) -> Step[TabularState]:
        """Sample one outcome per copy, then restart the copies whose episode ended."""
        s = state.s
        b = s.shape[0]
        self._check_action(action, b)
        tables = params.flat
        row = torch.add(action, s, alpha=self.num_actions)  # (s, a) row index s * A + a
        pick = self._draw_outcome(tables, row, generator)
        at = pick if tables.pair_offset is None else pick + tables.pair_offset
        # index_select is 3-7x faster than t[idx] or take() on CPU (see alias.draw).
        final_obs = tables.next_state.index_select(0, at)
        reward = tables.reward.index_select(0, at)
        terminated = tables.terminal.index_select(0, at)
        # A 0-d int32 tensor: ``int32_tensor + 1`` converts the Python scalar through a slow path
        # (~3x the add itself at B = 1024, torch 2.13).
        time = state.time + _ONE
        truncated = time >= params.horizon
        done = terminated | truncated
        if self.index_resets:
            # Only the copies that reset draw; the step where none does draws nothing.
            index = done.nonzero().squeeze(1)
            n = index.numel()
            if n == 0:
                obs = final_obs
            else:
                start = self._draw_initial(tables, generator, n, index)
                obs = final_obs.index_put((index,), start)
                time.index_fill_(0, index, 0)  # ``time`` is this step's fresh tensor
        else:
            # Every copy draws, ``where`` selects: no host sync (nonzero would sync on CUDA).
            obs = torch.where(done, self._draw_initial(tables, generator, b, None), final_obs)
            time = time.masked_fill(done, 0)
        return Step(obs, TabularState(obs, time), reward, terminated, truncated, final_obs)

    def _draw_outcome(
        self, tables: FlatTables, row: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``[B]`` index into the (within-copy) pair tables of each copy's sampled outcome."""
        k = tables.num_outcomes
        if k == 1:  # deterministic MDP: the only slot, always kept, no draw
            return torch.add(row, row)
        return alias_lib.draw(
            tables.alias_threshold, k, row.shape[0], generator, rows=row, offset=tables.offset
        )

    def _check_action(self, action: torch.Tensor, batch: int) -> None:
        if action.is_floating_point() or action.dtype == torch.bool:
            raise TypeError(f"{self.name} actions must be integer indices, got {action.dtype}")
        if tuple(action.shape) != (batch,):
            raise ValueError(
                f"{self.name} action has shape {tuple(action.shape)}; expected ({batch},)"
            )
        if self.check_actions and action.device.type == "cpu":
            # int() before comparing: a comparison of 0-d tensors is an op each (~4x the cost).
            low, high = (int(x) for x in torch.aminmax(action))
            if low < 0 or high >= self.num_actions:
                bad = low if low < 0 else high
                raise ValueError(
                    f"{self.name} action {bad} is out of range [0, {self.num_actions})"
                )

    def __repr__(self) -> str:
        return f"TabularEnv({self.name}, {self.mdp!r}, device={self.device})"
