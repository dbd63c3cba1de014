"""centernet_trt.trt_headers: release headers out of a TensorRT git clone, all or nothing, never over a user's folder.

Runs on a small git repository made here with the layout of github.com/NVIDIA/TensorRT (release/X.Y branches with
include/NvInferVersion.h in both spellings TensorRT has used); with TENSORRT_REPO set, also on the real one.
"""
from __future__ import annotations

import os

import git
import pytest

from centernet_trt import trt_headers
from centernet_trt.errors import UserError

OLD_STYLE = "#define NV_TENSORRT_MAJOR {0} //!< major\n#define NV_TENSORRT_MINOR {1} //!< minor\n"
NEW_STYLE = ("#define TRT_MAJOR_ENTERPRISE {0}\n#define TRT_MINOR_ENTERPRISE {1}\n"
             "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE\n#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n")


@pytest.fixture(scope="module")
def fake_repo(tmp_path_factory):
    """release/9.3 (too old), 10.0, 10.13.2, 10.16 and 11.1 (new-style version macros, a nested header), a
    remote-tracking copy of 10.0 pointing at other content (the local branch must win), one branch without include/
    and one whose headers claim another version."""
    root = tmp_path_factory.mktemp("TensorRT")
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "t").set_value("user", "email", "t@example.com")
    (root / "README.md").write_text("TensorRT OSS\n")
    repo.index.add(["README.md"])
    base = repo.index.commit("init")

    def release(name, major, minor, style=OLD_STYLE, runtime=True, extra=None, include=True, branch=None):
        head = repo.create_head(branch or f"release/{name}", base)
        head.checkout()
        files = {}
        if include:
            files["include/NvInferVersion.h"] = style.format(major, minor)
            if runtime:
                files["include/NvInferRuntime.h"] = f"// runtime {name}\n"
            files.update(extra or {})
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        if files:
            repo.index.add(list(files))
        commit = repo.index.commit(f"release {name}")
        repo.heads.main.checkout()  # takes the branch's files out of the work tree again
        return commit

    release("9.3", 9, 3)
    release("10.0", 10, 0)
    release("10.13.2", 10, 13)
    release("10.16", 10, 16, NEW_STYLE)
    release("11.1", 11, 1, NEW_STYLE, extra={"include/impl/NvInferPluginBase.h": "// nested\n"})
    release("10.7", 10, 7, include=False)
    release("10.8", 10, 9)  # its NvInferVersion.h says 10.9
    # A remote-tracking release/10.0 with other content: local heads win.
    other = release("10.0-remote", 10, 0, extra={"include/Remote.h": "//\n"}, branch="tmp-remote")
    repo.create_remote("origin", "https://example.invalid/TensorRT.git")
    for name in ("10.0", "10.5"):  # as `git fetch origin` would have made them
        repo.git.update_ref(f"refs/remotes/origin/release/{name}", other.hexsha)
    return root


def test_lists_only_plugin_capable_releases_oldest_first(fake_repo):
    available = trt_headers.releases(trt_headers.open_repo(fake_repo))
    assert list(available) == ["10.0", "10.5", "10.7", "10.8", "10.13.2", "10.16", "11.1"]
    assert available["10.0"] == "release/10.0"  # the local branch, not origin/release/10.0
    assert available["10.5"] == "origin/release/10.5"


def test_choose_latest_all_and_names(fake_repo):
    available = trt_headers.releases(trt_headers.open_repo(fake_repo))
    assert trt_headers.choose(available, "latest") == ["10.16", "11.1"]
    assert trt_headers.choose(available, "all") == list(available)
    assert trt_headers.choose(available, "11.1, 10.0") == ["11.1", "10.0"]
    with pytest.raises(UserError, match=r"no release branch for 9\.3.*TensorRT >= 10.*available: 10\.0"):
        trt_headers.choose(available, "9.3")
    with pytest.raises(UserError, match="no release/X.Y branches"):
        trt_headers.choose({}, "latest")


