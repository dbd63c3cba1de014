"""docker/ cannot run in CI; check it stays consistent with the Makefile it drives."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def makefile_variables() -> set[str]:
    return set(re.findall(r"^([A-Z_]+)\s*\?=", (ROOT / "Makefile").read_text(), re.M))


def make_calls(text: str):
    """(targets, VAR names) of every `make ...` in a text."""
    for call in re.findall(r'\bmake((?:[ \t]+[A-Za-z_][\w-]*(?:=[^\s"&]*)?)+)', text):
        words = call.split()
        yield [w for w in words if "=" not in w], [w.split("=")[0] for w in words if "=" in w]


def test_docker_make_calls_exist_in_the_makefile():
    targets, variables = makefile_targets(), makefile_variables()
    readme = (ROOT / "docker/README.md").read_text()
    code = re.findall(r"```\w*\n(.*?)```", readme, re.S) + re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", readme, flags=re.S))
    texts = {"Dockerfile": (ROOT / "docker/Dockerfile").read_text(), "README.md": "\n".join(code)}
    seen = set()
    for name, text in texts.items():
        for tgts, vars_ in make_calls(text):
            seen.update(tgts)
            assert set(tgts) <= targets, (name, tgts)
            assert set(vars_) <= variables, (name, vars_)
    # The container walks the whole flow.
    assert {"patch", "onnx", "plugin", "engine", "infer"} <= seen


def test_dockerfile_env_names_are_makefile_variables():
    text = (ROOT / "docker/Dockerfile").read_text()
    env_names = {n for line in re.findall(r"^ENV (.+)$", text, re.M) for n in re.findall(r"([A-Z_]+)=", line)}
    assert {"ARCH", "TASK", "MODEL", "PRECISION", "BACKEND", "IMG"} <= env_names
    assert env_names - {"PIP_BREAK_SYSTEM_PACKAGES", "PIP_NO_CACHE_DIR", "PYTHONUNBUFFERED"} <= makefile_variables()
    assert re.search(r"^FROM nvcr\.io/nvidia/tensorrt:\$\{TRT_TAG\}", text, re.M)
    assert re.search(r"^ARG TRT_TAG=\d\d\.\d\d-py3", text, re.M)
