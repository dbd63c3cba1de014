"""`make patch`: upstream CenterNet at the pinned commit + ``patches/`` as commits + ``overlay/`` as a last commit.

Steps: bare clone cache (offline after the first run) -> work tree at the pinned commit on branch
``centernet-trt`` -> ``git am`` each patch (one commit each) -> copy ``overlay/`` and commit it.
``--check`` reports the state without changing anything; see ``State`` for the exit codes.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import upstream
from .errors import UserError, cli

BRANCH = "centernet-trt"
OVERLAY_SUBJECT = "centernet-trt overlay: compile-free DCN and export helpers"
# Fixed identity and dates: works without a user git config, and the same inputs give the same commits.
IDENTITY = {
    "GIT_AUTHOR_NAME": "centernet-trt", "GIT_AUTHOR_EMAIL": "centernet-trt@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "centernet-trt", "GIT_COMMITTER_EMAIL": "centernet-trt@users.noreply.github.com",
}
FIXED_DATE = "2000-01-01T00:00:00+0000"
# Written by imports/exports inside the tree; never counted as local changes.
LOCAL_EXCLUDES = ("__pycache__/", "*.py[cod]", "/exp/")


@dataclass(frozen=True)
class State:
    """Tree state reported by ``--check``; ``code`` is its exit status."""
    name: str
    code: int
    detail: str = ""


NOT_CLONED, CLEAN, FULL, PARTIAL, MODIFIED = "not cloned", "clean upstream", "fully patched", \
    "partially patched", "locally modified"
EXIT_CODES = {FULL: 0, NOT_CLONED: 3, CLEAN: 4, PARTIAL: 5, MODIFIED: 6}


def _state(name: str, detail: str = "") -> State:
    return State(name, EXIT_CODES[name], detail)


def patches_dir() -> Path:
    """``patches/`` of this project (``CENTERNET_PATCHES`` overrides, e.g. for tests)."""
    env = os.environ.get("CENTERNET_PATCHES")
    return Path(env).expanduser() if env else upstream.PROJECT_ROOT / "patches"


def overlay_dir() -> Path:
    env = os.environ.get("CENTERNET_OVERLAY")
    return Path(env).expanduser() if env else upstream.PROJECT_ROOT / "overlay"


def patch_files(directory: Path | None = None) -> list[Path]:
    directory = Path(directory) if directory else patches_dir()
    if not directory.is_dir():
        raise UserError(f"patch directory {directory} not found; pass --patches DIR or unset CENTERNET_PATCHES")
    return sorted(directory.glob("*.patch"))


def overlay_files(directory: Path | None = None) -> list[Path]:
    """Overlay files relative to the overlay root (no byte-code)."""
    root = Path(directory) if directory else overlay_dir()
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"))


# ---------------------------------------------------------------- git plumbing
def gitpython():
    """The GitPython module, imported on first use: a missing install is a UserError naming the fix."""
    try:
        import git
    except ImportError:
        raise UserError("GitPython is missing: install this package (`make install`)") from None
    return git


def _progress(enabled: bool):
    """A GitPython RemoteProgress drawing a tqdm bar per clone stage, or None."""
    if not enabled:
        return None
    git = gitpython()
    from tqdm import tqdm

    class TqdmProgress(git.RemoteProgress):
        NAMES = {git.RemoteProgress.COUNTING: "counting", git.RemoteProgress.COMPRESSING: "compressing",
                 git.RemoteProgress.RECEIVING: "receiving", git.RemoteProgress.RESOLVING: "resolving",
                 git.RemoteProgress.WRITING: "writing", git.RemoteProgress.FINDING_SOURCES: "finding sources",
                 git.RemoteProgress.CHECKING_OUT: "checking out"}

        def __init__(self):
            super().__init__()
            self.bar, self.op = None, None

        def update(self, op_code, cur_count, max_count=None, message=""):
            op = op_code & self.OP_MASK
            if self.bar is None or op != self.op:  # one bar per stage of the clone
                self._close()
                self.bar = tqdm(total=int(max_count) if max_count else None, unit="obj", leave=False,
                                desc=f"clone: {self.NAMES.get(op, 'objects')}")
                self.op = op
            self.bar.update(int(cur_count) - self.bar.n)
            if message:
                self.bar.set_postfix_str(message.strip(", "), refresh=False)
            if op_code & self.END:
                self._close()

        def _close(self):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return TqdmProgress()


def _has_commit(repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
        return True
    except gitpython().GitCommandError:
        return False


def ensure_cache(source: str, cache: Path, progress: bool = True):
    """A bare clone of ``source`` at ``cache`` holding the pinned commit; network only if it lacks it."""
    git = gitpython()
    cache = Path(cache)
    if (cache / "HEAD").exists():
        repo = git.Repo(cache)
        if _has_commit(repo, upstream.PINNED_COMMIT):
            return repo
        print(f"updating clone cache {cache} from {source}")
        try:
            repo.git.fetch(source, "+refs/heads/*:refs/heads/*", "--tags", progress=_progress(progress))
        except git.GitCommandError as exc:
            raise UserError(f"cannot fetch {source} into {cache}: {_first_error(exc)}; check the network "
                            "or set CENTERNET_REPO=<local CenterNet git dir>") from None
    else:
        print(f"cloning {source} into cache {cache}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            repo = git.Repo.clone_from(source, cache, bare=True, progress=_progress(progress))
        except git.GitCommandError as exc:
            shutil.rmtree(cache, ignore_errors=True)
            raise UserError(f"cannot clone {source}: {_first_error(exc)}; check the network or set "
                            "CENTERNET_REPO=<URL or local CenterNet git dir>") from None
    if not _has_commit(repo, upstream.PINNED_COMMIT):
        raise UserError(f"{source} does not contain the pinned commit {upstream.PINNED_COMMIT}; "
                        "point CENTERNET_REPO at xingyizhou/CenterNet")
    return repo


def _first_error(exc) -> str:
    text = (getattr(exc, "stderr", "") or str(exc)).strip()
    lines = [ln.strip().strip("'").strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("fatal:", "error:")):
            return ln
    return lines[-1] if lines else str(exc)


def _open_tree(tree: Path):
    git = gitpython()
    try:
        return git.Repo(tree)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _patch_id(repo, text: str) -> str:
    """``git patch-id --stable`` of a patch or ``git show`` text (content identity, ignoring line numbers)."""
    res = subprocess.run(["git", "patch-id", "--stable"], input=text.encode(), cwd=repo.working_dir or repo.git_dir,
                         capture_output=True, check=True)
    return res.stdout.decode().split(" ")[0]


def _subject(patch: Path) -> str:
    text = patch.read_text(errors="replace")
    m = re.search(r"^Subject: (.*(?:\n [^\n]*)*)", text, re.M)
    subject = re.sub(r"\s*\n\s*", " ", m.group(1)) if m else patch.stem
    return re.sub(r"^\[PATCH[^\]]*\]\s*", "", subject).strip()


# ---------------------------------------------------------------- state
def check_state(tree: Path | None = None, patches: Path | None = None) -> State:
    """Classify ``tree`` without changing it."""
    tree = Path(tree) if tree else upstream.default_tree()
    patch_list = patch_files(patches)
    repo = _open_tree(tree)
    if repo is None or not repo.head.is_valid():
        return _state(NOT_CLONED, f"no CenterNet work tree at {tree}")
    if repo.working_tree_dir is None or Path(repo.working_tree_dir).resolve() != tree.resolve():
        return _state(NOT_CLONED, f"{tree} is inside another git repository, not a CenterNet work tree")
    if not _has_commit(repo, upstream.PINNED_COMMIT) or not repo.is_ancestor(upstream.PINNED_COMMIT, "HEAD"):
        return _state(MODIFIED, f"HEAD of {tree} does not descend from the pinned commit {upstream.PINNED_COMMIT[:12]}")
    dirty = _local_changes(repo)
    if dirty:
        return _state(MODIFIED, f"uncommitted changes in {tree}: {', '.join(dirty[:5])}"
                                + (" ..." if len(dirty) > 5 else ""))
    commits = list(repo.iter_commits(f"{upstream.PINNED_COMMIT}..HEAD", reverse=True))
    if not commits:
        return _state(CLEAN, f"{tree} is upstream {upstream.PINNED_COMMIT[:12]} with no patches")
    foreign = [c for c in commits if c.committer.email != IDENTITY["GIT_COMMITTER_EMAIL"]]
    if foreign:
        return _state(MODIFIED, f"{len(foreign)} commit(s) not made by apply_patches (e.g. {foreign[0].hexsha[:12]} "
                                f"{foreign[0].summary!r})")
    matched = _matching_steps(repo, commits, patch_list)
    steps = len(patch_list) + 1
    if matched == steps and len(commits) == steps:
        return _state(FULL, f"{tree}: {steps - 1} patches + overlay on {upstream.PINNED_COMMIT[:12]}")
    return _state(PARTIAL, f"{tree}: {matched} of {steps} steps match patches/ and overlay/ "
                           f"({len(commits)} commits on the pinned commit); run `make patch` to bring it up to date")


def _local_changes(repo) -> list[str]:
    changed = [d.a_path for d in repo.index.diff(None)] + [d.a_path for d in repo.index.diff("HEAD")]
    return sorted(set(changed)) + repo.untracked_files


def _matching_steps(repo, commits, patches: list[Path]) -> int:
    """How many leading commits equal patches/ (by patch-id) followed by the overlay commit."""
    n = 0
    for commit, patch in zip(commits, patches):
        if _patch_id(repo, repo.git.show(commit.hexsha, "--format=", "--no-color"))\
                != _patch_id(repo, patch.read_text(errors="replace")):
            return n
        n += 1
    if n == len(patches) and len(commits) > n and _overlay_matches(repo, commits[n]):
        n += 1
    return n


def _overlay_matches(repo, commit) -> bool:
    if commit.summary != OVERLAY_SUBJECT:
        return False
    root = overlay_dir()
    changed = set(repo.git.diff_tree("--no-commit-id", "--name-only", "-r", commit.hexsha).splitlines())
    if changed != {rel.as_posix() for rel in overlay_files(root)}:
        return False
    for rel in overlay_files(root):
        try:
            blob = commit.tree / rel.as_posix()
        except KeyError:
            return False
        if blob.data_stream.read() != (root / rel).read_bytes():
            return False
    return True


# ---------------------------------------------------------------- apply
def apply_patches(tree: Path | None = None, source: str | None = None, cache: Path | None = None,
                  progress: bool = True, patches: Path | None = None, force: bool = False) -> State:
    """Make ``tree`` fully patched; returns the final state. Never loses local work (see ``--force``)."""
    tree = Path(tree) if tree else upstream.default_tree()
    patch_list = patch_files(patches)
    state = check_state(tree, patches)
    if state.name == FULL:
        print(f"already patched, nothing to do ({state.detail})")
        return state
    if state.name == MODIFIED and not force:
        raise UserError(f"{state.detail}; refusing to touch local work: commit or remove it, "
                        "or rerun with --force (changes are saved to a stash/backup branch first)")

    if state.name in (CLEAN, PARTIAL):
        print(f"{state.name}: {state.detail.split('; run')[0]}; (re)applying on {upstream.PINNED_COMMIT[:12]}")
    fresh, existed = state.name == NOT_CLONED, tree.exists()
    repo = _open_tree(tree)
    if state.name == NOT_CLONED:
        if tree.exists() and any(tree.iterdir()):
            raise UserError(f"{tree} exists and is not a CenterNet work tree; remove it or pass --tree DIR")
        cache_repo = ensure_cache(source or upstream.repo_source(), Path(cache) if cache else upstream.cache_dir(),
                                  progress)
        print(f"checking out {upstream.PINNED_COMMIT[:12]} into {tree}")
        repo = gitpython().Repo.clone_from(cache_repo.git_dir, tree, no_checkout=True)
        repo.git.checkout("-B", BRANCH, upstream.PINNED_COMMIT)
    _exclude_local_noise(repo)

    start = repo.head.commit.hexsha
    stash = backup = None
    if state.name == MODIFIED:
        stash, backup = _save_local_work(repo)
    try:
        repo.git.reset("--hard", upstream.PINNED_COMMIT)
        _am_all(repo, patch_list)
        _commit_overlay(repo)
    except BaseException:
        _restore(repo, start, stash, (tree, existed) if fresh else None)
        raise
    final = check_state(tree, patches)
    print(f"{final.name}: {final.detail}")
    print(f"review the commits with: git -C {tree} log --stat {upstream.PINNED_COMMIT[:12]}..HEAD")
    return final


def _exclude_local_noise(repo):
    exclude = Path(repo.git_dir) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    missing = [p for p in LOCAL_EXCLUDES if p not in text.splitlines()]
    if missing:
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n")
                           + "# centernet-trt: build noise\n" + "\n".join(missing) + "\n")


def _save_local_work(repo):
    """--force: keep uncommitted changes in a stash and the current HEAD on a backup branch; say where."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = f"centernet-trt-backup-{stamp}"
    repo.git.branch(backup, "HEAD")
    print(f"saved the current HEAD {repo.head.commit.hexsha[:12]} as branch {backup!r} "
          f"(restore: git -C {repo.working_tree_dir} reset --hard {backup})")
    stash = None
    if _local_changes(repo):
        with repo.git.custom_environment(**IDENTITY):
            repo.git.stash("push", "--include-untracked", "-m", f"centernet-trt --force {stamp}")
        stash = repo.git.rev_parse("stash@{0}")
        print(f"saved uncommitted changes as stash {stash[:12]} 'centernet-trt --force {stamp}' "
              f"(restore: git -C {repo.working_tree_dir} stash apply {stash[:12]})")
    return stash, backup


