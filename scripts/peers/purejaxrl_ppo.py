"""A PureJaxRL-style PPO on gymnax's CartPole-v1: the peer that rlsuite's PPO is timed against.

Structure after PureJaxRL's ``ppo.py`` (luchris429/purejaxrl): the whole training iteration
(rollout in ``lax.scan``, GAE in a reverse ``lax.scan``, epochs x minibatches of Adam steps in
nested ``lax.scan``) is one jitted program. Unlike PureJaxRL, which scans over all iterations, a
Python loop calls that program once per iteration so that a greedy evaluation (also one jitted
program) can run after every iteration, as rlsuite's is evaluated.

Hyperparameters and losses are rlsuite's ``PPOConfig`` defaults (64 envs x 128 steps, 4 epochs x
4 minibatches, lr 1e-3 annealed linearly over the run, gamma 0.99, GAE 0.95, clip 0.2, no entropy
bonus, value weight 0.5, grad-norm clip 0.5, per-minibatch advantage normalisation, separate
64x64 tanh actor and critic with orthogonal init; no value clipping), and so is GAE: it bootstraps
from V of the pre-reset observation (gymnax's ``final_observation``) and cuts the trace at both
termination and truncation, so a time limit is bootstrapped as rlsuite does (PureJaxRL does not).
The two differ only in the framework.

Needs ``jax``, ``optax`` and ``gymnax`` (the ``peers`` extra); imported only by the benchmark's
worker processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclass(frozen=True)
class Config:
    """rlsuite's ``PPOConfig`` defaults, plus the number of envs and the run length."""

    num_envs: int = 64
    num_steps: int = 128
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    total_steps: int = 300_000


# -- network ----------------------------------------------------------------------------------


