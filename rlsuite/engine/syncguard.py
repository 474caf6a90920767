"""Catch host synchronisation on any device: what ``torch.cuda.set_sync_debug_mode("error")``
checks on a GPU, as a ``TorchFunctionMode`` that also runs on a CPU-only machine.

Inside :func:`no_host_sync`, every tensor operation that would make the host wait for the device
raises :class:`HostSyncError`: reading values (``item``, ``tolist``, ``bool``/``int``/``float``
of a tensor, ``numpy``), copies to the host (``cpu``, ``to("cpu")`` from another device), and
ops whose output shape depends on the data (``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``). A loop that intends one sync (an early-exit check every few
steps) marks it with :func:`host_sync_point`; nothing else may sync. The engine's collection and
evaluation paths run under it in ``tests/test_fastpath.py`` and ``tests/test_devices.py`` (there
on CUDA under ``torch.cuda.set_sync_debug_mode("error")`` as well, which a marked sync suspends).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_READS = {
    torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__bool__,
    torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__, torch.Tensor.nonzero,
    torch.nonzero, torch.Tensor.masked_select, torch.masked_select, torch.Tensor.unique,
    torch.unique, torch.Tensor.cpu, torch.argwhere, torch.Tensor.argwhere,
}
_ALLOWED = [0]


class HostSyncError(RuntimeError):
    """A tensor operation inside :func:`no_host_sync` would synchronise with the host."""


def _is_bool_mask(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _NoHostSync(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if not _ALLOWED[0]:
            name = getattr(func, "__name__", str(func))
            if func in _READS:
                raise HostSyncError(f"host synchronisation: Tensor.{name}")
            if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and _is_bool_mask(
                args[1]
            ):
                raise HostSyncError(f"host synchronisation: boolean-mask Tensor.{name}")
            if func is torch.Tensor.to and any(
                (isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu")
                for a in (*args[1:], kwargs.get("device"))
                if a is not None and not isinstance(a, torch.dtype)
            ) and args[0].device.type != "cpu":
                raise HostSyncError("host synchronisation: Tensor.to(cpu)")
        return func(*args, **kwargs)


@contextmanager
def no_host_sync() -> Iterator[None]:
    """Raise :class:`HostSyncError` on any host synchronisation inside the block."""
    with _NoHostSync():
        yield


@contextmanager
def host_sync_point() -> Iterator[None]:
    """Mark an intended synchronisation: allowed inside :func:`no_host_sync`, and under
    ``torch.cuda.set_sync_debug_mode("error")`` / ``"warn"`` too (the mode is set to
    ``"default"`` for the block and restored after), so a CUDA test can run a whole evaluation
    under the debug mode and still catch every sync that is not marked."""
    _ALLOWED[0] += 1
    cuda_mode = _suspend_cuda_sync_debug()
    try:
        yield
    finally:
        _ALLOWED[0] -= 1
        if cuda_mode:
            torch.cuda.set_sync_debug_mode(cuda_mode)


def _suspend_cuda_sync_debug() -> int:
    """Turn CUDA's sync debug mode off; return the mode it had (0, "default", changes nothing).
    Without an initialised CUDA context nothing can have set it: nothing is queried then."""
    if not torch.cuda.is_initialized():
        return 0
    mode = torch.cuda.get_sync_debug_mode()
    if mode:
        torch.cuda.set_sync_debug_mode(0)
    return mode
