"""Parameters, gradients and Adam moments as views of single contiguous blocks.

A learner that writes its gradients itself (a hand-written backward pass, :mod:`rlsuite.learners.mlp_grad`)
can then clip the global gradient norm and step Adam with one call each over the whole block,
instead of one small op per parameter tensor plus the Python of ``torch.optim``:

* :class:`FlatParams` rebinds each parameter's ``.data`` to a view of one block (the same
  ``nn.Parameter`` objects, so modules, optimizers and ``state_dict`` keys and shapes are
  unchanged) and keeps a gradient block beside it;
* :class:`FlatAdam` binds a ``torch.optim.Adam``'s per-parameter moments to views of two blocks and
  steps them with one call of torch's fused Adam kernel: the same update, element for element, as
  ``optimizer.step()`` with ``fused=True`` up to the last bit (the kernel rounds a tensor's
  vectorised body and its scalar tail differently, and an element's place differs between a
  parameter alone and the block), and the optimizer's ``state_dict`` keeps its per-parameter
  layout, so checkpoints load either way (``tests/test_ppo_fast.py``, ``tests/test_flat.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


class FlatParams:
    """``params`` rebound as views of one contiguous block ``data``, plus a gradient block ``grad``.

    ``views``/``grads`` are the per-parameter views of ``data``/``grad`` in ``params`` order. The
    binding holds until something replaces a parameter's ``.data`` (``module.to(...)``,
    ``.double()``): :meth:`bound` tells, and the owner builds a new ``FlatParams`` then.
    """

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("FlatParams: no parameters")
        first = self.params[0]
        for p in self.params:
            if p.dtype != first.dtype or p.device != first.device:
                raise ValueError(f"FlatParams: mixed dtypes/devices ({p.dtype} on {p.device} "
                                 f"beside {first.dtype} on {first.device})")
        with torch.no_grad():
            self.data = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.data)
        self.views = self.views_of(self.data)
        self.grads = self.views_of(self.grad)
        for p, view in zip(self.params, self.views, strict=True):
            p.data = view  # the same Parameter object, its storage now inside the block
        self._ptrs = [v.data_ptr() for v in self.views]

    def views_of(self, block: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views of ``block`` (laid out as ``data``), in ``params`` order."""
        out, offset = [], 0
        for p in self.params:
            out.append(block[offset : offset + p.numel()].view(p.shape))
            offset += p.numel()
        return out

    def bound(self) -> bool:
        """Whether every parameter still lives in the block (no ``.to``/``.double()`` since)."""
        return all(p.data_ptr() == ptr and p.dtype == self.data.dtype
                   for p, ptr in zip(self.params, self._ptrs, strict=True))

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale ``grad`` so its global 2-norm is at most ``max_norm``; return the norm before.

        The formula of ``torch.nn.utils.clip_grad_norm_`` (``coef = max_norm / (norm + 1e-6)``,
        clamped to 1), with the norm taken over the block at once (the same value up to rounding:
        torch takes the norm of the per-tensor norms)."""
        norm = torch.linalg.vector_norm(self.grad)
        # max_norm / (norm + 1e-6) as torch's Tensor.__rdiv__ computes it (reciprocal, then the
        # product), without its Python wrapper: one call fewer per minibatch
        coef = (norm + 1e-6).reciprocal_().mul_(max_norm).clamp_(max=1.0)
        self.grad.mul_(coef)
        return norm


class FlatAdam:
    """One fused Adam call over a :class:`FlatParams` block, as ``optimizer`` would step it.

    ``optimizer`` must be a ``torch.optim.Adam`` with one param group holding exactly
    ``flat.params`` (in order), without amsgrad, weight decay, maximize or a tensor learning rate.
    Its state entries are rebound to views of the moment blocks (:meth:`bind`, done again by
    :meth:`step` after ``optimizer.load_state_dict`` has replaced them), so ``optimizer.state_dict()``
    stays what ``optimizer.step()`` would have produced. Each parameter keeps its own step counter
    tensor (a checkpoint must never alias them: an optimizer that loads it increments each one).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, flat: FlatParams) -> None:
        if not isinstance(optimizer, torch.optim.Adam):
            raise TypeError(f"FlatAdam needs torch.optim.Adam, got {type(optimizer).__name__}")
        if len(optimizer.param_groups) != 1:
            raise ValueError(f"FlatAdam: one param group expected, got {len(optimizer.param_groups)}")
        group = optimizer.param_groups[0]
        if [id(p) for p in group["params"]] != [id(p) for p in flat.params]:
            raise ValueError("FlatAdam: the optimizer's parameters are not the block's, in order")
        for key, plain in (("amsgrad", False), ("maximize", False), ("weight_decay", 0),
                           ("differentiable", False), ("decoupled_weight_decay", False)):
            if group.get(key, plain) != plain:
                raise ValueError(f"FlatAdam: unsupported Adam setting {key}={group[key]!r}")
        if isinstance(group["lr"], torch.Tensor):
            raise ValueError("FlatAdam: a tensor learning rate is not supported")
        self.optimizer, self.flat = optimizer, flat
        self.exp_avg = torch.zeros_like(flat.data)
        self.exp_avg_sq = torch.zeros_like(flat.data)
        self._m_views = flat.views_of(self.exp_avg)
        self._v_views = flat.views_of(self.exp_avg_sq)
        self._steps: list[torch.Tensor] = []
        self.bind()

    def bind(self) -> None:
        """Copy the optimizer's moments into the blocks and point its state at the views (a fresh
        state, as Adam's first step would create it, where there is none yet)."""
        state = self.optimizer.state
        params = self.flat.params
        # One step counter per parameter, as views of one buffer: distinct tensors (an optimizer
        # that loads a copy increments each once) that one op increments together.
        self._step_block = torch.zeros(len(params), dtype=torch.float32, device=self.flat.data.device)
        steps = list(self._step_block.unbind(0))
        counts = set()
        for p, m, v, step in zip(params, self._m_views, self._v_views, steps, strict=True):
            entry = state[p]
            if entry:
                m.copy_(entry["exp_avg"])
                v.copy_(entry["exp_avg_sq"])
                step.copy_(entry["step"])
                counts.add(float(entry["step"]))
            else:
                m.zero_()
                v.zero_()
                counts.add(0.0)
            entry["exp_avg"], entry["exp_avg_sq"], entry["step"] = m, v, step
        if len(counts) > 1:  # one fused call applies one bias correction to the whole block
            raise ValueError(f"FlatAdam: parameters at different Adam steps {sorted(counts)}")
        self._steps = steps

    def bound(self) -> bool:
        """Whether the optimizer's state still points at the blocks (a ``load_state_dict`` replaces it)."""
        state = self.optimizer.state
        return all(state[p].get("exp_avg") is m and state[p].get("exp_avg_sq") is v
                   and state[p].get("step") is s
                   for p, m, v, s in zip(self.flat.params, self._m_views, self._v_views,
                                         self._steps, strict=True))

    def step(self, check: bool = True) -> None:
        """One Adam step of the whole block from ``flat.grad`` (torch's fused kernel, one call).
        ``check=False`` skips the check that the optimizer's state is still bound to the blocks
        (:meth:`bound`, ~5 us), for a caller that made it once before a series of steps."""
        if check and not self.bound():
            self.bind()
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        self._step_block.add_(1)
        torch._fused_adam_(
            [self.flat.data], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [],
            [self._steps[0]], amsgrad=False, lr=float(group["lr"]), beta1=beta1, beta2=beta2,
            weight_decay=0.0, eps=group["eps"], maximize=False, grad_scale=None, found_inf=None,
        )