def _am_all(repo, patch_list: list[Path]):
    git = gitpython()
    env = dict(IDENTITY, GIT_COMMITTER_DATE=FIXED_DATE)
    for i, patch in enumerate(patch_list, 1):
        print(f"[{i}/{len(patch_list)}] applying {patch.name}")
        try:
            with repo.git.custom_environment(**env):
                repo.git.am("--committer-date-is-author-date", "--keep-cr", str(patch.resolve()))
        except git.GitCommandError as exc:
            failing = _failing_file(exc)
            raise UserError(f"patch {patch} does not apply to {upstream.PINNED_COMMIT[:12]}"
                            + (f" (failing file: {failing})" if failing else "")
                            + f": {_first_error(exc)}; the tree was left as it was. Fix or regenerate the patch "
                              "(git format-patch against the pinned commit)") from None


def _failing_file(exc) -> str:
    text = f"{getattr(exc, 'stderr', '')}\n{getattr(exc, 'stdout', '')}"
    for pattern in (r"patch failed: ([^:\s]+):\d+", r"error: ([^:\s]+): does not exist in index",
                    r"error: ([^:\s]+): already exists", r"error: ([^:\s]+): patch does not apply"):
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return ""


def _commit_overlay(repo):
    root = overlay_dir()
    files = overlay_files(root)
    if not files:
        raise UserError(f"overlay directory {root} has no files; the project checkout is incomplete")
    dest = Path(repo.working_tree_dir)
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
    print(f"installing overlay: {len(files)} files")
    repo.index.add([rel.as_posix() for rel in files])
    message = OVERLAY_SUBJECT + "\n\nFiles copied from the centernet-trt overlay/ directory:\n" + \
        "".join(f"  {rel.as_posix()}\n" for rel in files)
    with repo.git.custom_environment(**IDENTITY, GIT_AUTHOR_DATE=FIXED_DATE, GIT_COMMITTER_DATE=FIXED_DATE):
        repo.git.commit("--no-verify", "-q", "-m", message)


