"""VGDF's MuJoCo target domains (Xu et al. 2023, App. D.2) as gymnasium ``*-v5`` envs.

Needs the ``mujoco`` extra. The source domain is always the stock gymnasium env (``HalfCheetah-v5``,
``Hopper-v5``, ``Walker2d-v5``, ``Ant-v5`` with the official 27-dim observation); each target is
registered with gymnasium under its own id (:data:`TASKS`, e.g.
``rlsuite/HalfCheetah-BrokenBackThigh-v5``), so ``gymnasium.make`` and the engine's
:class:`rlsuite.engine.gym_import.GymnasiumEnv` build it like any other env once this module is
imported (or without importing it first:
``gymnasium.make("rlsuite.envs.mujoco_shifts:rlsuite/HalfCheetah-BrokenBackThigh-v5")``).

**Kinematic shifts** ("broken joints", ``docs/vgdf.md``; official code
``env/{halfcheetah,hopper,walker}.py`` with ``config/vgdf/*.yaml``): the compiled model's
``jnt_range`` entries of one or two joints are multiplied by a scale after construction. Joints are
found by name, not index. MuJoCo joint limits are soft, so a "broken" joint still moves a little
(about 0.09 rad for the HalfCheetah back thigh under random actions, instead of about 0.75).

**Morphology shifts** (B4.2; official ``env/assets/*_morph.xml``): the official Hopper and Walker
XMLs use ``compiler coordinate="global"``, which MuJoCo >= 2.3.4 rejects. Instead of converting
them, the same geometric edits are applied here to gymnasium's own v5 (local-coordinate) XMLs by
:func:`morph_xml` (a list of attribute edits per named element, :class:`XmlEdit`), and the results
are shipped in ``envs/assets/vgdf/`` (regenerate with ``python -m rlsuite.envs.mujoco_shifts``; a
test checks that the shipped files equal the transformation's output). The edited geometry was
converted from the official global coordinates by hand (comments at each edit) and is checked in
the tests against the body masses measured on the official XMLs (``docs/vgdf.md``).

Definitions used where the paper and the released code differ:

* HalfCheetah "no thighs": the released XML's lower-leg rebuild is applied too (the paper only
  mentions the thighs), since the reference masses are those of the released XML.
* Hopper "big head" (Table 1: "short feet"): torso radius 0.05 -> 0.125 (paper) **and** thigh radius
  0.05 -> 0.04 (released XML only); ``hopper_big_head_paper`` is the paper's text alone.
* Walker "no right thigh": built on ``walker2d_v5.xml`` (both feet friction 1.9, Walker2d-v5's
  default), so source and target differ only in the leg; the official pair used the v2 frictions
  (right foot 0.9) in both domains.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ASSETS = Path(__file__).resolve().parent / "assets" / "vgdf"
"""Where the morphology XMLs are shipped (installed as package data of ``rlsuite.envs``)."""
EPISODE_STEPS = 1000
"""Time limit of every task (gymnasium's and the official code's)."""


@dataclass(frozen=True)
class JointScale:
    """Multiply a joint's compiled range (radians) by ``lower`` / ``upper``."""

    joint: str
    lower: float
    upper: float


@dataclass(frozen=True)
class XmlEdit:
    """Set (and remove) attributes of the element ``<tag name="name">`` of an MJCF file."""

    tag: str
    name: str
    set: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class VGDFTask:
    """One target domain of the paper."""

    name: str
    """Short name (``halfcheetah_broken_thigh``)."""
    kind: str
    """``"kinematic"`` (joint ranges scaled) or ``"morphology"`` (modified XML)."""
    source_id: str
    """The stock gymnasium env that is the source domain."""
    target_id: str
    """The gymnasium id this module registers for the target domain."""
    paper_name: str
    """The paper's name for the target (App. D / Table 1)."""
    joints: tuple[JointScale, ...] = ()
    base_xml: str | None = None
    """gymnasium asset the morphology edits start from."""
    edits: tuple[XmlEdit, ...] = ()
    env_kwargs: tuple[tuple[str, Any], ...] = ()
    """Constructor kwargs of both domains (Ant: the official 27-dim observation)."""


def _capsule(fromto: str) -> dict[str, str]:
    return {"fromto": fromto, "size": "0.046"}


