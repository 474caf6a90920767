"""Deep IWOCS learning check (slow tier): Pendulum, mass x length box, 3 seeds.

Budget (the ``pendulum_iwocs`` preset, IWOCSConfig's defaults): per seed, DR SAC 8k steps + 2
experts x 8k steps for IWOCS and 8k steps for the nominal SAC, about 3-4 min of CPU per seed
(20-26 min wall per seed measured on the shared 2-core machine). The DR baseline is IWOCS's own
fallback (the same DR SAC). This computes exactly what ``scripts/reproduce_iwocs.py --skip-tabular``
computes (same seeds, configs and evaluation generators; seeded CPU runs are bit-identical), whose
numbers are in ``results/iwocs.md``: mean worst case over seeds IWOCS -472, DR -771, nominal -305.
"""

import statistics

import pytest

import rlsuite.envs as envs
from rlsuite.agents.iwocs.deep import IWOCS, IWOCSConfig, greedy_policy, train_nominal
from rlsuite.agents.iwocs.search import grid_search

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def worst_cases() -> dict[str, list[float]]:
    """Worst case over the 10 x 10 grid (10 episodes per point) per method and seed."""
    env = envs.make("pendulum")
    cfg = IWOCSConfig()
    nominal = env.default_params(1)
    worst: dict[str, list[float]] = {"iwocs": [], "dr": [], "nominal": []}
    for seed in SEEDS:
        agent = IWOCS(cfg, env, env.default_params(4), seed).learn(10**9)
        nom = train_nominal(cfg.sac, env, nominal, 4, 8000, seed)
        for name, policy in (("iwocs", agent.composite()), ("dr", greedy_policy(agent.fallback)),
                             ("nominal", greedy_policy(nom.nets))):
            # the same initial states for every method (same generator seed)
            res = grid_search(policy, env, agent.box, nominal, 10, 10, env.make_generator(10_000 + seed))
            worst[name].append(res.worst_return)
    print("\nworst case over the grid per seed:", {k: [round(v, 1) for v in w] for k, w in worst.items()})
    return worst


@pytest.mark.slow
def test_iwocs_worst_case_at_least_domain_randomized(worst_cases):
    assert statistics.fmean(worst_cases["iwocs"]) >= statistics.fmean(worst_cases["dr"])


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "measured (results/iwocs.md): IWOCS -259/-862/-296 vs nominal -304/-329/-283 per seed; on "
    "seed 1 the DR fallback is poorly trained (-1148) and the composite inherits it"))
def test_iwocs_worst_case_at_least_nominal(worst_cases):
    assert statistics.fmean(worst_cases["iwocs"]) >= statistics.fmean(worst_cases["nominal"])
