"""What the runner requires of an agent: :class:`Agent`, and the two optional capabilities
:class:`HasFinalMetrics` and :class:`HasGreedyPolicy`.

There is no base class: an agent conforms by shape (``typing.Protocol``), so a paper package
implements these members however it likes. :func:`check` is what the runner calls right after
building an agent; it names every missing member and every member of the wrong shape, so a
plug-in that does not conform fails before training with one clear message.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from rlsuite.training import TrainingHooks


@runtime_checkable
class Agent(Protocol):
    """The members every registered agent offers (the runner and the conformance test use
    nothing else)."""

    @property
    def global_step(self) -> int:
        """Env steps taken so far, summed over env copies (the x axis of every metric; a
        resumed run continues from it)."""
        ...

    @property
    def iteration(self) -> int:
        """Iterations of :meth:`learn` completed so far (the runner checkpoints every
        ``checkpoint_every`` of them)."""
        ...

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> Any:
        """Train until ``total_steps`` env steps in all, continuing from the counters (a loaded
        agent resumes), calling ``hooks.on_iteration(agent, global_step, metrics)`` after every
        iteration (and ``hooks.interrupt_point()`` inside a long stretch it cannot checkpoint)."""
        ...

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for a batch of observations, with the action space's batch shape and dtype
        (greedy when ``deterministic``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizers, buffers, generators,
        counters (plain data and tensors, loadable by ``torch.load(weights_only=True)``)."""
        ...

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`, into an agent built from the same config."""
        ...


@runtime_checkable
class HasFinalMetrics(Protocol):
    """An agent whose score is not the greedy policy's mean return (a bandit's regret, an exact
    solver's objective)."""

    def final_metrics(self, env: Any, params: Any, generator: torch.Generator) -> dict[str, float]:
        """The run's final metrics, its score first (what sweepers optimize)."""
        ...


@runtime_checkable
class HasGreedyPolicy(Protocol):
    """An agent with its own greedy policy object (PPO's fused fast path): the runner evaluates
    ``greedy_policy()`` instead of ``lambda obs: agent.act(obs, deterministic=True)``."""

    def greedy_policy(self) -> Any:
        """A policy ``obs -> action`` (optionally fused) for greedy evaluation."""
        ...


# How the runner and the conformance test call each method: (positional args, keyword args).
_CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "learn": ((1, None), {}),
    "act": ((None,), {"deterministic": True}),
    "state_dict": ((), {}),
    "load_state_dict": (({},), {}),
}
_OPTIONAL_CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "final_metrics": ((None, None, None), {}),
    "greedy_policy": ((), {}),
}
_COUNTERS = ("global_step", "iteration")


def problems(agent: Any) -> list[str]:
    """What keeps ``agent`` from satisfying :class:`Agent` (and, where present, the optional
    members' shapes): an empty list when it conforms."""
    found: list[str] = []
    for counter in _COUNTERS:
        value = getattr(agent, counter, None)
        if isinstance(value, bool) or not isinstance(value, int):
            found.append(f"{counter} must be an int counter, got {value!r}")
    for method, call in _CALLS.items():
        found.extend(_method_problems(agent, method, call, required=True))
    for method, call in _OPTIONAL_CALLS.items():
        found.extend(_method_problems(agent, method, call, required=False))
    return found


def _method_problems(agent: Any, method: str, call: tuple[tuple[Any, ...], dict[str, Any]],
                     required: bool) -> list[str]:
    member = getattr(agent, method, None)
    if member is None:
        return [f"missing method {method}()"] if required else []
    if not callable(member):
        return [f"{method} must be a method, got {type(member).__name__}"]
    try:
        signature = inspect.signature(member)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return []
    args, kwargs = call
    try:  # bound the way the runner calls it (nothing is run)
        signature.bind(*args, **kwargs)
    except TypeError as err:
        shown = ", ".join([*("_" for _ in args), *(f"{k}=_" for k in kwargs)])
        return [f"{method}({', '.join(signature.parameters)}) cannot be called as "
                f"{method}({shown}): {err}"]
    return []


def check(agent: Any, name: str) -> None:
    """Raise TypeError naming every way agent ``name`` falls short of :class:`Agent`."""
    found = problems(agent)
    if found:
        raise TypeError(f"agent {name!r} ({type(agent).__name__}) does not satisfy "
                        f"rlsuite.agents.Agent: " + "; ".join(found))