_POSE = ("axisangle", "pos")
_ANT_KWARGS = (("include_cfrc_ext_in_observation", False),)
"""Ant-v5 without the 78 contact-force entries: the 27-dim observation of the official Ant-v4."""

TASKS: dict[str, VGDFTask] = {t.name: t for t in (
    # B4.1: config/vgdf/halfcheetah.yaml, "bt jnt lower/upper limit" x 0.01 on jnt_range[3].
    VGDFTask("halfcheetah_broken_thigh", "kinematic", "HalfCheetah-v5",
             "rlsuite/HalfCheetah-BrokenBackThigh-v5", "HalfCheetah - broken back thigh",
             joints=(JointScale("bthigh", 0.01, 0.01),)),
    # config/vgdf/hopper.yaml: "torso jnt lower limit" (jnt_range[3] = thigh_joint) x 0.001,
    # "foot jnt lower/upper limit" (jnt_range[5] = foot_joint) x 0.4.
    VGDFTask("hopper_broken_joints", "kinematic", "Hopper-v5", "rlsuite/Hopper-BrokenJoints-v5",
             "Hopper - broken joints (Table 1: broken hips)",
             joints=(JointScale("thigh_joint", 0.001, 1.0), JointScale("foot_joint", 0.4, 0.4))),
    # config/vgdf/walker.yaml: "right foot jnt lower/upper limit" (jnt_range[5]) x 0.01.
    VGDFTask("walker_broken_right_foot", "kinematic", "Walker2d-v5",
             "rlsuite/Walker2d-BrokenRightFoot-v5",
             "Walker - broken right foot (Table 1: broken right thigh)",
             joints=(JointScale("foot_joint", 0.01, 0.01),)),
    # env/assets/halfcheetah_morph.xml (local coordinates, diffed against gym's half_cheetah.xml):
    # degenerate thigh capsules, shins re-attached at their tips, lower legs rebuilt.
    VGDFTask("halfcheetah_no_thighs", "morphology", "HalfCheetah-v5", "rlsuite/HalfCheetah-NoThighs-v5",
             "HalfCheetah - no thighs", base_xml="half_cheetah.xml", edits=(
                 XmlEdit("geom", "bthigh", _capsule("0 0 0 -0.0001 0 -0.0001"), _POSE),
                 XmlEdit("body", "bshin", {"pos": "-0.0001 0 -0.0001"}),
                 XmlEdit("geom", "bshin", _capsule("0 0 0 -.13 0 -.15"), _POSE),
                 XmlEdit("body", "bfoot", {"pos": "-.13 0 -.15"}),
                 XmlEdit("geom", "bfoot", {"size": "0.046 .07"}),
                 XmlEdit("geom", "fthigh", _capsule("0 0 0 0.0001 0 0.0001"), _POSE),
                 XmlEdit("body", "fshin", {"pos": "0.0001 0 0.0001"}),
                 XmlEdit("geom", "fshin", _capsule("0 0 0 0.01 0 -.16"), _POSE),
                 XmlEdit("body", "ffoot", {"pos": "0.01 0 -.16"}),
             )),
    # env/assets/hopper_morph.xml (global coordinates): torso capsule radius 0.125 (paper) and thigh
    # capsule radius 0.04 (released XML only). Lengths and joints unchanged, so only radii move.
    VGDFTask("hopper_big_head", "morphology", "Hopper-v5", "rlsuite/Hopper-BigHead-v5",
             "Hopper - big head (Table 1: short feet)", base_xml="hopper.xml", edits=(
                 XmlEdit("geom", "torso_geom", {"size": "0.125 0.19999999999999996"}),
                 XmlEdit("geom", "thigh_geom", {"size": "0.04 0.22500000000000003"}),
             )),
    VGDFTask("hopper_big_head_paper", "morphology", "Hopper-v5", "rlsuite/Hopper-BigHeadPaper-v5",
             "Hopper - big head, the paper's text (torso radius only)", base_xml="hopper.xml", edits=(
                 XmlEdit("geom", "torso_geom", {"size": "0.125 0.19999999999999996"}),
             )),
    # env/assets/walker_morph.xml (global coordinates), right leg only. Global -> local, with the
    # v5 body frames kept (thigh at z 1.05, leg at 0.35, foot at (0.2, 0, 0)): thigh capsule
    # 1.05 -> 1.045 = centre -0.0025, half-length 0.0025; leg joint at 1.045 = leg z +0.695; leg
    # capsule 1.045 -> 0.3 = centre +0.3225, half-length 0.3725; foot joint at (0, 0, 0.3) = foot
    # (-0.2, 0, 0.3); foot capsule x 0 -> 0.2 at z 0.3 = centre (-0.1, 0, 0.3), half-length 0.1.
    # B4.1: the official Ant task (Ant-v4, 27-dim observation without contact forces), hips of the
    # front-left (hip_1) and front-right (hip_2) legs x 0.01.
    VGDFTask("ant_broken_hips", "kinematic", "Ant-v5", "rlsuite/Ant-BrokenHips-v5", "Ant - broken hips",
             joints=(JointScale("hip_1", 0.01, 0.01), JointScale("hip_2", 0.01, 0.01)),
             env_kwargs=_ANT_KWARGS),
    # env/assets/ant_morph.xml: the lower-leg capsules of the two front legs 0.4 -> 0.1 long along
    # each axis of the leg plane; everything else as the stock model.
    VGDFTask("ant_short_feet", "morphology", "Ant-v5", "rlsuite/Ant-ShortFeet-v5", "Ant - short feet",
             base_xml="ant.xml", env_kwargs=_ANT_KWARGS, edits=(
                 XmlEdit("geom", "left_ankle_geom", {"fromto": "0.0 0.0 0.0 0.1 0.1 0.0"}),
                 XmlEdit("geom", "right_ankle_geom", {"fromto": "0.0 0.0 0.0 -0.1 0.1 0.0"}),
             )),
    VGDFTask("walker_no_right_thigh", "morphology", "Walker2d-v5", "rlsuite/Walker2d-NoRightThigh-v5",
             "Walker - no right thigh", base_xml="walker2d_v5.xml", edits=(
                 XmlEdit("geom", "thigh_geom", {"pos": "0 0 -0.0025", "size": "0.05 0.0025"}),
                 XmlEdit("joint", "leg_joint", {"pos": "0 0 0.695"}),
                 XmlEdit("geom", "leg_geom", {"pos": "0 0 0.3225", "size": "0.04 0.3725"}),
                 XmlEdit("joint", "foot_joint", {"pos": "-0.2 0 0.3"}),
                 XmlEdit("geom", "foot_geom", {"pos": "-0.1 0 0.3"}),
             )),
)}
"""The paper's targets (App. D.2): a kinematic and a morphology shift per robot."""


