"""The DCNv2 TensorRT plugin builds against TensorRT's public headers, needs no libnvinfer, exports its entry points,
and passes its IPluginV3 interface harness (interface checks on CPU; numerics too when a GPU is present).

Needs cmake, nvcc and TensorRT headers: ``TRT_INCLUDE`` (one folder holding NvInferRuntime.h, or several joined with
``os.pathsep`` to cover e.g. a 10.x and an 11.x release), ``TENSORRT_ROOT`` (its ``include/``), or ``TENSORRT_REPO``
(a git clone of github.com/NVIDIA/TensorRT: the releases named by ``TRT_RELEASES``, default ``latest`` = the newest
10.x and 11.x, are extracted by ``centernet_trt.trt_headers`` into build/trt-headers). Skips otherwise.
``CUDA_ARCHITECTURES`` picks the CUDA targets (default ``90a-real``: one target keeps CI fast; compile-only on CPU).
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from centernet_trt import trt_headers, upstream
from centernet_trt.errors import UserError

PLUGIN_DIR = upstream.PROJECT_ROOT / "plugin"
ARCHS = os.environ.get("CUDA_ARCHITECTURES", "90a-real")


def _header_dirs() -> tuple[list[Path], str]:
    """The header folders to build against, or none and why."""
    dirs = [Path(p) for p in os.environ.get("TRT_INCLUDE", "").split(os.pathsep) if p]
    if not dirs and os.environ.get("TENSORRT_ROOT"):
        dirs = [Path(os.environ["TENSORRT_ROOT"]) / "include"]
    if not dirs and os.environ.get("TENSORRT_REPO"):
        try:
            dirs = list(trt_headers.extract_releases(os.environ["TENSORRT_REPO"],
                                                     os.environ.get("TRT_RELEASES", "latest")).values())
        except UserError as exc:
            return [], f"TENSORRT_REPO given, but its headers could not be extracted: {exc}"
    return dirs, ("TensorRT headers not given: set TRT_INCLUDE=<dir with NvInferRuntime.h> (several joined with "
                  f"'{os.pathsep}'), TENSORRT_ROOT=<TensorRT root> or TENSORRT_REPO=<git clone of NVIDIA/TensorRT>")


def _param_id(include: Path | None) -> str:
    if include is None:
        return "no-headers"
    try:
        return f"trt{trt_headers.header_version(include)}"
    except UserError:  # a wrong folder: the fixture skips it with the reason
        return str(include)


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def _need_toolchain():
    missing = [tool for tool in ("cmake", "nvcc") if not shutil.which(tool)]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: the plugin build needs CMake >= 3.24 and the CUDA toolkit")


HEADER_DIRS, NO_HEADERS = _header_dirs()


@pytest.fixture(scope="module", params=HEADER_DIRS or [None], ids=_param_id)
def built(request, tmp_path_factory) -> tuple[Path, str]:
    """The plugin library and harness built against one TensorRT header folder by plugin/tests/run_harness.sh (the
    README's command), which then runs the harness's interface checks. Returns (build dir, harness output)."""
    _need_toolchain()
    include = request.param
    if include is None:
        pytest.skip(NO_HEADERS)
    if not (include / "NvInferRuntime.h").is_file():
        pytest.skip(f"{include}/NvInferRuntime.h not found (TRT_INCLUDE / TENSORRT_ROOT point elsewhere)")
    build = tmp_path_factory.mktemp("plugin")
    env = dict(os.environ, TRT_INCLUDE=str(include), BUILD_DIR=str(build), CUDA_ARCHITECTURES=ARCHS)
    result = subprocess.run(["bash", str(PLUGIN_DIR / "tests" / "run_harness.sh"), "--interface-only"], env=env,
                            capture_output=True, text=True, timeout=1200)
    assert (build / "libdcnv2_plugin.so").is_file() and (build / "dcnv2_plugin_harness").is_file(), (
        f"plugin build failed against {include}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return build, result.stdout + result.stderr


def test_library_does_not_need_tensorrt(built):
    lib = built[0] / "libdcnv2_plugin.so"
    needed = subprocess.run(["readelf", "-d", str(lib)], check=True, capture_output=True, text=True).stdout
    libs = re.findall(r"\(NEEDED\).*\[(.+?)\]", needed)
    assert libs, needed
    assert not [n for n in libs if "nvinfer" in n], f"plugin links TensorRT: {libs}"
    # cuBLAS (tactic 1) is opened at run time, so the plugin loads where it is absent
    assert not [n for n in libs if "cublas" in n], f"plugin links cuBLAS: {libs}"
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    assert "nvinfer" not in ldd and "not found" not in ldd, ldd


def test_library_exports_tensorrt_entry_points(built):
    lib = built[0] / "libdcnv2_plugin.so"
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], check=True, capture_output=True,
                             text=True).stdout
    exported = {line.split()[-1] for line in symbols.splitlines() if line.split()[1:2] == ["T"]}
    assert {"getCreators", "setLoggerFinder"} <= exported, sorted(exported)
    # The plugin classes stay private (hidden visibility); only C entry points and the kernel API are public.
    assert not [s for s in exported if "DCNv2Plugin" in s], sorted(exported)

    # Loadable and callable the way TensorRT's registry does it, here from Python and without TensorRT.
    handle = ctypes.CDLL(str(lib))
    handle.getCreators.restype = ctypes.c_void_p
    handle.getCreators.argtypes = [ctypes.POINTER(ctypes.c_int32)]
    count = ctypes.c_int32(-1)
    assert handle.getCreators(ctypes.byref(count))
    assert count.value == 1


def test_harness_interface_checks(built):
    """Every IPluginV3 call TensorRT makes, minus enqueue: fields, bad fields, shapes, formats, serialization."""
    output = built[1]
    summary = re.search(r"SUMMARY: (\d+) checks passed, (\d+) failed", output)
    assert summary, output[-6000:]
    assert int(summary.group(1)) > 200 and summary.group(2) == "0", output[-6000:]


@pytest.mark.gpu
def test_harness_on_gpu(built):
    """The full harness: real GPU buffers, float64 reference, serialize/recreate/clone round trip, CUDA graph."""
    if not _has_gpu():
        pytest.skip("no CUDA GPU here (nvidia-smi -L fails): the numeric half of the harness runs only on a GPU")
    build = built[0]
    result = subprocess.run([str(build / "dcnv2_plugin_harness"), str(build / "libdcnv2_plugin.so")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "interface only" not in result.stdout


def test_missing_headers_fail_clearly(tmp_path):
    """Without headers the configure step stops and says how to point at them."""
    _need_toolchain()
    env = {k: v for k, v in os.environ.items() if k not in ("TRT_INCLUDE", "TENSORRT_ROOT")}
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(["cmake", "-S", str(PLUGIN_DIR), "-B", str(tmp_path / "build"),
                             f"-DTENSORRT_ROOT={empty}", f"-DCMAKE_CUDA_ARCHITECTURES={ARCHS}"],
                            env=env, capture_output=True, text=True)
    if result.returncode == 0:
        pytest.skip("TensorRT headers are installed system-wide here, so the not-found path cannot be exercised")
    assert "NvInferRuntime.h" in result.stderr and "TENSORRT_ROOT" in result.stderr, result.stderr[-3000:]
