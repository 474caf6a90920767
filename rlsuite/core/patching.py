"""Replace one attribute of a torch internal for the length of a block, and put it back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def patched(owner: Any, name: str,
            wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Within the block, ``owner.name`` is ``wrap(original)``; the original is restored on exit
    (also on an error). Left alone where ``owner`` has no such callable (another torch) or
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