def get_task(name: str) -> VGDFTask:
    """The task called ``name`` (a KeyError lists the known ones)."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown VGDF MuJoCo task {name!r}; known: {sorted(TASKS)}") from None


def gymnasium_asset(filename: str) -> Path:
    """Path of one of gymnasium's own MuJoCo XMLs."""
    import gymnasium.envs.mujoco as gm

    return Path(gm.__file__).resolve().parent / "assets" / filename


def morph_xml(task: VGDFTask | str) -> str:
    """The task's morphology XML: gymnasium's ``base_xml`` with the task's edits applied."""
    task = get_task(task) if isinstance(task, str) else task
    if task.base_xml is None:
        raise ValueError(f"{task.name} is a {task.kind} shift and has no XML")
    root = ET.fromstring(gymnasium_asset(task.base_xml).read_text())
    for edit in task.edits:
        found = [el for el in root.iter(edit.tag) if el.get("name") == edit.name]
        if len(found) != 1:
            raise ValueError(f"{task.name}: {len(found)} <{edit.tag} name={edit.name!r}> in {task.base_xml}")
        for attr in edit.remove:
            found[0].attrib.pop(attr, None)
        found[0].attrib.update(edit.set)
    header = (f" VGDF target '{task.paper_name}' (Xu et al. 2023, App. D.2): gymnasium's "
              f"{task.base_xml} with the edits of rlsuite.envs.mujoco_shifts.TASKS[{task.name!r}]. "
              "Generated by `python -m rlsuite.envs.mujoco_shifts`; do not edit by hand. ")
    root.insert(0, ET.Comment(header))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def asset_path(task: VGDFTask | str) -> Path:
    """The shipped XML of a morphology task."""
    task = get_task(task) if isinstance(task, str) else task
    return ASSETS / f"{task.name}.xml"


