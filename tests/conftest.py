"""Shared fixtures: the upstream CenterNet source and a patched tree made from it once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from centernet_trt import upstream


def _upstream_source() -> str | None:
    """A local upstream git dir: ``CENTERNET_REPO`` if it is a path, else the clone cache if present."""
    env = os.environ.get("CENTERNET_REPO")
    if env and Path(env).exists():
        return env
    cache = upstream.cache_dir()
    if (cache / "HEAD").exists() or (cache / ".git").exists():
        return str(cache)
    return None


@pytest.fixture(scope="session")
def upstream_repo() -> str:
    src = _upstream_source()
    if src is None:
        pytest.skip("upstream CenterNet not available offline: set CENTERNET_REPO=<local git dir> "
                    f"or run `make patch` once with network to fill the cache at {upstream.cache_dir()}")
    return src


@pytest.fixture(scope="session")
def patched_tree(upstream_repo, tmp_path_factory) -> Path:
    """A fully patched tree (made by our own apply step), with its ``src/lib`` importable."""
    from centernet_trt import patch

    root = tmp_path_factory.mktemp("centernet")
    tree = root / "CenterNet"
    patch.apply_patches(tree=tree, source=upstream_repo, cache=root / "cache.git", progress=False)
    upstream.import_tree(tree)
    return tree
