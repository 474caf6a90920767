"""VGDF's numbers pinned bit for bit: a SHA-256 over every parameter, optimizer state, generator
state and logged metric after a short tiny-Pendulum run, so a speed-up of the training step cannot
move a single bit (recorded Pendulum runs stay valid, MuJoCo runs resume across commits).

How the digests were obtained: ``python tests/test_vgdf_bitexact.py`` (it prints ``DIGESTS`` and
``SAC_DIGEST``) with the package of commit 8bfead8 (before the speed-ups of the training step) on
the path, torch 2.13.0+cpu, CPU capability AVX512, one torch thread. Plain SAC is pinned too: the
speed-ups touch :mod:`rlsuite.learners.sac`, which SAC, RLPD and IWOCS share (SAC is pinned on its
eager step, ``SACConfig(fast_path=False)``: the compiled step of :mod:`rlsuite.learners.sac_fast`
rounds differently and is tested against the eager one in ``tests/test_sac_fast.py``).
Float kernels may round differently on another torch version or instruction set, so the digest
tests skip there instead of failing (they are regression tests for this code, not for torch); the
tests at the end check each bit-identical rewrite against the code it replaced on any machine."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch

from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.envs.pendulum import Pendulum

# fast_path=False: the eager update (the concatenated batches of 64 would take the compiled one,
# which rounds differently and is checked against the eager one in tests/test_vgdf_fast.py).
TINY = dict(sac={"hidden_sizes": [16, 16], "batch_size": 32, "utd": 0.5, "fast_path": False},
            ensemble_size=3,
            num_elites=2, model_hidden=[16], model_weight_decay=[1e-5, 1e-5],
            model_train_freq=100, model_max_epochs=3, model_batch_size=32, warmup_steps=200,
            darc_warmup=200, random_steps=50, eval_every=300, eval_episodes=2)
STEPS = 600
RECORDED_ON = ("2.13.0+cpu", "AVX512")
DIGESTS = {
    "darc": "93c62ebced71122d424c0c76eb2849c0e0cac14e30309177feb046bca4905699",
    "mix": "5531f7b65bd72030e517c2f5544205cab84a465cc46080b698ee5150f570aff6",
    "vgdf": "727bf427c7435cbff8cfa953be46944e5d2a9640491221cc778116c0dc033397",
    "vgdf_official": "25cb42bb2e548f0a059c01a5e7543ac6e1dbed9e52513c19aba081e624028501",
}
SAC_DIGEST = "e8680b078282dd884304a55f97c56e36d23c867d5f33e80f360f81edb4e2066e"


class _Metrics:
    """Every iteration's metrics except the wall-clock ``time/fps``."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, list[tuple[str, float]]]] = []

    def on_iteration(self, agent: VGDF, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, sorted((k, float(v)) for k, v in metrics.items() if k != "time/fps")))