def write_assets() -> list[Path]:
    """(Re)generate every morphology XML under :data:`ASSETS`."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    out = []
    for task in TASKS.values():
        if task.kind == "morphology":
            asset_path(task).write_text(morph_xml(task))
            out.append(asset_path(task))
    return out


def joint_ids(model: Any, task: VGDFTask) -> list[int]:
    """Indices of the task's broken joints in a compiled model (by name)."""
    import mujoco

    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j.joint) for j in task.joints]
    missing = [j.joint for j, i in zip(task.joints, ids, strict=True) if i < 0]
    if missing:
        raise ValueError(f"{task.name}: the model has no joints named {missing}")
    return ids


def break_joints(model: Any, task: VGDFTask) -> None:
    """Scale the task's joint ranges in place (official ``set_params``: nominal x scale)."""
    for jid, j in zip(joint_ids(model, task), task.joints, strict=True):
        if not model.jnt_limited[jid]:
            raise ValueError(f"{task.name}: joint {j.joint!r} is unlimited; scaling its range does nothing")
        model.jnt_range[jid, 0] *= j.lower
        model.jnt_range[jid, 1] *= j.upper


def build_target(task: str, **kwargs: Any) -> Any:
    """The target env of ``task`` (unwrapped; gymnasium's entry point for the registered ids).
    ``kwargs`` go to the gymnasium env class (``reset_noise_scale=...``)."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    t = get_task(task)
    creator = load_env_creator(gymnasium.spec(t.source_id).entry_point)
    kwargs = {**dict(t.env_kwargs), **kwargs}
    if t.kind == "morphology":
        return creator(xml_file=str(asset_path(t)), **kwargs)
    env = creator(**kwargs)
    break_joints(env.unwrapped.model, t)
    return env


def register_gymnasium_ids() -> None:
    """Register every task's ``target_id`` with gymnasium (idempotent)."""
    import gymnasium

    for t in TASKS.values():
        if t.target_id not in gymnasium.registry:
            gymnasium.register(t.target_id, entry_point=f"{__name__}:build_target",
                               kwargs={"task": t.name}, max_episode_steps=EPISODE_STEPS)


def make_pair(task: str, **kwargs: Any) -> tuple[Any, Any]:
    """``(source, target)`` gymnasium envs of ``task`` (``gymnasium.make``, time limit 1000)."""
    import gymnasium

    register_gymnasium_ids()
    t = get_task(task)
    kwargs = {**dict(t.env_kwargs), **kwargs}
    return gymnasium.make(t.source_id, **kwargs), gymnasium.make(t.target_id, **kwargs)


# -- terminal predicates on (model-predicted) observations, VGDF env/env_utils.py ----------------
def hopper_terminal(obs: torch.Tensor) -> torch.Tensor:
    """Hopper-v5's termination on observations ``[..., 11]`` (obs = qpos[1:], clipped qvel):
    unhealthy unless finite, ``|obs[1:]| < 100``, height ``obs[0] > 0.7`` and ``|angle obs[1]| <
    0.2``. gymnasium's ``abs`` bound, not the official code's one-sided one (its ``abs`` is of a boolean)."""
    finite = torch.isfinite(obs).all(-1)
    healthy = finite & (obs[..., 1:].abs() < 100).all(-1) & (obs[..., 0] > 0.7) & (obs[..., 1].abs() < 0.2)
    return ~healthy


def walker_terminal(obs: torch.Tensor) -> torch.Tensor:
    """Walker2d-v5's termination on observations ``[..., 17]``: unhealthy unless ``0.8 < z < 2``
    and ``-1 < angle < 1`` (``obs[0]``, ``obs[1]``)."""
    z, angle = obs[..., 0], obs[..., 1]
    return ~((z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0))


def ant_terminal(obs: torch.Tensor) -> torch.Tensor:
    """Ant-v5's termination on observations ``[..., 27]`` (``obs[0]`` = torso height): unhealthy
    unless every entry is finite and ``0.2 <= z <= 1.0`` (gymnasium's ``healthy_z_range``)."""
    z = obs[..., 0]
    return ~(torch.isfinite(obs).all(-1) & (z >= 0.2) & (z <= 1.0))


TERMINAL_FNS = {"HalfCheetah-v5": None, "Hopper-v5": hopper_terminal, "Walker2d-v5": walker_terminal,
                "Ant-v5": ant_terminal}
"""Per source env: the predicate VGDF applies to fictitious next observations (None: never)."""

register_gymnasium_ids()

if __name__ == "__main__":
    for path in write_assets():
        print(path)