def init_mlp(key: jax.Array, sizes: list[int], out_gain: float) -> list[tuple[jax.Array, jax.Array]]:
    """Orthogonal init, gain sqrt(2) on hidden layers and ``out_gain`` on the last (as rlsuite)."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        gain = out_gain if i == len(sizes) - 2 else float(np.sqrt(2.0))
        w = jax.nn.initializers.orthogonal(gain)(keys[i], (a, b), jnp.float32)
        layers.append((w, jnp.zeros((b,), jnp.float32)))
    return layers


def mlp(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """tanh MLP forward pass."""
    for w, b in layers[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def init_params(key: jax.Array, obs_dim: int, num_actions: int, hidden: tuple[int, ...]) -> dict:
    """Separate actor (out gain 0.01) and critic (out gain 1) MLPs."""
    ka, kc = jax.random.split(key)
    return {"actor": init_mlp(ka, [obs_dim, *hidden, num_actions], 0.01),
            "critic": init_mlp(kc, [obs_dim, *hidden, 1], 1.0)}


# -- training ---------------------------------------------------------------------------------


def make(config: Config, seed: int) -> dict[str, Any]:
    """Initial state and the two jittable functions ``update(state)`` and ``evaluate(params, key)``.

    Returns a dict with ``state`` (the carry of one iteration), ``update``, ``evaluate``,
    ``rollout`` (the rollout part of an iteration alone, for the rollout-cost measurement) and
    ``num_iterations``.
    """
    env, env_params = gymnax.make("CartPole-v1")
    num_actions = env.action_space(env_params).n
    obs_dim = env.observation_space(env_params).shape[0]
    batch = config.num_envs * config.num_steps
    num_iterations = max(1, config.total_steps // batch)
    minibatch = batch // config.num_minibatches
    updates_per_iter = config.num_minibatches * config.update_epochs

    def schedule(count: jax.Array) -> jax.Array:
        # rlsuite anneals once per iteration: lr0 * (1 - iteration / num_iterations).
        if not config.anneal_lr:
            return jnp.asarray(config.learning_rate)
        return config.learning_rate * (1.0 - (count // updates_per_iter) / num_iterations)

    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(learning_rate=schedule, eps=1e-5))
    key = jax.random.PRNGKey(seed)
    key, k_net, k_env = jax.random.split(key, 3)
    params = init_params(k_net, obs_dim, num_actions, config.hidden)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_env, config.num_envs), env_params)
    state = {"params": params, "opt": tx.init(params), "env": env_state, "obs": obs, "key": key}
    step_env = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def rollout(state: dict) -> tuple[dict, dict]:
        def one_step(carry, _):
            params, env_state, obs, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            logits = mlp(params["actor"], obs)
            action = jax.random.categorical(k_act, logits)
            log_prob = jax.nn.log_softmax(logits)[jnp.arange(obs.shape[0]), action]
            value = mlp(params["critic"], obs)[:, 0]
            next_obs, env_state, reward, terminated, truncated, info = step_env(
                jax.random.split(k_step, config.num_envs), env_state, action, env_params)
            tr = {"obs": obs, "action": action, "log_prob": log_prob, "value": value,
                  "reward": reward, "terminated": terminated.astype(jnp.float32),
                  "truncated": truncated.astype(jnp.float32),
                  "final_obs": info["final_observation"]}
            return (params, env_state, next_obs, key), tr

        carry = (state["params"], state["env"], state["obs"], state["key"])
        (_, env_state, obs, key), traj = jax.lax.scan(one_step, carry, None, config.num_steps)
        return {**state, "env": env_state, "obs": obs, "key": key}, traj

    def loss_fn(params: dict, mb: dict) -> jax.Array:
        logits = mlp(params["actor"], mb["obs"])
        logp_all = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(logp_all, mb["action"][:, None], axis=1)[:, 0]
        ratio = jnp.exp(log_prob - mb["log_prob"])
        adv = mb["advantage"]
        adv = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)  # torch's std is the unbiased one
        pg = jnp.maximum(-adv * ratio,
                         -adv * jnp.clip(ratio, 1 - config.clip_coef, 1 + config.clip_coef)).mean()
        v_loss = 0.5 * jnp.square(mlp(params["critic"], mb["obs"])[:, 0] - mb["return"]).mean()
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
        return pg + config.vf_coef * v_loss - config.ent_coef * entropy

    def update(state: dict) -> dict:
        state, traj = rollout(state)
        # V of the state each transition reached, before any reset (rlsuite's returns.gae).
        next_value = mlp(state["params"]["critic"], traj["final_obs"].reshape(batch, -1))
        traj["next_value"] = next_value.reshape(config.num_steps, config.num_envs)

        def gae_step(adv, tr):
            delta = tr["reward"] + config.gamma * (1.0 - tr["terminated"]) * tr["next_value"] \
                - tr["value"]
            continues = (1.0 - tr["terminated"]) * (1.0 - tr["truncated"])
            adv = delta + config.gamma * config.gae_lambda * continues * adv
            return adv, adv

        _, advantages = jax.lax.scan(gae_step, jnp.zeros(config.num_envs), traj, reverse=True)
        flat = {"obs": traj["obs"].reshape(batch, -1), "action": traj["action"].reshape(batch),
                "log_prob": traj["log_prob"].reshape(batch),
                "advantage": advantages.reshape(batch),
                "return": (advantages + traj["value"]).reshape(batch)}

        def epoch(carry, _):
            params, opt, key = carry
            key, k_perm = jax.random.split(key)
            order = jax.random.permutation(k_perm, batch)
            mbs = jax.tree_util.tree_map(
                lambda x: x[order].reshape(config.num_minibatches, minibatch, *x.shape[1:]), flat)

            def minibatch_step(carry, mb):
                params, opt = carry
                grads = jax.grad(loss_fn)(params, mb)
                updates, opt = tx.update(grads, opt, params)
                return (optax.apply_updates(params, updates), opt), None

            (params, opt), _ = jax.lax.scan(minibatch_step, (params, opt), mbs)
            return (params, opt, key), None

        (params, opt, key), _ = jax.lax.scan(
            epoch, (state["params"], state["opt"], state["key"]), None, config.update_epochs)
        return {**state, "params": params, "opt": opt, "key": key}

    def evaluate(params: dict, key: jax.Array, num_envs: int = 64) -> jax.Array:
        """Mean return of one greedy episode in each of ``num_envs`` CartPoles."""
        k_reset, k_run = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_reset, num_envs), env_params)

        def one_step(carry, _):
            env_state, obs, alive, total, key = carry
            key, k_step = jax.random.split(key)
            action = jnp.argmax(mlp(params["actor"], obs), axis=-1)
            obs, env_state, reward, terminated, truncated, _ = step_env(
                jax.random.split(k_step, num_envs), env_state, action, env_params)
            total = total + reward * alive
            done = jnp.logical_or(terminated, truncated)
            return (env_state, obs, alive * (1.0 - done), total, key), None

        init = (env_state, obs, jnp.ones(num_envs), jnp.zeros(num_envs), k_run)
        # CartPole-v1 ends every episode within 500 steps, so 500 steps finish all of them.
        (_, _, _, total, _), _ = jax.lax.scan(one_step, init, None, env_params.max_steps_in_episode)
        return total.mean()

    return {"state": state, "update": update, "evaluate": evaluate, "rollout": rollout,
            "num_iterations": num_iterations}


def use_compilation_cache(directory: str) -> None:
    """Turn on JAX's persistent compilation cache in ``directory`` for every program, however
    short its compilation (JAX's defaults skip programs that compile in under a second): a later
    process loads the compiled iteration and evaluation instead of compiling them again."""
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def train_until(seed: int, threshold: float, eval_seed_offset: int = 10_000,
                config: Config | None = None, wall_cap_s: float = 600.0) -> dict[str, Any]:
    """Train with a greedy 64-episode evaluation after every iteration until ``threshold``.

    Returns the benchmark's result record: ``solved``, ``steps``, ``wall_s`` (from the call,
    compilation and evaluation included), ``train_s`` (iterations only), ``eval_s``,
    ``compile_s`` (set-up and ahead-of-time compilation of both programs) and the ``curve``.
    """
    config = config or Config()
    start = time.perf_counter()
    parts = make(config, seed)
    state = parts["state"]
    key0 = jax.random.PRNGKey(seed + eval_seed_offset)
    update = jax.jit(parts["update"]).lower(state).compile()
    evaluate = jax.jit(parts["evaluate"]).lower(state["params"], key0).compile()
    # Everything before the first iteration: building the initial state (its eager ops compile
    # too) and compiling both programs ahead of time.
    compile_s = time.perf_counter() - start
    train_s = eval_s = 0.0
    curve: list[tuple[int, float, float]] = []
    batch = config.num_envs * config.num_steps
    for it in range(parts["num_iterations"]):
        tic = time.perf_counter()
        state = update(state)
        jax.block_until_ready(state["params"])
        train_s += time.perf_counter() - tic
        tic = time.perf_counter()
        score = float(evaluate(state["params"], jax.random.fold_in(key0, it)))
        eval_s += time.perf_counter() - tic
        wall = time.perf_counter() - start
        curve.append(((it + 1) * batch, wall, score))
        if score >= threshold or wall > wall_cap_s:
            break
    solved = bool(curve) and curve[-1][2] >= threshold
    return {"solved": solved, "steps": curve[-1][0] if solved else None,
            "wall_s": curve[-1][1] if solved else None, "train_s": train_s if solved else None,
            "eval_s": eval_s, "compile_s": compile_s, "curve": curve}
