"""The Makefile is a thin front: `make -n` must print the entry-point commands with the flags its
variables promise (README/docs tell users to drive everything through these variables)."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from centernet_trt import export

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def dry_run(target: str, *variables: str) -> list[str]:
    """The argv of the one `python -m ...` command `make -n target` would run (line continuations joined)."""
    out = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), target, "PY=python", *variables],
                         capture_output=True, text=True, check=True).stdout
    (line,) = [ln for ln in out.replace("\\\n", " ").splitlines() if ln.startswith("python ")]
    return shlex.split(line)


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


@pytest.mark.parametrize("batch,exported,profile", [("1", "1", None), ("4", "4", None),
                                                    ("dynamic", "dynamic", None), ("1:4:8", "dynamic", "1:4:8")])
def test_batch_reaches_export_and_engine(batch, exported, profile):
    assert flag(dry_run("onnx", f"BATCH={batch}"), "--batch") == exported
    assert flag(dry_run("engine", f"BATCH={batch}"), "--batch") == profile


def test_export_variables_become_flags_the_cli_accepts():
    argv = dry_run("onnx", "ARCH=dla_34", "TASK=multi_pose", "MODEL=m.pth", "INPUT=384x640", "DCN_OP=deformconv",
                   "OPSET=20", "NUM_CLASSES=3", "DCN_DOMAIN=none", "SLIM=1", "UNSAFE_LOAD=1")
    assert argv[:3] == ["python", "-m", "centernet_trt.export"]
    args = export.build_parser().parse_args(argv[3:])
    assert (args.arch, args.task, args.model, args.input, args.dcn_op, args.opset, args.num_classes) == \
        ("dla_34", "multi_pose", "m.pth", "384x640", "deformconv", 20, 3)
    assert args.dcn_domain == "" and args.slim and args.unsafe_load
    assert args.output == "build/multi_pose_dla_34.onnx"


def test_engine_infer_compare_use_the_same_files():
    engine = dry_run("engine", "PRECISION=fp32", "ARCH=dla_34")
    assert flag(engine, "--onnx") == "build/ctdet_dla_34.onnx" and flag(engine, "--precision") == "fp32"
    built = flag(engine, "--output")
    assert built == "build/ctdet_dla_34_fp32.engine"
    infer = dry_run("infer", "PRECISION=fp32", "ARCH=dla_34", "IMG=x.jpg")
    assert flag(infer, "--engine") == built and flag(infer, "--plugin") == flag(engine, "--plugin")
    assert flag(dry_run("infer", "BACKEND=onnxruntime", "ARCH=dla_34"), "--onnx") == "build/ctdet_dla_34.onnx"
    assert flag(dry_run("compare", "PRECISION=fp32", "ARCH=dla_34"), "--engine") == built


def test_dynamic_input_and_hw_profile():
    """INPUT=dynamic exports any size; HW reaches the engine's --hw (and nothing else does)."""
    argv = dry_run("onnx", "INPUT=dynamic", "BATCH=1:2:4")
    assert flag(argv, "--input") == "dynamic" and flag(argv, "--batch") == "dynamic"
    engine = dry_run("engine", "HW=256x256:512x512:1024x1024", "BATCH=1:2:4")
    assert flag(engine, "--hw") == "256x256:512x512:1024x1024" and flag(engine, "--batch") == "1:2:4"
    assert "--hw" not in dry_run("engine")


def test_keep_res_reaches_infer():
    from centernet_trt import infer

    argv = dry_run("infer", "KEEP_RES=1", "BACKEND=onnxruntime")
    assert "--keep-res" in argv and infer.build_parser().parse_args(argv[3:]).keep_res
    assert "--keep-res" not in dry_run("infer")
