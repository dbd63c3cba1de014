"""`make patch`: apply, idempotence, --check states, dirty-tree refusal, --force saving, conflict rollback."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from centernet_trt import patch, upstream
from centernet_trt.errors import UserError

pytestmark = pytest.mark.upstream
PINNED = upstream.PINNED_COMMIT


@pytest.fixture(scope="module")
def cache(upstream_repo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "CenterNet.git"
    patch.ensure_cache(upstream_repo, path, progress=False)
    return path


@pytest.fixture
def apply(cache):
    """apply_patches with a source that does not exist: everything must come from the cache."""
    def run(tree, **kwargs):
        return patch.apply_patches(tree=tree, source=str(cache.parent / "no-such-upstream"), cache=cache,
                                   progress=False, **kwargs)
    return run


def git(tree, *args) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], check=True, capture_output=True, text=True).stdout.strip()


def snapshot(tree: Path) -> dict:
    """Everything a user could lose: HEAD, branches, stashes and every file's bytes outside .git."""
    files = {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(tree).parts}
    return {"head": git(tree, "rev-parse", "HEAD"), "refs": git(tree, "for-each-ref"),
            "status": git(tree, "status", "--porcelain"), "files": files}


def test_apply_makes_reviewable_commits_then_is_idempotent(tmp_path, apply, capsys):
    tree = tmp_path / "CenterNet"
    assert apply(tree).name == patch.FULL
    subjects = git(tree, "log", "--format=%s", f"{PINNED}..HEAD").splitlines()[::-1]
    patches = patch.patch_files()
    assert len(subjects) == len(patches) + 1
    assert subjects[-1] == patch.OVERLAY_SUBJECT
    assert subjects[:-1] == [patch._subject(p) for p in patches]
    assert (tree / upstream.OVERLAY_MARKER).is_file()
    assert "from .dcn import ModulatedDeformConvPack as DCN" in \
        (tree / "src/lib/models/networks/resnet_dcn.py").read_text()
    assert git(tree, "status", "--porcelain") == ""

    before = snapshot(tree)
    capsys.readouterr()
    assert apply(tree).name == patch.FULL
    assert "already patched, nothing to do" in capsys.readouterr().out
    assert snapshot(tree) == before


def test_check_states_and_exit_codes(tmp_path, apply, cache, capsys):
    tree = tmp_path / "CenterNet"
    assert patch.main(["--check", "--tree", str(tree)]) == 3
    assert "not cloned" in capsys.readouterr().out

    subprocess.run(["git", "clone", "-q", "--no-checkout", str(cache), str(tree)], check=True)
    git(tree, "checkout", "-q", PINNED)
    assert patch.main(["--check", "--tree", str(tree)]) == 4
    assert "clean upstream" in capsys.readouterr().out

    apply(tree)
    assert patch.main(["--check", "--tree", str(tree)]) == 0
    assert "fully patched" in capsys.readouterr().out

    git(tree, "reset", "-q", "--hard", "HEAD~2")
    assert patch.main(["--check", "--tree", str(tree)]) == 5
    assert "partially patched" in capsys.readouterr().out
    assert apply(tree).name == patch.FULL  # a partial tree (only our commits) is completed

    (tree / "README.md").write_text("edited\n")
    assert patch.main(["--check", "--tree", str(tree)]) == 6
    assert "locally modified" in capsys.readouterr().out
    git(tree, "checkout", "-q", "--", "README.md")

    git(tree, "-c", "user.name=someone", "-c", "user.email=someone@example.com",
        "commit", "-q", "--allow-empty", "-m", "my own work")
    assert patch.check_state(tree).name == patch.MODIFIED


def test_check_changes_nothing(tmp_path, apply):
    tree = tmp_path / "CenterNet"
    apply(tree)
    (tree / "src/lib/opts.py").write_text("changed\n")
    before = snapshot(tree)
    patch.main(["--check", "--tree", str(tree)])
    assert snapshot(tree) == before


