"""ReplayBuffer and OfflineDataset against plain reference loops (deque, per-step counters)."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import pytest
import torch

import rlsuite.envs as envs
from rlsuite import checkpoint
from rlsuite.engine.rollout import collect, start
from rlsuite.learners.buffers import (
    CORE_FIELDS,
    OfflineDataset,
    ReplayBuffer,
    Transitions,
    concat,
)


def _numbered(first: int, n: int, extras: bool = True) -> Transitions:
    """Transitions whose every field encodes the row's global index ``first + i``."""
    k = torch.arange(first, first + n)
    return Transitions(
        obs=k.float().unsqueeze(1).repeat(1, 3), action=(k % 5).float().unsqueeze(1),
        reward=k.float(), next_obs=(k + 1).float().unsqueeze(1).repeat(1, 3),
        terminated=k % 3 == 0, truncated=k % 4 == 0,
        extras={"tag": k.double()} if extras else {},
    )


def _same(a: Transitions, b: Transitions) -> bool:
    """Same field names, dtypes and values."""
    pairs = zip(a.items(), b.items(), strict=True)
    return all(n == m and x.dtype == y.dtype and torch.equal(x, y) for (n, x), (m, y) in pairs)


def _buffer(capacity: int) -> ReplayBuffer:
    return ReplayBuffer(capacity, (3,), (1,), extras={"tag": ((), torch.float64)})


def test_wraparound_keeps_the_last_capacity_transitions_in_order() -> None:
    buf = _buffer(7)
    reference: deque[int] = deque(maxlen=7)
    total = 0
    for n in (3, 5, 2, 7, 11, 1, 20):  # chunks smaller, equal and larger than the capacity
        buf.add(_numbered(total, n))
        reference.extend(range(total, total + n))
        total += n
        kept = buf.ordered()
        expected = torch.tensor(list(reference))
        assert len(buf) == len(reference)
        assert torch.equal(kept.reward, expected.float())
        assert torch.equal(kept.extras["tag"], expected.double())
        assert torch.equal(kept.obs, expected.float().unsqueeze(1).repeat(1, 3))
        assert torch.equal(kept.next_obs[:, 0], expected.float() + 1)
        assert torch.equal(kept.terminated, expected % 3 == 0)
        assert torch.equal(kept.truncated, expected % 4 == 0)
        assert buf.pos == total % 7


def test_add_rollout_is_time_major_with_pre_reset_next_obs() -> None:
    env = envs.make("cartpole")
    params = env.default_params(3)
    g = torch.Generator().manual_seed(0)
    policy = lambda obs: (torch.randint(0, 2, (obs.shape[0],), generator=g),  # noqa: E731
                          {"logp": torch.rand(obs.shape[0], generator=g)})
    rollout, _ = collect(env, start(env, params, env.make_generator(1)), params, policy, 40,
                         env.make_generator(2))
    assert bool(rollout.terminated.any())  # CartPole ends episodes: next_obs != obs[t + 1] there
    buf = ReplayBuffer.for_env(env, 1000, extras={"logp": ((), torch.float32)})
    buf.add_rollout(rollout)
    kept = buf.ordered()
    for t in range(40):
        for b in range(3):
            row = t * 3 + b
            assert torch.equal(kept.obs[row], rollout.obs[t, b])
            assert torch.equal(kept.next_obs[row], rollout.next_obs[t, b])
            assert kept.action[row] == rollout.action[t, b]
            assert kept.reward[row] == rollout.reward[t, b]
            assert kept.terminated[row] == rollout.terminated[t, b]
            assert kept.truncated[row] == rollout.truncated[t, b]
            assert kept.extras["logp"][row] == rollout.extras["logp"][t, b]
    assert kept.action.dtype == torch.int64 and kept.obs.dtype == torch.float32


def test_sampling_is_uniform_over_stored_rows_and_seeded() -> None:
    buf = _buffer(10)
    buf.add(_numbered(0, 25))  # rows 15..24 remain
    draws = 200_000
    batch = buf.sample(draws, torch.Generator().manual_seed(3))
    counts = torch.bincount(batch.reward.long(), minlength=25)
    assert counts[:15].sum() == 0
    freq = counts[15:].double() / draws
    # Each frequency is Binomial(n, 0.1)/n: std = sqrt(0.09/n) = 6.7e-4; allow 5 sigma.
    assert (freq - 0.1).abs().max() < 5 * (0.09 / draws) ** 0.5
    chi2 = ((counts[15:].double() - draws / 10) ** 2 / (draws / 10)).sum()
    assert chi2 < 27.88  # 99.9th percentile of chi^2 with 9 degrees of freedom
    # Every field of a sampled row belongs to the same transition.
    assert torch.equal(batch.obs[:, 0], batch.reward)
    assert torch.equal(batch.extras["tag"], batch.reward.double())
    a = buf.sample(64, torch.Generator().manual_seed(7))
    b = buf.sample(64, torch.Generator().manual_seed(7))
    c = buf.sample(64, torch.Generator().manual_seed(8))
    assert _same(a, b)
    assert not torch.equal(a.reward, c.reward)


