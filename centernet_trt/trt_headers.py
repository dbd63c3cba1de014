"""TensorRT's public headers, release by release, from a local clone of github.com/NVIDIA/TensorRT.

The DCNv2 plugin compiles against `NvInferRuntime.h` and the headers it includes; NVIDIA publishes them under
`include/` of that repository, one `release/X.Y` branch per release. This extracts the `include/` folder of chosen
releases (TensorRT >= 10: IPluginV3) into `<out>/<X.Y>/include` and prints the `TRT_INCLUDE` value that
`plugin/tests/run_harness.sh` and `tests/test_plugin_build.py` take, so the plugin can be built and its interface
harness run against every release without installing TensorRT. The headers are NVIDIA's: keep them out of commits
(the default output folder is under the ignored `build/`).

    python -m centernet_trt.trt_headers --repo "$TENSORRT_REPO" [--releases latest|all|10.0,11.1] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import UserError, cli
from .fsutil import chmod_as_created
from .patch import gitpython
from .upstream import PROJECT_ROOT

DEFAULT_OUT = PROJECT_ROOT / "build" / "trt-headers"
MIN_MAJOR = 10  # IPluginV3 exists from TensorRT 10.0
_RELEASE = re.compile(r"(?:^|/)release/(\d+(?:\.\d+)+)$")


def header_version(include: str | os.PathLike) -> str:
    """`major.minor` of the headers in `include` (NvInferVersion.h; 10.11+ spell it TRT_*_ENTERPRISE)."""
    path = Path(include) / "NvInferVersion.h"
    try:
        text = path.read_text()
    except OSError:
        raise UserError(f"{path} not found: point at TensorRT's include folder (the one holding NvInferRuntime.h)") \
            from None
    parts = [re.search(rf"#define (?:TRT_{p}_ENTERPRISE|NV_TENSORRT_{p}) +(\d+)", text) for p in ("MAJOR", "MINOR")]
    if not all(parts):
        raise UserError(f"{path} names no TensorRT major/minor version; is this TensorRT's include folder?")
    return ".".join(m.group(1) for m in parts)


def open_repo(path: str | os.PathLike | None):
    """The TensorRT git repository at `path` (a work tree or a bare/mirror git dir)."""
    git = gitpython()
    if not path:
        raise UserError("no TensorRT repository given: set TENSORRT_REPO (or pass --repo) to a local git clone of "
                        "https://github.com/NVIDIA/TensorRT")
    try:
        repo = git.Repo(Path(path).expanduser())
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raise UserError(f"{path} is not a git repository: point TENSORRT_REPO / --repo at a clone of "
                        "https://github.com/NVIDIA/TensorRT") from None
    # A bare git dir without a config file (as mirrors may be) reads as non-bare with the parent folder as work
    # tree; git commands run there would not find it. Only objects are read here, so name the git dir outright.
    repo.git.update_environment(GIT_DIR=repo.git_dir)
    return repo


def releases(repo) -> dict[str, str]:
    """Release name ('10.13.2') -> ref name, for every `release/X.Y[.Z]` branch with X >= 10, oldest first.
    Local branches win over remote-tracking ones of the same release."""
    git = gitpython()
    branches = [r for r in repo.references if isinstance(r, git.Head)]  # local and remote-tracking, no tags
    found: dict[str, str] = {}
    # remote-tracking first, so local heads win (RemoteReference is a Head subclass)
    for ref in sorted(branches, key=lambda r: not isinstance(r, git.RemoteReference)):
        m = _RELEASE.search(ref.name)
        if m and int(m.group(1).split(".")[0]) >= MIN_MAJOR:
            found[m.group(1)] = ref.name
    return dict(sorted(found.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))


def choose(available: dict[str, str], wanted: str) -> list[str]:
    """`latest` (the newest release of each major), `all`, or a comma list of release names."""
    if not available:
        raise UserError(f"the repository has no release/X.Y branches for TensorRT >= {MIN_MAJOR}; fetch them "
                        "(git fetch origin 'refs/heads/release/*:refs/heads/release/*')")
    if wanted == "all":
        return list(available)
    if wanted == "latest":
        newest = {name.split(".")[0]: name for name in available}  # sorted oldest first: the last one wins
        return list(newest.values())
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise UserError(f"no release branch for {', '.join(missing) or repr(wanted)} (this plugin needs TensorRT >= "
                        f"{MIN_MAJOR}); available: {', '.join(available)} (or 'latest', 'all')")
    return names


def extract(repo, ref: str, dest: str | os.PathLike) -> Path:
    """Write the `include/` folder of `ref` to `dest` (all or nothing). An existing `dest` holding the same
    release's headers is kept as it is; one holding anything else is left alone and refused."""
    dest = Path(dest)
    release = _RELEASE.search(ref).group(1)
    want = ".".join(release.split(".")[:2])
    if dest.exists():
        if (dest / "NvInferRuntime.h").is_file() and header_version(dest) == want:
            return dest
        raise UserError(f"{dest} exists and does not hold TensorRT {want}'s headers; remove it or choose "
                        "another --out")
    try:
        tree = repo.commit(ref).tree / "include"
    except KeyError:
        raise UserError(f"{ref} has no include/ folder; is this github.com/NVIDIA/TensorRT?") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for blob in tree.traverse():
            if blob.type != "blob":
                continue
            target = tmp / Path(blob.path).relative_to("include")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.data_stream.read())
        if not (tmp / "NvInferRuntime.h").is_file():
            raise UserError(f"{ref}:include/ has no NvInferRuntime.h; is this github.com/NVIDIA/TensorRT?")
        if header_version(tmp) != want:
            raise UserError(f"{ref}:include/NvInferVersion.h says TensorRT {header_version(tmp)}, not {want}")
        chmod_as_created(tmp, 0o777)  # an ordinary folder (e.g. read by a container)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def extract_releases(repo_path, wanted: str = "latest", out: str | os.PathLike = DEFAULT_OUT) -> dict[str, Path]:
    """Release name -> its include folder under `out`, for the releases `wanted` names (see `choose`)."""
    repo = open_repo(repo_path)
    available = releases(repo)
    return {name: extract(repo, available[name], Path(out) / name / "include") for name in choose(available, wanted)}


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter, and what a user typed)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m centernet_trt.trt_headers", description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", default=os.environ.get("TENSORRT_REPO"),
                   help="local git clone of github.com/NVIDIA/TensorRT (default: $TENSORRT_REPO)")
    p.add_argument("--releases", default="latest",
                   help="'latest' (newest 10.x and 11.x; default), 'all', or names such as 10.0,10.16,11.1")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="writes <out>/<release>/include (default: %(default)s)")
    p.add_argument("--list", action="store_true", help="only list the release branches found")
    return p


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        print(" ".join(releases(open_repo(args.repo))))
        return 0
    found = extract_releases(args.repo, args.releases, args.out)
    for name, path in found.items():
        print(f"TensorRT {name}: {_shown(path)}")
    print(f"TRT_INCLUDE={os.pathsep.join(_shown(p) for p in found.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