def test_dirty_tree_refused_then_force_saves_work(tmp_path, apply, capsys):
    tree = tmp_path / "CenterNet"
    apply(tree)
    opts = tree / "src/lib/opts.py"
    opts.write_text(opts.read_text() + "# my tweak\n")
    (tree / "notes.txt").write_text("untracked work\n")
    before = snapshot(tree)

    with pytest.raises(UserError, match="--force"):
        apply(tree)
    assert snapshot(tree) == before  # refused: nothing touched

    capsys.readouterr()
    assert apply(tree, force=True).name == patch.FULL
    out = capsys.readouterr().out
    assert "stash" in out and "centernet-trt-backup-" in out
    assert "# my tweak" not in opts.read_text() and not (tree / "notes.txt").exists()
    # the work is in the stash (tracked change + untracked file) and the old HEAD on the backup branch
    assert "# my tweak" in git(tree, "stash", "show", "-p", "stash@{0}")
    assert git(tree, "show", "stash@{0}^3:notes.txt") == "untracked work"
    backups = git(tree, "branch", "--list", "centernet-trt-backup-*").split()
    assert backups and git(tree, "rev-parse", backups[-1]) == before["head"]


def _conflicting_patches(tmp_path: Path) -> Path:
    """patches/ plus one patch whose context is not in the tree (opts.py after the real patches)."""
    directory = tmp_path / "patches"
    directory.mkdir()
    for p in patch.patch_files():
        shutil.copy(p, directory / p.name)
    (directory / "0099-conflict.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Test <test@example.com>\n"
        "Date: Thu, 1 Jan 2026 00:00:00 +0000\n"
        "Subject: [PATCH] conflict\n\n"
        "---\n"
        " src/lib/opts.py | 2 +-\n\n"
        "diff --git a/src/lib/opts.py b/src/lib/opts.py\n"
        "--- a/src/lib/opts.py\n"
        "+++ b/src/lib/opts.py\n"
        "@@ -1,3 +1,3 @@\n"
        " from __future__ import absolute_import\n"
        "-this line is not in upstream\n"
        "+replacement\n"
        " from __future__ import print_function\n"
        "-- \n2.39.0\n\n")
    return directory


def test_conflicting_patch_names_files_and_leaves_tree_untouched(tmp_path, apply):
    tree = tmp_path / "CenterNet"
    apply(tree)
    git(tree, "reset", "-q", "--hard", "HEAD~1")  # partially patched: the run will have work to do
    before = snapshot(tree)
    bad = _conflicting_patches(tmp_path)
    with pytest.raises(UserError) as info:
        apply(tree, patches=bad)
    message = str(info.value)
    assert "0099-conflict.patch" in message and "src/lib/opts.py" in message
    assert snapshot(tree) == before
    assert not (tree / ".git" / "rebase-apply").exists()


def test_conflict_on_fresh_tree_leaves_nothing(tmp_path, apply):
    tree = tmp_path / "CenterNet"
    with pytest.raises(UserError, match="0099-conflict.patch"):
        apply(tree, patches=_conflicting_patches(tmp_path))
    assert not tree.exists()


def test_cli_reports_user_errors_on_one_line(tmp_path):
    res = subprocess.run([sys.executable, str(upstream.PROJECT_ROOT / "apply_patches.py"), "--check",
                          "--tree", str(tmp_path / "t"), "--patches", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.startswith("error: patch directory") and res.stderr.count("\n") == 1


def test_cli_check_exit_code(tmp_path):
    res = subprocess.run([sys.executable, str(upstream.PROJECT_ROOT / "apply_patches.py"), "--check",
                          "--tree", str(tmp_path / "nothing-here")], capture_output=True, text=True)
    assert res.returncode == 3 and res.stdout.startswith("not cloned")


def test_changed_overlay_is_detected_and_reinstalled(tmp_path, apply, monkeypatch):
    tree = tmp_path / "CenterNet"
    apply(tree)
    overlay = tmp_path / "overlay"
    shutil.copytree(patch.overlay_dir(), overlay, ignore=shutil.ignore_patterns("__pycache__"))
    flat = overlay / "src/lib/models/flat_heads.py"
    flat.write_text(flat.read_text() + "# changed\n")
    monkeypatch.setenv("CENTERNET_OVERLAY", str(overlay))
    assert patch.check_state(tree).name == patch.PARTIAL
    assert apply(tree).name == patch.FULL
    assert (tree / "src/lib/models/flat_heads.py").read_text().endswith("# changed\n")
    assert len(git(tree, "log", "--format=%s", f"{PINNED}..HEAD").splitlines()) == len(patch.patch_files()) + 1