def test_extract_writes_the_release_headers(fake_repo, tmp_path):
    repo = trt_headers.open_repo(fake_repo)
    dest = trt_headers.extract(repo, "release/11.1", tmp_path / "11.1" / "include")
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "NvInferRuntime.h", "NvInferVersion.h", "impl/NvInferPluginBase.h"]
    assert (dest / "NvInferRuntime.h").read_text() == "// runtime 11.1\n"
    assert trt_headers.header_version(dest) == "11.1"
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    old = trt_headers.extract(repo, "release/10.0", tmp_path / "10.0" / "include")
    assert trt_headers.header_version(old) == "10.0" and not (old / "Remote.h").exists()
    patch = trt_headers.extract(repo, "release/10.13.2", tmp_path / "10.13.2" / "include")
    assert trt_headers.header_version(patch) == "10.13"
    # Again: the same release's folder is kept as it is (a user's file in it survives).
    (dest / "mine.txt").write_text("keep")
    assert trt_headers.extract(repo, "release/11.1", dest) == dest and (dest / "mine.txt").read_text() == "keep"


def test_extract_refuses_without_leaving_anything(fake_repo, tmp_path):
    repo = trt_headers.open_repo(fake_repo)
    with pytest.raises(UserError, match="has no include/"):
        trt_headers.extract(repo, "release/10.7", tmp_path / "a" / "include")
    with pytest.raises(UserError, match="says TensorRT 10.9, not 10.8"):
        trt_headers.extract(repo, "release/10.8", tmp_path / "b" / "include")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a failed extraction left files behind"
    # A folder that holds something else is never overwritten.
    mine = tmp_path / "c" / "include"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("user data")
    with pytest.raises(UserError, match="exists and does not hold TensorRT 10.16's headers; remove it"):
        trt_headers.extract(repo, "release/10.16", mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_header_version_reads_both_spellings_and_rejects_other_folders(tmp_path):
    (tmp_path / "NvInferVersion.h").write_text(OLD_STYLE.format(10, 3))
    assert trt_headers.header_version(tmp_path) == "10.3"
    (tmp_path / "NvInferVersion.h").write_text(NEW_STYLE.format(11, 0))
    assert trt_headers.header_version(tmp_path) == "11.0"
    (tmp_path / "NvInferVersion.h").write_text("#define SOMETHING 1\n")
    with pytest.raises(UserError, match="names no TensorRT major/minor"):
        trt_headers.header_version(tmp_path)
    with pytest.raises(UserError, match="not found: point at TensorRT's include folder"):
        trt_headers.header_version(tmp_path / "nowhere")


def test_cli(fake_repo, tmp_path, capsys):
    out = tmp_path / "headers"
    assert trt_headers.main(["--repo", str(fake_repo), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"TRT_INCLUDE={out / '10.16' / 'include'}{os.pathsep}{out / '11.1' / 'include'}"
    assert trt_headers.main(["--repo", str(fake_repo), "--list"]) == 0
    assert capsys.readouterr().out.split() == ["10.0", "10.5", "10.7", "10.8", "10.13.2", "10.16", "11.1"]
    for argv, message in ((["--repo", str(tmp_path)], "is not a git repository"),
                          (["--repo", str(fake_repo), "--releases", "12.0"], "no release branch for 12.0")):
        with pytest.raises(SystemExit) as exc:
            trt_headers.main(argv + ["--out", str(out)])
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_cli_needs_a_repository(monkeypatch, capsys):
    monkeypatch.delenv("TENSORRT_REPO", raising=False)
    with pytest.raises(SystemExit) as exc:
        trt_headers.main([])
    assert exc.value.code == 2 and "set TENSORRT_REPO" in capsys.readouterr().err


@pytest.mark.skipif(not os.environ.get("TENSORRT_REPO"),
                    reason="TENSORRT_REPO not set (a git clone of github.com/NVIDIA/TensorRT): the real releases are "
                           "not checked")
def test_real_repository(tmp_path):
    repo = trt_headers.open_repo(os.environ["TENSORRT_REPO"])
    available = trt_headers.releases(repo)
    assert "10.0" in available, list(available)
    for name in trt_headers.choose(available, "latest") + ["10.0"]:
        dest = trt_headers.extract(repo, available[name], tmp_path / name / "include")
        assert (dest / "NvInferRuntime.h").is_file()
        assert trt_headers.header_version(dest) == ".".join(name.split(".")[:2])
