"""How many whole iterations an env-step budget buys, said aloud when it is rounded.

PPO, SAC and QR-DQN collect ``num_envs x num_steps`` env steps per iteration, so a budget of
``total_steps`` becomes ``total_steps // (num_envs x num_steps)`` iterations (never fewer than
one). A budget that is not a multiple of the iteration's size therefore trains fewer steps than
asked (or, below one iteration, more); :func:`whole_iterations` warns with the number of steps
that will actually run, so a curve's last step is never a surprise.
"""

from __future__ import annotations

import warnings


def whole_iterations(total_steps: int, num_envs: int, num_steps: int, learner: str) -> int:
    """The number of iterations of ``num_envs x num_steps`` env steps that ``total_steps`` buys.

    At least one. Warns (``UserWarning``, naming ``learner``, the budget and the steps that run)
    when ``total_steps`` is not a whole multiple of one iteration's steps.
    """
    steps_per_iter = num_envs * num_steps
    iterations = max(1, total_steps // steps_per_iter)
    if total_steps != iterations * steps_per_iter:
        warnings.warn(
            f"{learner}: total_steps={total_steps} is not a multiple of one iteration's "
            f"num_envs x num_steps = {num_envs} x {num_steps} = {steps_per_iter} env steps; "
            f"training runs {iterations} iteration(s) = {iterations * steps_per_iter} env steps. "
            f"Set total_steps to a multiple of {steps_per_iter} to silence this.",
            stacklevel=3)
    return iterations
