"""Typed ``env.params`` schemas: every per-copy scalar physics field of an env, default ``None``.

``rlsuite env=pendulum env.params.g=12.0`` sets one field for every copy (no ``+`` needed, the key
exists); ``None`` keeps the env's own default. A misspelt name fails when the config is composed,
and the error names the key and lists the valid ones::

    Key 'gravity' not in 'pendulum params (valid: max_speed, max_torque, dt, g, m, l)'

The field lists are written out here (building an env to read them would slow every CLI start);
``tests/test_env_params.py`` checks them against each env's ``default_params()``: every field whose
tensor is ``[B]`` per copy, in declaration order. Non-scalar fields (tabular transition tables, a
bandit's matrices) are set from Python with :mod:`rlsuite.core.params`.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional

# env registry name -> its per-copy scalar param fields (declaration order)
SCALAR_PARAMS: dict[str, tuple[str, ...]] = {
    "cartpole": ("gravity", "masscart", "masspole", "length", "force_mag", "tau"),
    "cartpole_continuous": ("gravity", "masscart", "masspole", "length", "force_mag", "tau"),
    "pendulum": ("max_speed", "max_torque", "dt", "g", "m", "l"),
    "acrobot": ("link_length_1", "link_mass_1", "link_mass_2", "link_com_pos_1", "link_com_pos_2",
                "link_moi_1", "link_moi_2", "max_vel_1", "max_vel_2", "gravity", "dt"),
    "gusty_ledge": ("start_height", "climb", "noise", "gust_prob", "gust_size", "height_cost",
                    "fall_cost", "max_height"),
    "comblock": ("p_switch", "anti_reward", "anti_reward_prob", "noise_std", "temperature"),
    "dynlin_synthetic": ("state_sigma", "reward_sigma"),
    "dynlin_adv": ("state_sigma", "reward_sigma"),
    "dynlin_random": ("state_sigma", "reward_sigma"),
    "frozenlake": ("horizon",),
    "frozenlake8x8": ("horizon",),
    "cliffwalking": ("horizon",),
    "cliffwalking_stochastic": ("horizon",),
    "taxi": ("horizon",),
    "random_mdp": ("horizon",),
    "stockgrid": ("horizon",),
}


def schema_name(env: str) -> str:
    """The ConfigStore name of ``env``'s params schema (``/pendulum_params_schema@params`` in an
    env config's defaults list)."""
    return f"{env}_params_schema"


def _schema(env: str, fields: tuple[str, ...]) -> type:
    qualname = "".join(part.title() for part in env.split("_")) + "ParamsSchema"
    cls = dataclasses.make_dataclass(
        qualname, [(name, Optional[float], dataclasses.field(default=None)) for name in fields])  # noqa: UP045
    cls.__doc__ = f"Per-copy scalar params of the {env} env; None keeps the env's default."
    # OmegaConf names a typed node by ``__name__`` in its unknown-key error, so the valid keys go
    # there; ``__module__``/``__qualname__`` stay a real module attribute so configs pickle (the
    # joblib, submitit and Ray launchers pickle them).
    cls.__module__ = __name__
    cls.__qualname__ = qualname
    cls.__name__ = f"{env} params (valid: {', '.join(fields)})"
    setattr(sys.modules[__name__], qualname, cls)
    return cls


PARAMS_SCHEMAS: dict[str, type] = {env: _schema(env, fields) for env, fields in SCALAR_PARAMS.items()}


def overrides(params_cfg: object) -> dict[str, float]:
    """The fields an ``env.params`` node sets: every key whose value is not None."""
    return {k: v for k, v in dict(params_cfg or {}).items() if v is not None}  # type: ignore[call-overload]