def test_state_dict_round_trip_is_exact_and_weights_only() -> None:
    buf = _buffer(9)
    buf.add(_numbered(0, 13))
    stream = io.BytesIO()
    torch.save(buf.state_dict(), stream)
    stream.seek(0)
    restored = _buffer(9)
    restored.load_state_dict(torch.load(stream, weights_only=True))
    assert (restored.pos, restored.size) == (buf.pos, buf.size)
    assert _same(buf.ordered(), restored.ordered())
    # Both continue identically: same writes, same draws.
    for target in (buf, restored):
        target.add(_numbered(100, 4))
    s1 = buf.sample(32, torch.Generator().manual_seed(1))
    s2 = restored.sample(32, torch.Generator().manual_seed(1))
    assert _same(s1, s2)
    # The saved state is a copy: later writes do not change it.
    state = buf.state_dict()
    before = state["data"]["reward"].clone()
    buf.add(_numbered(200, 9))
    assert torch.equal(state["data"]["reward"], before)
    with pytest.raises(ValueError, match="capacity"):
        _buffer(8).load_state_dict(state)


def test_dtypes_are_kept_and_inputs_cast() -> None:
    buf = ReplayBuffer(4, (2,), (), action_dtype=torch.int64,
                       extras={"mask": ((3,), torch.bool), "w": ((), torch.float64)})
    data = Transitions(
        obs=torch.ones(2, 2, dtype=torch.float64), action=torch.tensor([1, 2], dtype=torch.int32),
        reward=torch.ones(2, dtype=torch.float64), next_obs=torch.zeros(2, 2),
        terminated=torch.tensor([True, False]), truncated=torch.tensor([False, True]),
        extras={"mask": torch.ones(2, 3, dtype=torch.bool),
                "w": torch.full((2,), 0.1, dtype=torch.float64)},
    )
    buf.add(data)
    out = buf.sample(5, torch.Generator().manual_seed(0))
    assert out.obs.dtype == torch.float32 and out.reward.dtype == torch.float32
    assert out.action.dtype == torch.int64 and out.terminated.dtype == torch.bool
    assert out.extras["mask"].dtype == torch.bool and out.extras["w"].dtype == torch.float64
    assert bool((out.extras["w"] == 0.1).all())  # float64 extras are not rounded through float32
    assert all(t.device == buf.device for _, t in out.items())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_buffer_stays_on_device() -> None:
    buf = ReplayBuffer(16, (3,), (1,), extras={"tag": ((), torch.float64)}, device="cuda")
    buf.add(_numbered(0, 20))  # CPU input is copied to the device
    batch = buf.sample(8, torch.Generator(device="cuda").manual_seed(0))
    assert all(t.device.type == "cuda" for _, t in batch.items())
    restored = ReplayBuffer(16, (3,), (1,), extras={"tag": ((), torch.float64)}, device="cuda")
    restored.load_state_dict(buf.state_dict())
    assert torch.equal(restored.ordered().reward, buf.ordered().reward)


@pytest.mark.parametrize(
    ("field", "bad", "match"),
    [
        ("reward", torch.zeros(4, 1), "'reward' has shape \\(4, 1\\), expected \\(4,\\)"),
        ("next_obs", torch.zeros(4, 2), "'next_obs' has shape \\(4, 2\\), expected \\(4, 3\\)"),
        ("action", torch.zeros(3, 1), "'action' has shape \\(3, 1\\)"),
        ("terminated", torch.zeros(4), "'terminated' has dtype torch.float32"),
    ],
)
def test_bad_input_names_the_field(field: str, bad: torch.Tensor, match: str) -> None:
    data = _numbered(0, 4)
    kwargs = {n: t for n, t in data.items() if n != "tag"}
    kwargs[field] = bad
    with pytest.raises(ValueError, match=match):
        _buffer(8).add(Transitions(**kwargs, extras={"tag": data.extras["tag"]}))


def test_missing_and_unknown_extras_are_named() -> None:
    with pytest.raises(ValueError, match="'tag' is missing"):
        _buffer(8).add(_numbered(0, 4, extras=False))
    data = _numbered(0, 4)
    data.extras["oops"] = torch.zeros(4)
    with pytest.raises(ValueError, match="unknown extra fields \\['oops'\\]"):
        _buffer(8).add(data)
    with pytest.raises(ValueError, match="clash"):
        ReplayBuffer(4, (1,), (1,), extras={"reward": ((), torch.float32)})


# -- OfflineDataset -------------------------------------------------------------------------