class FlatOptimizer:
    """A ``torch.optim.Adam`` whose parameters, gradients and moments live in flat blocks, for
    learners that compute gradients with autograd (SAC's actor and critics).

    The parameters' ``.grad`` are views of the gradient block, so ``backward()`` accumulates
    into the block in place; :meth:`zero_grad` zeroes the block (one op) and :meth:`step` is one
    fused Adam call (:class:`FlatAdam`). The parameters, gradients and Adam state equal those of
    ``optimizer`` itself up to :class:`FlatAdam`'s last-bit rounding (``tests/test_flat.py``); ``state_dict``,
    ``load_state_dict`` and ``param_groups`` are the wrapped optimizer's. Where autograd replaced a
    ``.grad`` (it does when it cannot accumulate in place) the step copies it into the block first.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._bind()

    def _bind(self) -> None:
        self.flat = FlatParams(self.optimizer.param_groups[0]["params"])
        self.adam = FlatAdam(self.optimizer, self.flat)
        for p, g in zip(self.flat.params, self.flat.grads, strict=True):
            p.grad = g

    @property
    def param_groups(self) -> list[dict]:
        """The wrapped optimizer's param groups (where ``set_lr`` writes the rate)."""
        return self.optimizer.param_groups

    def state_dict(self) -> dict:
        """The wrapped optimizer's ``state_dict`` (per-parameter layout)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Load into the wrapped optimizer (agents go through
        :func:`rlsuite.learners.optim.load_optimizer`, which copies the state's tensors first);
        the next step binds the loaded moments to the blocks."""
        self.optimizer.load_state_dict(state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient block (``set_to_none`` is accepted and ignored: the gradients stay
        views of the block, which is what lets backward write into it)."""
        if not self.flat.bound():  # the parameters were replaced (.to, a deep copy)
            self._bind()
        for p, g in zip(self.flat.params, self.flat.grads, strict=True):
            if p.grad is not g:
                p.grad = g
        self.flat.grad.zero_()

    def _gather_grads(self) -> None:
        """Make every ``.grad`` the block's view again (copying one autograd allocated anew)."""
        if not self.flat.bound():
            raise RuntimeError("FlatOptimizer: parameters replaced since zero_grad")
        for p, g in zip(self.flat.params, self.flat.grads, strict=True):
            if p.grad is not g:  # autograd allocated a new gradient: take it into the block
                g.copy_(p.grad if p.grad is not None else torch.zeros_like(g))
                p.grad = g

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip the block's global gradient norm to ``max_norm`` (one norm, one scale:
        :meth:`FlatParams.clip_grad_norm_`); returns the norm before clipping."""
        self._gather_grads()
        return self.flat.clip_grad_norm_(max_norm)

    def step(self) -> None:
        """One fused Adam step over the block."""
        self._gather_grads()
        self.adam.step()
