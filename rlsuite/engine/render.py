"""``rgb_array`` frames of the classic-control envs, drawn with numpy (no pygame needed).

The scenes follow gymnasium's classic-control renderers (``gymnasium/envs/classic_control``):
the same canvas sizes, world-to-pixel scales, colours and geometry, so a video of an rlsuite
CartPole looks like one of ``CartPole-v1``. Frames are not pixel-identical to pygame's (no
anti-aliasing); what they show is the state: the cart's position and the pole's angle, the
pendulum's angle, the acrobot's two link angles.

:func:`renderer_for` gives the :class:`Renderer` of an engine env, or None for an env that has
no picture (the tabular and research envs); :class:`~rlsuite.engine.gym_export.TorchSingleEnv`
then has no ``rgb_array`` render mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlsuite.core.env import BatchedEnv

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


class Canvas:
    """An ``[H, W, 3]`` uint8 image in world coordinates: origin at pixel ``origin``, y up."""

    def __init__(self, width: int, height: int, scale: float, origin: tuple[float, float]) -> None:
        self.image = np.full((height, width, 3), 255, dtype=np.uint8)
        self.scale, self.origin = scale, origin
        # Pixel centres in world units, y pointing up (the image's row 0 is the top).
        cols = (np.arange(width) + 0.5 - origin[0]) / scale
        rows = (height - (np.arange(height) + 0.5) - origin[1]) / scale
        self.x, self.y = np.meshgrid(cols, rows)

    def fill(self, mask: np.ndarray, color: tuple[int, int, int]) -> None:
        """Paint the pixels of ``mask``."""
        self.image[mask] = color

    def segment(self, a: tuple[float, float], b: tuple[float, float], radius: float,
                color: tuple[int, int, int]) -> None:
        """A thick line from ``a`` to ``b`` with round ends (``radius`` in world units)."""
        ax, ay = a
        dx, dy = b[0] - ax, b[1] - ay
        length2 = dx * dx + dy * dy
        t = ((self.x - ax) * dx + (self.y - ay) * dy) / length2 if length2 > 0 else 0.0
        t = np.clip(t, 0.0, 1.0)
        dist2 = (self.x - ax - t * dx) ** 2 + (self.y - ay - t * dy) ** 2
        self.fill(dist2 <= radius * radius, color)

    def circle(self, centre: tuple[float, float], radius: float, color: tuple[int, int, int]) -> None:
        """A filled disc."""
        self.fill((self.x - centre[0]) ** 2 + (self.y - centre[1]) ** 2 <= radius * radius, color)

    def rect(self, left: float, right: float, bottom: float, top: float,
             color: tuple[int, int, int]) -> None:
        """An axis-aligned filled rectangle."""
        self.fill((self.x >= left) & (self.x <= right) & (self.y >= bottom) & (self.y <= top), color)


def _copy0(x: Any) -> float:
    """Copy 0 of a ``[B]`` tensor as a float (the single env holds one copy)."""
    return float(x.reshape(-1)[0])


def draw_cartpole(state: Any, params: Any) -> np.ndarray:
    """gymnasium's CartPole scene: 600x400, the track 4.8 m wide, the pole ``2 * length`` long."""
    width, height, world_width = 600, 400, 4.8
    scale = width / world_width
    canvas = Canvas(width, height, scale, origin=(width / 2, 0.0))
    cart_y, cart_w, cart_h = 100 / scale, 50 / scale, 30 / scale
    x, theta = _copy0(state.x), _copy0(state.theta)
    pole_len = 2 * _copy0(params.length)
    canvas.rect(-world_width, world_width, cart_y - 0.5 / scale, cart_y + 0.5 / scale, BLACK)
    canvas.rect(x - cart_w / 2, x + cart_w / 2, cart_y - cart_h / 2, cart_y + cart_h / 2, BLACK)
    axle = (x, cart_y + cart_h / 4)
    tip = (axle[0] + pole_len * math.sin(theta), axle[1] + pole_len * math.cos(theta))
    canvas.segment(axle, tip, 5 / scale, (202, 152, 101))
    canvas.circle(axle, 5 / scale, (129, 132, 203))
    return canvas.image


def draw_pendulum(state: Any, params: Any) -> np.ndarray:
    """gymnasium's Pendulum scene: 500x500, bounds +-2.2, the rod pointing up at ``th = 0``."""
    size, bound = 500, 2.2
    scale = size / (2 * bound)
    canvas = Canvas(size, size, scale, origin=(size / 2, size / 2))
    th, length = _copy0(state.th), _copy0(params.l)
    tip = (-length * math.sin(th), length * math.cos(th))  # counter-clockwise from up
    canvas.segment((0.0, 0.0), tip, 0.1, (204, 77, 77))
    canvas.circle((0.0, 0.0), 0.05, BLACK)
    return canvas.image


ACROBOT_LINK_LENGTH_2 = 1.0
"""gymnasium's ``LINK_LENGTH_2`` (not a param of rlsuite's Acrobot: it is not in the dynamics)."""


def draw_acrobot(state: Any, params: Any) -> np.ndarray:
    """gymnasium's Acrobot scene: 500x500, both links hanging down at angle 0, the goal line at
    height 1 above the pivot."""
    size = 500
    l1, l2 = _copy0(params.link_length_1), ACROBOT_LINK_LENGTH_2
    bound = l1 + l2 + 0.2
    scale = size / (2 * bound)
    canvas = Canvas(size, size, scale, origin=(size / 2, size / 2))
    s0, s1 = _copy0(state.theta1), _copy0(state.theta2)
    p1 = (l1 * math.sin(s0), -l1 * math.cos(s0))
    p2 = (p1[0] + l2 * math.sin(s0 + s1), p1[1] - l2 * math.cos(s0 + s1))
    canvas.rect(-2.2, 2.2, 1.0 - 0.5 / scale, 1.0 + 0.5 / scale, BLACK)
    for a, b in (((0.0, 0.0), p1), (p1, p2)):
        canvas.segment(a, b, 0.1, (0, 204, 204))
        canvas.circle(a, 0.1, (204, 204, 0))
    return canvas.image


@dataclass(frozen=True)
class Renderer:
    """Draws copy 0 of an env's state; ``fps`` is gymnasium's ``render_fps`` for that env."""

    draw: Callable[[Any, Any], np.ndarray]
    fps: int


RENDERERS: dict[str, Renderer] = {
    "cartpole": Renderer(draw_cartpole, 50),
    "cartpole_continuous": Renderer(draw_cartpole, 50),
    "pendulum": Renderer(draw_pendulum, 30),
    "acrobot": Renderer(draw_acrobot, 15),
}
"""By engine env name (``BatchedEnv.name``)."""


def renderer_for(env: BatchedEnv) -> Renderer | None:
    """The renderer of ``env``, or None where rlsuite draws no picture of it."""
    return RENDERERS.get(getattr(env, "name", ""))
