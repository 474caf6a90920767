"""Dynamical linear bandits (Mussi, Metelli, Restelli, *Dynamical Linear Bandits*, ICML 2023):
DynLin-UCB and the paper's baselines, each batched over independent trials.

Modules: :mod:`.config` (every agent's config), :mod:`.agent` (DynLin-UCB), :mod:`.baselines`
(Lin-UCB variants, Exp3, Batch-Exp3, AR2, fixed policies), :mod:`.confidence` (system constants,
ridge updates, UCB radii, the epoch schedule), :mod:`.run` (trials, regret accounting and the
learners' shared loop). The system and its exact quantities (steady-state arm values, optimum)
are the env's: :mod:`rlsuite.envs.dynamical_bandit`.

Import from the modules; this file only registers the agents (nothing is imported until used).
"""

from rlsuite.agents import register

_CONFIG = "rlsuite.agents.dynlin.config"
_BASELINES = "rlsuite.agents.dynlin.baselines"

register("dynlin_ucb", config=f"{_CONFIG}:DynLinUCBConfig", build="rlsuite.agents.dynlin.agent:DynLinUCB",
         schema="dynlin_ucb_schema")
register("lin_ucb", config=f"{_CONFIG}:LinUCBConfig", build=f"{_BASELINES}:LinUCB", schema="lin_ucb_schema")
# Exp3 and Batch-Exp3 share a config (batched: false / true in conf/agent/*.yaml), as do the three
# constant-action policies (policy: clairvoyant / myopic / expert).
for _name in ("exp3", "batch_exp3"):
    register(_name, config=f"{_CONFIG}:Exp3Config", build=f"{_BASELINES}:Exp3", schema="exp3_schema")
register("ar2", config=f"{_CONFIG}:AR2Config", build=f"{_BASELINES}:AR2", schema="ar2_schema")
for _name in ("clairvoyant", "myopic", "expert"):
    register(_name, config=f"{_CONFIG}:FixedPolicyConfig", build=f"{_BASELINES}:FixedPolicy",
             schema="fixed_policy_schema")
