"""Finite MDPs as tensors: exact-solver views and a batched engine env.

* :class:`TabularMDP` (``mdp.py``): outcome lists ``next_state / reward / prob / terminal
  [S, A, K]``, ``initial [S]``, ``gamma``, ``horizon``; dense views ``P [S, A, S]``, ``R [S, A]``,
  ``P_continue`` (non-terminal outcomes only) and a Bellman :meth:`~TabularMDP.backup`. Built
  from toy-text dicts (``toy_text.py``), dense tensors (:meth:`TabularMDP.from_dense`), gymnasium's
  FrozenLake / CliffWalking / Taxi or random MDPs (``catalog.py``).
* :class:`TabularEnv` (``env.py``): ``B`` copies stepped at once, each with its own tables
  (:class:`TabularParams`, from :meth:`TabularMDP.params` or :func:`params_from_mdps`), next
  outcomes drawn with alias tables (``alias.py``).

Example::

    mdp = frozen_lake(is_slippery=True, gamma=0.95)
    v = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(500):                      # value iteration on the exact tensors
        v = mdp.backup(v).max(-1).values
    env = TabularEnv(mdp)                     # or rlsuite.envs.make("frozenlake")
    params = params_from_mdps([mdp, frozen_lake(success_rate=0.5)], copies=512)  # B = 1024
    gen = env.make_generator(0)
    obs, state = env.reset(params, gen)
    step = env.step(state, mdp.backup(v).argmax(-1)[obs], params, gen)
"""

from rlsuite.envs.tabular import alias
from rlsuite.envs.tabular.catalog import (
    cliff_walking,
    cliffwalking_env,
    from_gymnasium,
    frozen_lake,
    frozenlake8x8_env,
    frozenlake_env,
    random_mdp,
    random_mdp_env,
    taxi,
    taxi_env,
)
from rlsuite.envs.tabular.env import (
    NO_HORIZON,
    TabularEnv,
    TabularParams,
    TabularState,
    params_from_mdps,
)
from rlsuite.envs.tabular.mdp import TabularMDP
from rlsuite.envs.tabular.toy_text import from_toy_text

__all__ = [
    "NO_HORIZON",
    "TabularEnv",
    "TabularMDP",
    "TabularParams",
    "TabularState",
    "alias",
    "cliff_walking",
    "cliffwalking_env",
    "from_gymnasium",
    "from_toy_text",
    "frozen_lake",
    "frozenlake8x8_env",
    "frozenlake_env",
    "params_from_mdps",
    "random_mdp",
    "random_mdp_env",
    "taxi",
    "taxi_env",
]
