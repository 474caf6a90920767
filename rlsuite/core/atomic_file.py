"""Replace a file atomically: write a temporary file beside it, then rename it over the old one.

A reader (or a run resumed after ``kill -9``) sees the old file or the new one, never half of
either: ``os.replace`` within one directory is atomic on POSIX. The temporary file is named
``.<name>.<random>.tmp``, so :func:`remove_stale_temps` recognises the ones a killed process
left behind (``kill -9``: no cleanup runs); any other error while writing removes it. It sits in
the lowest layer (no rlsuite imports) so the env kernels' cache and the run records share it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def replaced_atomically(path: str | Path, mode: str = "w", *, durable: bool = False,
                        **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Yield a file opened with ``mode`` ("w" or "wb") that replaces ``path`` when the block
    ends without an exception (the parent directory is created). ``durable``: flush and fsync
    before the rename, so the new content survives a power loss, not only a killed process
    (checkpoints and datasets; small records do without the cost). ``open_kwargs`` go to
    :func:`open` (``newline=""`` for csv)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"replaced_atomically: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Replace ``path``'s content with ``text`` atomically (see the module doc); return the path."""
    with replaced_atomically(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def remove_stale_temps(directory: str | Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory`` (those of the files
    ``names`` only; None: all of them) and return what was removed. Call it only where no other
    process writes those files (a run's own directory, when it starts or resumes)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    patterns = [f".{name}.*.tmp" for name in names] if names is not None else [".*.tmp"]
    stale = sorted({p for pattern in patterns for p in directory.glob(pattern)})
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