def _restore(repo, start: str, stash: str | None, fresh_tree: tuple[Path, bool] | None):
    """Put the tree back exactly as it was before this run."""
    git = gitpython()
    if (Path(repo.git_dir) / "rebase-apply").exists():
        try:
            repo.git.am("--abort")
        except git.GitCommandError:
            pass
    if fresh_tree is not None:  # made by this run: remove it (keep an empty dir the user had made)
        tree, existed = fresh_tree
        shutil.rmtree(tree, ignore_errors=True)
        if existed:
            tree.mkdir()
        return
    repo.git.reset("--hard", start)
    repo.git.clean("-fdq")
    if stash:
        repo.git.stash("pop", "--index")


# ---------------------------------------------------------------- CLI
@cli
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="apply_patches.py",
        description="Check out upstream CenterNet at the pinned commit, apply patches/ as commits, install overlay/.",
        epilog="--check exit codes: 0 fully patched, 3 not cloned, 4 clean upstream, 5 partially patched, "
               "6 locally modified; 2 is a usage/user error. Environment: CENTERNET_REPO (URL or local git dir), "
               "CENTERNET_CACHE, CENTERNET_TREE, CENTERNET_PATCHES.")
    parser.add_argument("--tree", type=Path, default=None, help="work tree (default: build/CenterNet)")
    parser.add_argument("--source", default=None, help="upstream URL or local git dir (default: CENTERNET_REPO or GitHub)")
    parser.add_argument("--cache", type=Path, default=None, help="bare clone cache (default: CENTERNET_CACHE or ~/.cache)")
    parser.add_argument("--patches", type=Path, default=None, help="patch directory (default: patches/)")
    parser.add_argument("--check", action="store_true", help="report the tree's state, change nothing")
    parser.add_argument("--force", action="store_true",
                        help="patch a locally modified tree after saving its changes (stash + backup branch)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.check:
        state = check_state(args.tree, args.patches)
        print(f"{state.name}: {state.detail}")
        return state.code
    apply_patches(tree=args.tree, source=args.source, cache=args.cache, progress=not args.no_progress,
                  patches=args.patches, force=args.force)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
