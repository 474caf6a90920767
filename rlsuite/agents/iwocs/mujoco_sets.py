"""The MuJoCo uncertainty sets of the IWOCS paper (Table 7, taken from M2TD3's configs) as
gymnasium ``*-v5`` env factories with settable params. Needs the ``mujoco`` extra.

Each parameter writes one field of the compiled model (``env.unwrapped.model``; gymnasium >= 1.0
wrappers do not forward attributes): a body mass (``body_mass[body]``) or the
sliding friction of some geoms (``geom_friction[geoms, 0]``). Pitfalls handled (``docs/iwocs.md``):

* Bodies are addressed by *name* in the v5 models, not by index, except M2TD3's Ant
  "front-right-leg" mass, which M2TD3 writes to ``body_mass[4]``, the unnamed ankle body of the
  front-*left* leg; RRLS writes ``body_mass[5]`` (``front_right_leg``). ``ant_leg="m2td3"``
  (default, the body IWOCS's reference value 0.06 belongs to) or ``"rrls"`` picks one.
* MuJoCo combines the friction of two touching geoms by their maximum. Hopper's foot has 2.0 and
  Walker2d-v5's feet 1.9, so writing only the floor's friction (RRLS; M2TD3's XML default reaches
  only the floor) does nothing below those values. ``friction="floor_and_feet"`` (default) also
  writes the feet, so the whole range acts; ``"floor"`` reproduces RRLS. HalfCheetah writes every
  geom (all 0.4 in v5), as RRLS does.
* Table 7's reference values are the v2 (MuJoCo 1.50) masses; the v5 nominal values differ a
  little (e.g. HalfCheetah torso 6.25 vs 6.36). :func:`nominal_values` reads the v5 ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.agents.iwocs.boxes import UncertaintyBox


@dataclass(frozen=True)
class MujocoParam:
    """One uncertain physical parameter."""

    name: str
    """M2TD3 / RRLS parameter name (``worldfriction``, ``torsomass``, ...)."""
    kind: str
    """``"mass"`` or ``"friction"``."""
    target: str
    """Body name (mass) or a geom group: ``"all"``, ``"floor"``, ``"floor_and_feet"``; for the
    Ant front-right-leg mass, ``"ant_leg"`` (resolved by the ``ant_leg`` convention)."""
    low: float
    high: float
    reference: float
    """IWOCS Table 7 reference value (v2 models)."""


@dataclass(frozen=True)
class MujocoBox:
    """An uncertainty set of the paper: a gymnasium env id and its box of parameters."""

    env_id: str
    params: tuple[MujocoParam, ...]

    @property
    def box(self) -> UncertaintyBox:
        """The box as an :class:`UncertaintyBox` (grid, CMA-ES and normalization helpers)."""
        return UncertaintyBox(self.env_id, tuple(p.name for p in self.params),
                              tuple(p.low for p in self.params), tuple(p.high for p in self.params))


def _m(name: str, body: str, low: float, high: float, ref: float) -> MujocoParam:
    return MujocoParam(name, "mass", body, low, high, ref)


def _f(geoms: str, low: float, high: float, ref: float) -> MujocoParam:
    return MujocoParam("worldfriction", "friction", geoms, low, high, ref)


MUJOCO_BOXES: dict[str, MujocoBox] = {
    "ant_2": MujocoBox("Ant-v5", (_m("torsomass", "torso", 0.1, 3.0, 0.33),
                                  _m("frontleftlegmass", "front_left_leg", 0.01, 3.0, 0.04))),
    "ant_3": MujocoBox("Ant-v5", (_m("torsomass", "torso", 0.1, 3.0, 0.33),
                                  _m("frontleftlegmass", "front_left_leg", 0.01, 3.0, 0.04),
                                  _m("frontrightlegmass", "ant_leg", 0.01, 3.0, 0.06))),
    "halfcheetah_2": MujocoBox("HalfCheetah-v5", (_f("all", 0.1, 4.0, 0.4),
                                                  _m("torsomass", "torso", 0.1, 7.0, 6.36))),
    "halfcheetah_3": MujocoBox("HalfCheetah-v5", (_f("all", 0.1, 4.0, 0.4),
                                                  _m("torsomass", "torso", 0.1, 7.0, 6.36),
                                                  _m("backthighmass", "bthigh", 0.1, 3.0, 1.53))),
    "hopper_2": MujocoBox("Hopper-v5", (_f("floor_and_feet", 0.1, 3.0, 1.0),
                                        _m("torsomass", "torso", 0.1, 3.0, 3.53))),
    "hopper_3": MujocoBox("Hopper-v5", (_f("floor_and_feet", 0.1, 3.0, 1.0),
                                        _m("torsomass", "torso", 0.1, 3.0, 3.53),
                                        _m("thighmass", "thigh", 0.1, 4.0, 3.93))),
    "humanoidstandup_2": MujocoBox("HumanoidStandup-v5", (
        _m("torsomass", "torso", 0.1, 16.0, 8.32), _m("rightfootmass", "right_foot", 0.1, 8.0, 1.77))),
    "humanoidstandup_3": MujocoBox("HumanoidStandup-v5", (
        _m("torsomass", "torso", 0.1, 16.0, 8.32), _m("rightfootmass", "right_foot", 0.1, 5.0, 1.77),
        _m("leftthighmass", "left_thigh", 0.1, 8.0, 4.53))),
    "invertedpendulum_2": MujocoBox("InvertedPendulum-v5", (
        _m("polemass", "pole", 1.0, 31.0, 4.90), _m("cartmass", "cart", 1.0, 11.0, 9.42))),
    "walker_2": MujocoBox("Walker2d-v5", (_f("floor_and_feet", 0.1, 4.0, 0.7),
                                          _m("torsomass", "torso", 0.1, 5.0, 3.53))),
    "walker_3": MujocoBox("Walker2d-v5", (_f("floor_and_feet", 0.1, 4.0, 0.7),
                                          _m("torsomass", "torso", 0.1, 5.0, 3.53),
                                          _m("thighmass", "thigh", 0.1, 6.0, 3.93))),
}
"""IWOCS Table 7 / M2TD3 ``configs/environment/*.yaml`` (Walker's thigh is the right one)."""

FEET = {"Hopper-v5": ("foot_geom",), "Walker2d-v5": ("foot_geom", "foot_left_geom")}


def make_env(name: str, **kwargs: Any) -> Any:
    """``gymnasium.make`` of the box's env (``kwargs`` go to gymnasium)."""
    import gymnasium as gym

    return gym.make(get_mujoco_box(name).env_id, **kwargs)


def get_mujoco_box(name: str) -> MujocoBox:
    """The set called ``name`` (a KeyError lists the known ones)."""
    try:
        return MUJOCO_BOXES[name]
    except KeyError:
        raise KeyError(f"unknown MuJoCo uncertainty set {name!r}; known: {sorted(MUJOCO_BOXES)}") from None


def param_targets(model: Any, env_id: str, param: MujocoParam, friction: str = "floor_and_feet",
                  ant_leg: str = "m2td3") -> list[int]:
    """The indices ``param`` writes in ``model``: bodies (a mass) or geoms (a friction)."""
    import mujoco

    if param.kind == "mass":
        if param.target == "ant_leg":
            if ant_leg == "m2td3":
                return [4]  # unnamed front-left ankle body (M2TD3 utils/make_env.py index)
            if ant_leg == "rrls":
                return [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "front_right_leg")]
            raise ValueError(f"ant_leg = {ant_leg!r}: expected 'm2td3' or 'rrls'")
        body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, param.target)
        if body < 0:
            raise ValueError(f"{env_id} has no body named {param.target!r}")
        return [body]
    group = param.target if param.target == "all" else friction
    if group == "all":
        return list(range(model.ngeom))
    floor = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")]
    if group == "floor":
        return floor
    if group == "floor_and_feet":
        return floor + [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in FEET[env_id]]
    raise ValueError(f"friction = {friction!r}: expected 'floor_and_feet' or 'floor'")


def set_params(env: Any, name: str, values: torch.Tensor | list[float], friction: str = "floor_and_feet",
               ant_leg: str = "m2td3") -> None:
    """Write the set's parameters (``values`` in the set's order) into ``env``'s model."""
    mbox = get_mujoco_box(name)
    vals = [float(v) for v in torch.as_tensor(values, dtype=torch.float64).reshape(-1).tolist()]
    if len(vals) != len(mbox.params):
        raise ValueError(f"{name}: {len(vals)} values for {len(mbox.params)} params "
                         f"{[p.name for p in mbox.params]}")
    model = env.unwrapped.model
    for p, v in zip(mbox.params, vals, strict=True):
        if not p.low - 1e-9 <= v <= p.high + 1e-9:
            raise ValueError(f"{name}.{p.name} = {v} is outside [{p.low}, {p.high}]")
        idx = param_targets(model, mbox.env_id, p, friction, ant_leg)
        if p.kind == "mass":
            model.body_mass[idx] = v
        else:
            model.geom_friction[idx, 0] = v


def nominal_values(name: str, friction: str = "floor_and_feet", ant_leg: str = "m2td3") -> list[float]:
    """The v5 model's own values of the set's parameters (the first target of each: the floor for
    a floor-and-feet friction)."""
    mbox = get_mujoco_box(name)
    env = make_env(name)
    model = env.unwrapped.model
    out = []
    for p in mbox.params:
        idx = param_targets(model, mbox.env_id, p, friction, ant_leg)[0]
        out.append(float(model.body_mass[idx] if p.kind == "mass" else model.geom_friction[idx, 0]))
    env.close()
    return out


def episode_returns(policy: Callable[[Any], Any], name: str, values: torch.Tensor, episodes: int,
                    seed: int, friction: str = "floor_and_feet") -> torch.Tensor:
    """``[N]`` mean undiscounted return of ``policy`` (numpy obs -> numpy action) on each of the
    ``N`` parameter vectors (one gymnasium env, stepped sequentially on the CPU: a search
    objective for :func:`rlsuite.agents.iwocs.search.grid_minimize` / ``cmaes_minimize``)."""
    env = make_env(name)
    out = []
    for k, row in enumerate(values.reshape(-1, len(get_mujoco_box(name).params))):
        set_params(env, name, row, friction)
        total = 0.0
        for e in range(episodes):
            obs, _ = env.reset(seed=seed + 1000 * k + e)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                total += float(reward)
                done = terminated or truncated
        out.append(total / episodes)
    env.close()
    return torch.tensor(out, dtype=torch.float64)