def _feed(h: Any, obj: object) -> None:
    """Hash ``obj``'s values (tensors by dtype, shape and bytes: not by storage layout)."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous().cpu()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    else:
        h.update(repr(obj).encode())


def digest(variant: str, **overrides) -> str:
    """SHA-256 of a tiny run's final state (networks, optimizers, model, classifiers, generators,
    counters) and of every metric it logged (``float.hex``: exact)."""
    env = Pendulum(max_episode_steps=50)
    agent, rec = VGDF(VGDFConfig(**(TINY | {"variant": variant} | overrides)), env,
                      env.default_params(10), 0), _Metrics()
    agent.learn(STEPS, rec)
    h = hashlib.sha256()
    state = agent.state_dict()
    state.pop("src_buffer"), state.pop("tar_buffer")  # the transitions show in the metrics
    _feed(h, state)
    for step, row in rec.rows:
        h.update(repr((step, [(k, v.hex()) for k, v in row])).encode())
    h.update(repr(agent.evaluate_domains(2, torch.Generator().manual_seed(1))).encode())
    return h.hexdigest()


CASES = {"vgdf": {}, "vgdf_official": dict(fictitious_next_state="mean_plus_var",
                                           fictitious_reward="model", fictitious_action="mean",
                                           fve_members="elites", src_loss_normalisation="batch"),
         "darc": {}, "mix": {}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_run_bit_identical(case: str) -> None:
    here = (torch.__version__, torch.backends.cpu.get_cpu_capability())
    if here != RECORDED_ON:
        pytest.skip(f"digests recorded on {RECORDED_ON}, this is {here}")
    torch.set_num_threads(1)
    variant = "vgdf" if case.startswith("vgdf") else case
    assert digest(variant, **CASES[case]) == DIGESTS[case]


def sac_digest() -> str:
    """The same for plain SAC (``rlsuite.learners.sac``, whose networks VGDF shares with SAC, RLPD
    and IWOCS): a tiny run's final state and metrics, on the eager gradient step
    (``fast_path=False``): this pins the eager maths; the compiled step rounds differently and is
    checked against the eager one in ``tests/test_sac_fast.py``."""
    from rlsuite.learners.sac import SAC, SACConfig

    env = Pendulum(max_episode_steps=50)
    agent, rec = SAC(SACConfig(hidden_sizes=[16, 16], batch_size=32, learning_starts=50,
                               fast_path=False),
                     env, env.default_params(4), 0), _Metrics()
    agent.learn(300, rec)
    h = hashlib.sha256()
    state = agent.state_dict()
    state.pop("buffer", None)
    _feed(h, state)
    for step, row in rec.rows:
        h.update(repr((step, [(k, v.hex()) for k, v in row])).encode())
    return h.hexdigest()


def test_sac_bit_identical() -> None:
    here = (torch.__version__, torch.backends.cpu.get_cpu_capability())
    if here != RECORDED_ON:
        pytest.skip(f"digests recorded on {RECORDED_ON}, this is {here}")
    torch.set_num_threads(1)
    assert sac_digest() == SAC_DIGEST


if __name__ == "__main__":  # prints the digests (how DIGESTS and SAC_DIGEST were recorded)
    torch.set_num_threads(1)
    for name, kw in sorted(CASES.items()):
        print(f'    "{name}": "{digest("vgdf" if name.startswith("vgdf") else name, **kw)}",')
    print(f'SAC_DIGEST = "{sac_digest()}"')


# -- the same bits piece by piece, on any machine (the digests above skip off their platform) ----
def test_mlp_forward_and_gradients_equal_sequential() -> None:
    from torch import nn

    from rlsuite.learners.sac import MLP, mlp

    torch.manual_seed(0)
    fast = mlp(5, 3, [32, 32])
    assert isinstance(fast, MLP)
    ref = nn.Sequential(*[type(m)(m.in_features, m.out_features) if isinstance(m, nn.Linear)
                          else nn.ReLU() for m in fast])
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(64, 5)
    out_fast, out_ref = fast(x), ref(x)
    assert torch.equal(out_fast, out_ref)
    out_fast.square().sum().backward()
    out_ref.square().sum().backward()
    for a, b in zip(fast.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_actor_action_is_sample_without_log_prob() -> None:
    from rlsuite.learners.sac import SquashedGaussianActor

    torch.manual_seed(0)
    actor = SquashedGaussianActor(3, -2 * torch.ones(2), torch.ones(2), [16])
    obs = torch.randn(40, 3)
    for det in (False, True):
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        assert torch.equal(actor.action(obs, g1, det), actor.sample(obs, g2, det)[0])
        assert torch.equal(g1.get_state(), g2.get_state())  # the same draws


def test_clip_grad_norm_is_torchs() -> None:
    from torch import nn

    from rlsuite.agents.vgdf.update import clip_grad_norm_

    torch.manual_seed(0)
    for scale in (1e-3, 1.0, 1e3):  # below and above the threshold
        a = [nn.Parameter(torch.randn(s)) for s in ((7, 3), (3,), (5, 7))]
        b = [nn.Parameter(p.detach().clone()) for p in a]
        for p, q in zip(a, b, strict=True):
            p.grad = scale * torch.randn(p.shape)
            q.grad = p.grad.clone()
        clip_grad_norm_(a, 10.0)
        nn.utils.clip_grad_norm_(b, 10.0)
        for p, q in zip(a, b, strict=True):
            assert torch.equal(p.grad, q.grad)


def test_fvp_scores_are_normal_log_prob() -> None:
    from rlsuite.agents.vgdf.filter import STD_EPS, fvp_scores

    torch.manual_seed(0)
    fict, y = torch.randn(5, 300) * 3, torch.randn(300) * 3
    ref = torch.distributions.Normal(fict.mean(0), fict.std(0) + STD_EPS).log_prob(y).exp()
    assert torch.equal(fvp_scores(fict, y), ref)