def _cartpole_dataset(steps: tuple[int, ...] = (30, 25)) -> tuple[OfflineDataset, list]:
    env = envs.make("cartpole")
    params = env.default_params(4)
    g = torch.Generator().manual_seed(5)
    policy = lambda obs: torch.randint(0, 2, (obs.shape[0],), generator=g)  # noqa: E731
    gen = env.make_generator(6)
    state = start(env, params, gen)
    _, state = collect(env, state, params, policy, 7, gen)  # start mid-episode
    lengths0 = state.episode.lengths.clone()
    rollouts = []
    for t in steps:
        rollout, state = collect(env, state, params, policy, t, gen)
        rollouts.append(rollout)
    data = OfflineDataset.from_rollouts(rollouts, lengths0, metadata={"env": "cartpole",
                                                                      "seed": 5, "p": [1.0, 2.0]})
    return data, [rollouts, lengths0]


def test_episode_ids_and_timesteps_match_a_step_loop() -> None:
    data, (rollouts, lengths0) = _cartpole_dataset()
    done = torch.cat([r.done for r in rollouts])
    obs = torch.cat([r.obs for r in rollouts])
    t_len, b = done.shape
    next_id, row = 0, 0
    for copy in range(b):  # rows are ordered copy by copy
        timestep = int(lengths0[copy])
        for t in range(t_len):
            assert int(data.data.extras["episode_id"][row]) == next_id
            assert int(data.data.extras["timestep"][row]) == timestep
            assert torch.equal(data.data.obs[row], obs[t, copy])
            timestep += 1
            if done[t, copy]:
                next_id, timestep = next_id + 1, 0
            row += 1
        next_id += 1
    assert len(data) == t_len * b and bool(done.any())


def test_dataset_save_load_round_trip(tmp_path: Path) -> None:
    data, _ = _cartpole_dataset()
    path = data.save(tmp_path / "d" / "data.pt")
    assert [p.name for p in path.parent.iterdir()] == ["data.pt"]  # no temp file left
    torch.load(path, weights_only=True)  # plain tensors and data only
    loaded = OfflineDataset.load(path)
    assert loaded.metadata == {"env": "cartpole", "seed": 5, "p": [1.0, 2.0]}
    for (n1, x), (n2, y) in zip(data.data.items(), loaded.data.items(), strict=True):
        assert n1 == n2 and x.dtype == y.dtype and torch.equal(x, y), n1
    a = data.sample(50, torch.Generator().manual_seed(2))
    b = loaded.sample(50, torch.Generator().manual_seed(2))
    assert _same(a, b)
    assert torch.equal(a.extras["episode_id"], data.data.extras["episode_id"][
        torch.randint(len(data), (50,), generator=torch.Generator().manual_seed(2))])


def test_dataset_load_errors(tmp_path: Path) -> None:
    data, _ = _cartpole_dataset((10,))
    with pytest.raises(FileNotFoundError, match="no offline dataset"):
        OfflineDataset.load(tmp_path / "missing.pt")
    good = data.save(tmp_path / "good.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable offline dataset"):
        OfflineDataset.load(corrupt)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="not a readable offline dataset"):
        OfflineDataset.load(garbage)
    ckpt = checkpoint.save(tmp_path / "ckpt.pt", {"w": torch.ones(2)}, {})
    with pytest.raises(ValueError, match="not an rlsuite offline dataset"):
        OfflineDataset.load(ckpt)
    payload = torch.load(good, weights_only=True)
    payload["fields"]["reward"] = payload["fields"]["reward"][:-1]
    torch.save(payload, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="short.pt: .*'reward' has shape"):
        OfflineDataset.load(tmp_path / "short.pt")
    del payload["fields"]["truncated"]
    torch.save(payload, tmp_path / "nofield.pt")
    with pytest.raises(ValueError, match="'truncated' is missing"):
        OfflineDataset.load(tmp_path / "nofield.pt")
    payload = torch.load(good, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="version 99"):
        OfflineDataset.load(tmp_path / "future.pt")
    bad = dict(data.data.items())
    bad["terminated"] = bad["terminated"].float()
    with pytest.raises(ValueError, match="'terminated' has dtype torch.float32"):
        OfflineDataset(Transitions(**{n: bad[n] for n in CORE_FIELDS}))
    with pytest.raises(TypeError, match="metadata.*'metadata.env'"):
        OfflineDataset(data.data, {"env": object()})


def test_concat_and_feeding_a_replay_buffer() -> None:
    data, _ = _cartpole_dataset((10,))
    both = concat([data.data, data.data])
    assert len(both) == 2 * len(data)
    assert torch.equal(both.extras["timestep"][len(data):], data.data.extras["timestep"])
    ids = {"episode_id": ((), torch.int64), "timestep": ((), torch.int64)}
    buf = ReplayBuffer.for_env(envs.make("cartpole"), 64, extras=ids)
    buf.add(both)
    assert torch.equal(buf.ordered().obs, both.obs[-64:])
