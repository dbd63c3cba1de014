"""Where upstream CenterNet comes from, where the patched tree lives, and how to import from it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import UserError

UPSTREAM_URL = "https://github.com/xingyizhou/CenterNet"
PINNED_COMMIT = "4c50fd3a46bdf63dbf2082c5cbb3458d39579e6c"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A file the overlay installs; its presence (with the patch commits) marks a patched tree.
OVERLAY_MARKER = Path("src/lib/models/networks/dcn/__init__.py")


def repo_source() -> str:
    """Upstream to clone: ``CENTERNET_REPO`` (URL or local git dir) or GitHub."""
    return os.environ.get("CENTERNET_REPO") or UPSTREAM_URL


def cache_dir() -> Path:
    """Bare clone cache, so later runs work offline (``CENTERNET_CACHE`` overrides)."""
    env = os.environ.get("CENTERNET_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "centernet-trt" / "CenterNet.git"


def default_tree() -> Path:
    """The patched work tree (``CENTERNET_TREE`` overrides; default ``build/CenterNet``)."""
    env = os.environ.get("CENTERNET_TREE")
    return Path(env).expanduser() if env else PROJECT_ROOT / "build" / "CenterNet"


def lib_dir(tree: Path) -> Path:
    return Path(tree) / "src" / "lib"


def require_patched(tree: Path | None = None) -> Path:
    """Return the patched tree, or fail with the command that makes it."""
    tree = Path(tree) if tree else default_tree()
    if not (tree / OVERLAY_MARKER).is_file():
        raise UserError(f"no patched CenterNet tree at {tree}: run `make patch` "
                        f"(or `python apply_patches.py --tree {tree}`) first")
    return tree


def import_tree(tree: Path | None = None) -> Path:
    """Put the patched tree's ``src/lib`` first on ``sys.path`` (upstream imports ``models.*``, ``utils.*``)."""
    tree = require_patched(tree)
    lib = str(lib_dir(tree).resolve())
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return tree
