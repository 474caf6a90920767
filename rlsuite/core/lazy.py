"""Lazy re-exports for a package ``__init__.py`` (PEP 562), so that importing a package to read its
registration does not import its modules."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any],
                                                                  Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a public name to
    the submodule (relative, e.g. ``".solver"``) that defines it; the submodule is imported on the
    first access of the name. Use as ``__getattr__, __dir__ = lazy_exports(__name__, {...})``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
