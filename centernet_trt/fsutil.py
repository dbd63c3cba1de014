"""File helpers: atomic output (a failed step leaves no partial file behind) and content digests."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from .errors import UserError


def chmod_as_created(path: str | os.PathLike, base: int = 0o666) -> None:
    """Give a mkstemp/mkdtemp result (0600/0700) the mode an ordinary open/mkdir would: base minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, base & ~umask)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose a writable output path") from None
    os.close(fd)
    try:
        yield Path(tmp)
        chmod_as_created(tmp)  # the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
