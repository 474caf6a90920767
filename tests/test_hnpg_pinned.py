"""HNPG's numbers pinned bit for bit: parameters, logged metrics and the policy generator's state
after a few iterations, as SHA-256 digests.

Long HNPG runs (results/hnpg.md: H = 30 and 50) are resumable and partly recorded, so a speed-up
must not move a single bit: runs recorded before and resumed after it are one experiment. These
digests were recorded on the commit before the hnpg_speed changes (8bfead8, "distributional_dp.md:
name the commit") by running :func:`_fingerprint` with the same arguments from a checkout of that
commit (``git archive 8bfead8 | tar -x -C /tmp/base``, then ``PYTHONPATH=/tmp/base``); the
speed-up's tree reproduces every one. A change that fails here changes HNPG's numbers: it needs a
config switch that defaults to the old behaviour, or a new recording said aloud in the commit.

The digests depend on the floating-point kernels (CPU type, torch build): they were taken on the
development machine (x86-64 Intel Xeon, torch 2.13.0+cpu, one thread). On another CPU or torch
build they may differ without any code change: record them again there from the parent commit
with the same :func:`_fingerprint` call before judging a change by them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import torch

from rlsuite.agents.hnpg import HNPG, HNPGConfig
from rlsuite.envs.combination_lock import CombinationLock

RECORDED_ON = ("2.13.0+cpu", "AVX512")
"""The torch build and CPU capability the digests were recorded with; elsewhere the test skips."""

PINNED = {
    # name: (config overrides, params digest, metrics digest, generator digest)
    "official": (
        {},
        "88c8ec0b61baa068150248a3ab253b28703064b9f8b8f5151a0c4cc2ea5fed49",
        "cf791916540dad3ee8eb3d2fb18ca5a04789c8c3d223e709aa5f12feb0f3b445",
        "d09acf99466e07c1bfd82ad9e5ef23c76217b825d32590cc710038d457736009",
    ),
    "parallel_sweep": (
        {"critic_sweep": "parallel"},
        "a70f5c9ff403f17a0751985f55efb9d9cbc05e7f732eddbc07f3d80e1e5fe7ec",
        "44e52f00e7723906dd78c79df23e3df64c68dc7b0a00bddd391a208e16b2ea8b",
        "1df785721b40e95b5000810f25173b18f5a4542d4c72851ca3366b0bf4345c18",
    ),
    "float64_critic": (  # comblock_hnpg_full's critic dtype
        {"critic_dtype": "float64", "batch_steps": 200},
        "91e23ca20ad27dfed7248dff18d0fff93ed97ad12c1df59117d6d12045f5a107",
        "bd6f59b027e452979429908dffe59cc6b14a39ef0cbbbc79624f7ecb82bb4ce7",
        "7cedac2a19a2c29a4dfecb3c71682ae7b4a593c445077414392624da17641324",
    ),
    "dataset_actions": (
        {"offline_actor_actions": "dataset", "batch_steps": 200},
        "2f66032fb446f87323f01cda7831a9f4fa9d07347b8e84877b222e27b6322619",
        "0a8256aedac428c15bc418f0460114aa252b0ec1dc466313a33634f786814750",
        "82f1d806e3d408ad05b75f43539d76dac8e3753ed5c54abaf16460a2acfad387",
    ),
    "discount_l2_weight": (
        {"gamma": 0.9, "critic_l2": 0.01, "critic_on_weight": 0.5, "batch_steps": 200},
        "2e2832b7cb0a6199f99bffd6d416deca25c49d27271ee9a7f4f5b4e1df1fa04a",
        "5605f64fcd7556f6b6d75ed5eb95257ccbaddf6a5cbe6239142436429ab0aa3f",
        "7cedac2a19a2c29a4dfecb3c71682ae7b4a593c445077414392624da17641324",
    ),
    "eager_critic": (
        {"critic_scripted": False, "batch_steps": 200},
        "ff1f043894b9e4e14997c48cdc3272d618170a1ba297e4327473429dc2bfb2b2",
        "49b4ba092fb164d48fe260e2a285a815660c49116045016174c24fba4225ba2c",
        "7cedac2a19a2c29a4dfecb3c71682ae7b4a593c445077414392624da17641324",
    ),
    "autograd_products": (
        {"npg_products": "autograd", "batch_steps": 200},
        "f57cdaa83585abc2e7eac33499dc3d457492d3b380c5d9c6703a7190167d7310",
        "569d23fc2a16131c9d3eca9e3b10eedf99c40a1dbf0527cccfbef58e01798f26",
        "7cedac2a19a2c29a4dfecb3c71682ae7b4a593c445077414392624da17641324",
    ),
    "trpo_baseline": (
        {"hybrid": False, "batch_steps": 200},
        "57607aca76ad2f07b80ad1a35a755b7d697ede27de692a627654aac81340bc7d",
        "cfd2213613b5906e452ab556a89c6fcaa0d0afdc2e8b9998d0f3097978317c0c",
        "d98853bbb2441c667d5a9d1a8117514f23313d53c35b1f4a36feb634d0a3f96c",
    ),
}


def _fingerprint(overrides: dict[str, Any], horizon: int = 4, iterations: int = 3) -> tuple[str, str, str]:
    """Digests of (policy + critic parameters, every iteration's metrics but timings, the policy
    generator's state) after ``iterations`` iterations of seed 0 on a 500-episode offline set."""
    torch.set_num_threads(1)
    env = CombinationLock(horizon=horizon, seed=0)
    config = HNPGConfig(**{"stop_on_success": False, "offline_episodes": 500, **overrides})
    agent = HNPG(config, env, env.default_params(1), 0)
    metrics: list[dict[str, float]] = []

    class Hooks:
        def on_iteration(self, ag: HNPG, step: int, m: dict[str, float]) -> None:
            metrics.append({k: v for k, v in m.items() if not k.startswith("time/")})

    agent.learn(agent.num_envs * horizon * iterations, Hooks())
    params = hashlib.sha256()
    state = agent.state_dict()
    for part in ("policy", "q"):
        for key, value in state[part].items():
            params.update(key.encode())
            params.update(value.numpy().tobytes())
    # json writes each float's shortest round-trip repr: equal strings iff equal floats
    logged = hashlib.sha256(json.dumps(metrics).encode()).hexdigest()
    gen = hashlib.sha256(agent.generator.get_state().numpy().tobytes()).hexdigest()
    return params.hexdigest(), logged, gen


@pytest.mark.parametrize("name", list(PINNED))
def test_hnpg_numbers_are_pinned(name: str) -> None:
    here = (torch.__version__, torch.backends.cpu.get_cpu_capability())
    if here != RECORDED_ON:  # other kernels may round otherwise: not a regression of this code
        pytest.skip(f"digests recorded on {RECORDED_ON}, this is {here}")
    overrides, *want = PINNED[name]
    got = _fingerprint(overrides)
    assert list(got) == want, f"{name}: HNPG's numbers moved (params, metrics, generator digests)"
