"""Replace one attribute of a library internal (torch, Hydra) for the length of a block, and put
it back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def patched(owner: Any, name: str,
            wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Within the block, ``owner.name`` is ``wrap(original)``; the original is restored on exit
    (also on an error). Left alone where ``owner`` has no such callable (another version) or
    where an enclosing block already wrapped it (the wrapper carries ``rlsuite_remembered``)."""
    original = vars(owner).get(name)
    if not callable(original) or getattr(original, "rlsuite_remembered", False):
        yield
        return
    setattr(owner, name, wrap(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


OPTIMIZER_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
"""The methods of ``torch.optim.Optimizer`` that torch marks with ``torch._disable_dynamo``."""


@contextlib.contextmanager
def optimizer_without_dynamo() -> Iterator[None]:
    """Within the block, the methods of :data:`OPTIMIZER_METHODS` run undecorated.

    torch marks them "not to be traced by TorchDynamo" with ``torch._disable_dynamo``, whose
    wrapper imports TorchDynamo on its first call (~0.9 s on this project's CPU: most of a warm
    start once the fast path's kernels come from the kernel store) to build the marked version,
    and caches that version on the function as ``__dynamo_disable``. Nothing is being compiled
    here (the block is skipped while TorchDynamo traces), so the marked and the plain function
    do the same: the block caches the plain function instead, and removes it on exit, so a later
    call outside the block builds the marked one as torch would. Left alone where TorchDynamo
    is already imported (nothing to save) or where the layout differs (another torch).
    """
    import sys

    import torch

    if "torch._dynamo" in sys.modules or torch.compiler.is_compiling():
        yield
        return
    plain = []
    for name in OPTIMIZER_METHODS:
        raw = getattr(vars(torch.optim.Optimizer).get(name), "__wrapped__", None)
        if callable(raw) and not hasattr(raw, "__dynamo_disable"):
            setattr(raw, "__dynamo_disable", raw)
            plain.append(raw)
    try:
        yield
    finally:
        for raw in plain:
            if getattr(raw, "__dynamo_disable", None) is raw:
                delattr(raw, "__dynamo_disable")
