"""The DCNv2 CUDA kernel (plugin/dcnv2Kernel.cu): compiles with nvcc (CPU CI), and passes the GPU check on a GPU.

The compile test builds the translation unit for sm_90a and sm_80 (compile only, no link to a device) and reads
ptxas' resource report: no kernel may spill to local memory, since a spill in the gather loop costs several times
the loop itself. The GPU test runs bench/gpu_check.py (float64 references, fresh random data, poisoned outputs).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "plugin" / "dcnv2Kernel.cu"
NVCC = shutil.which("nvcc")


def _cuda_device_present() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _toolkit_has_cublas() -> bool:
    """Whether nvcc's own toolkit has the cuBLAS headers (then the kernel compiles the im2col tactic by itself)."""
    if NVCC is None:
        return False
    root = Path(NVCC).resolve().parents[1]
    return any((root / sub / "cublas_v2.h").is_file() for sub in ("include", "targets/x86_64-linux/include",
                                                                   "targets/sbsa-linux/include"))


def _cublas_include() -> list[str]:
    """Extra -I for the im2col tactic's code: none where the toolkit has cuBLAS headers, else those of the pip wheel
    torch brings (CI's CPU machine has nvcc without them); none found: that code compiles out, as in a plugin build
    without them."""
    if _toolkit_has_cublas():
        return []
    try:
        import nvidia
    except ImportError:
        return []
    for base in getattr(nvidia, "__path__", []):
        for inc in sorted(Path(base).glob("cu*/include")) + [Path(base) / "cublas" / "include"]:
            if (inc / "cublas_v2.h").is_file():
                return ["-I", str(inc)]
    return []


@pytest.fixture(scope="module")
def kernel_object(tmp_path_factory) -> tuple[Path, str]:
    """The kernel compiled for sm_90a (compile only) and ptxas' report."""
    if NVCC is None:
        pytest.skip("nvcc not on PATH: the CUDA kernel compile check needs the CUDA toolkit")
    out = tmp_path_factory.mktemp("nvcc") / "dcnv2Kernel.o"
    cmd = [NVCC, "-std=c++17", "-O3", "-c", "-Xptxas", "-v", "-Xcompiler", "-fPIC", "-DCENTERNET_DCN_SM90A",
           *_cublas_include(), "-gencode", "arch=compute_90a,code=sm_90a", "-o", str(out), str(KERNEL)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"nvcc failed:\n{proc.stderr[-4000:]}"
    assert out.stat().st_size > 0
    return out, proc.stderr


@pytest.fixture(scope="module")
def ptxas_report(kernel_object) -> str:
    return kernel_object[1]


@pytest.fixture(scope="module")
def kernel_library(kernel_object, tmp_path_factory) -> Path:
    """The compiled kernel linked as the shared library the Python tools load (ctypes)."""
    lib_path = tmp_path_factory.mktemp("lib") / "libdcnv2_kernel.so"
    link = subprocess.run([NVCC, "-shared", "-o", str(lib_path), str(kernel_object[0])], capture_output=True,
                          text=True, timeout=300)
    assert link.returncode == 0, link.stderr[-4000:]
    return lib_path


def test_kernel_compiles_for_hopper(ptxas_report):
    kernels = re.findall(r"Compiling entry function '(\w+)'", ptxas_report)
    # fp16 / TF32 / FFMA main-kernel variants, the register-fragment kernels (fp16 and TF32, 64- and 128-channel
    # blocks), the prep and finalize kernels of both types
    assert sum("dcnMainKernel" in k for k in kernels) >= 6, kernels
    assert sum("dcnRegKernel" in k for k in kernels) >= 4, kernels
    # the sm_90a warpgroup (wgmma) kernels, fp16 and TF32: the v8 one-warpgroup kernel (64- and 128-channel blocks),
    # the two-warpgroup configurations (64-channel: one and two steps of look-ahead; 128-channel: two), and the
    # 256-byte-step configuration (64- and 128-channel; TF32 since v11, fp16 since v41), and the 256-channel tiles'
    # configuration (v28); each twice: the packed weight, and a channels-last weight read as it lies (v24); plus TF32
    # from the fp16 copy (v30: the 64-channel two-block configuration and the 256-byte-step ones, 64- and 128-channel),
    # again both ways; and fp32 on fp16 tensor cores from that copy (v34, HMMA: the fp16 kernel's configurations, the
    # packed weight only; its 256-byte steps since v41; v49: the 128-channel one as dcnWgKernelCapped, 160 registers)
    assert sum("dcnWgKernel" in k for k in kernels) == 43, kernels
    assert sum(re.search(r"dcnWgKernelCappedIfLi128ELi2ELi1ELi1ELi2ELb0ELb1ELb1ELb1E", k) is not None
               for k in kernels) == 1 == sum("dcnWgKernelCapped" in k for k in kernels), kernels
    assert sum(re.search(r"dcnWgKernelIfLi\d+ELi\d+ELi\d+ELi\d+ELi\d+ELb[01]ELb1ELb0E", k) is not None
               for k in kernels) == 6, kernels
    assert sum(re.search(r"dcnWgKernelIfLi\d+ELi\d+ELi\d+ELi\d+ELi1ELb0ELb1ELb1E", k) is not None
               for k in kernels) == 3, kernels
    assert sum(re.search(r"dcnWgKernel(Capped)?IfLi\d+ELi2ELi1ELi1ELi2ELb0ELb1ELb1E", k) is not None
               for k in kernels) == 2, kernels
    assert sum(re.search(r"dcnWgKernelI6__halfLi(64|128)ELi2ELi1ELi1ELi2ELb[01]E", k) is not None
               for k in kernels) == 4, kernels
    assert any("dcnPrepKernel" in k for k in kernels) and any("dcnFinalizeKernel" in k for k in kernels)
    # the im2col tactic's sampling kernel (fp16 and fp32), where cuBLAS headers were found
    if _cublas_include() or _toolkit_has_cublas():
        assert sum("dcnIm2colKernel" in k for k in kernels) == 2, kernels


def test_no_wgmma_serialization(ptxas_report):
    """ptxas serializes every wgmma of a kernel where it cannot prove the wgmma pipeline safe (e.g. across a function
    call: C7510); that cost the v30 range guard's first out-of-line fallback ~9 % on the split-K layers."""
    assert "C7510" not in ptxas_report and "serialized" not in ptxas_report, [
        line for line in ptxas_report.splitlines() if "C7510" in line or "serialized" in line][:3]


def test_no_kernel_spills_much(ptxas_report):
    spills = [int(b) for b in re.findall(r"(\d+) bytes spill stores", ptxas_report)]
    assert spills, "ptxas printed no resource report"
    assert max(spills) <= 16, f"register spills in the kernel: {spills}"


def test_no_kernel_stack_beyond_spills(ptxas_report):
    """A stack frame larger than a function's spills is a copy the kernel makes on every launch: v31's redo, called
    with a reference to (or a copy of) a plain kernel parameter, gave the TF32 warpgroup kernels a 216-byte copy of
    their arguments (~1 % on cfg 1); its parameter is __grid_constant__ so that the call reads them in place."""
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores", ptxas_report)
    assert frames, "ptxas printed no resource report"
    extra = [(int(f), int(s)) for f, s in frames if int(f) > max(int(s), 8)]
    assert not extra, f"stack frames beyond the spills (frame, spill stores): {extra}"


def test_algorithm_switch_explains_itself(kernel_library):
    """The C ABI's algorithm switch (the Python tools' way to the im2col tactic): unknown algorithms are refused, and
    where cuBLAS cannot serve (not on the library path, or no GPU for a handle) the reason names cuBLAS and the fix;
    the library never links cuBLAS (it is opened at run time)."""
    import ctypes

    needed = subprocess.run(["readelf", "-d", str(kernel_library)], capture_output=True, text=True).stdout
    assert "cublas" not in needed, needed
    lib = ctypes.CDLL(str(kernel_library))
    lib.centernet_dcnv2_set_algo.restype = ctypes.c_char_p
    lib.centernet_dcnv2_set_algo.argtypes = [ctypes.c_int]
    assert b"algorithm must be 0" in lib.centernet_dcnv2_set_algo(2)
    why = lib.centernet_dcnv2_set_algo(1)
    if why is None:  # a GPU with cuBLAS on the library path: the tactic is available here
        assert _cuda_device_present()
    elif _cublas_include() or _toolkit_has_cublas():
        assert b"cublas" in why.lower() and (b"LD_LIBRARY_PATH" in why or b"cublasCreate failed" in why), why
    else:
        assert b"built without cuBLAS headers" in why, why
    assert lib.centernet_dcnv2_set_algo(0) is None


def test_plan_text_names_the_launch(kernel_library):
    """The C ABI's plan text (printed by the check and the benchmark): kernel, tiles, K steps and split count as the
    launch computes them, and "unsupported" for params the kernel rejects. Without a GPU the planner sees a card of
    the fallback size (132 SMs, no tensor-core paths): 1,512,16,16->256 fp16 then runs the shared-tile kernel on 16
    64-channel tiles x 72 K steps (9 taps x 8 chunks of 64 channels), split floor(2 x 132 / 16) = 16 ways, capped at
    72 / 3 and rounded to whole 5-step splits: 15."""
    import ctypes

    lib = ctypes.CDLL(str(kernel_library))
    lib.centernet_dcnv2_plan.restype = ctypes.c_char_p
    lib.centernet_dcnv2_plan.argtypes = [ctypes.c_int] * 22
    layer = [1, 512, 16, 16, 256, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]  # ..., groups, dg, TF32, fp16, NCHW
    text = lib.centernet_dcnv2_plan(*layer).decode()
    if _cuda_device_present():  # the real card's plan: only its shape
        assert re.fullmatch(r"(warpgroup cfg \d|register|tile), \d+-channel tiles, \d+ per SM, \d+ tiles x \d+ K steps, "
                            r"\d+ split\(s\)", text), text
    else:
        assert text == "tile, 64-channel tiles, 2 per SM, 16 tiles x 72 K steps, 15 split(s)", text
    bad = [1, 30, 8, 8, 16, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1, 1, 1, 0, 0, 0]  # 30 channels, groups 4
    assert lib.centernet_dcnv2_plan(*bad) == b"unsupported"


def test_kernel_compiles_for_turing_and_ampere():
    """The plugin is also built for sm_75..89 (CMake default); TF32 variants compile to a trap below sm_80."""
    if NVCC is None:
        pytest.skip("nvcc not on PATH: the CUDA kernel compile check needs the CUDA toolkit")
    proc = subprocess.run([NVCC, "-std=c++17", "-O3", "-c", "-Xcompiler", "-fPIC", "-gencode",
                           "arch=compute_75,code=sm_75", "-gencode", "arch=compute_80,code=sm_80", "-o", "/dev/null", str(KERNEL)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.gpu
def test_gpu_check(tmp_path):
    if NVCC is None or not _cuda_device_present():
        pytest.skip("needs a CUDA GPU and nvcc (run bench/gpu_run.sh on a GPU machine)")
    import torch

    lib = tmp_path / "libdcnv2_kernel.so"
    # Hopper builds sm_90a, as CMake and bench/gpu_run.sh do, so the check covers the warpgroup kernel too
    arch = (["-DCENTERNET_DCN_SM90A", "-gencode", "arch=compute_90a,code=sm_90a"]
            if torch.cuda.get_device_capability() == (9, 0) else ["-arch=native"])
    build = subprocess.run([NVCC, "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC", *arch,
                            "-o", str(lib), str(KERNEL)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-4000:]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--lib", str(lib)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 failures" in proc.stdout


def test_nhwc_input_needs_no_copy_in_the_workspace(kernel_library):
    """An input given NHWC (the plugin's kHWC8 / kHWC input) is read in place: the fused path's workspace shrinks by
    exactly the NHWC copy it no longer makes (the input's bytes, rounded up to the 256-byte alignment), the rest
    (packed weight, split-K partials) stays."""
    import ctypes

    lib = ctypes.CDLL(str(kernel_library))
    lib.centernet_dcnv2_workspace_size.restype = ctypes.c_size_t
    lib.centernet_dcnv2_workspace_size.argtypes = [ctypes.c_int] * 22
    for n, c, h, w, cout, fp16 in [(1, 64, 128, 128, 64, 1), (2, 30, 9, 11, 16, 0), (8, 64, 128, 128, 64, 0)]:
        layer = [n, c, h, w, cout, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, fp16]
        nchw, nhwc = (lib.centernet_dcnv2_workspace_size(*layer, flag, 0, 0) for flag in (0, 1))
        copy = n * c * h * w * (2 if fp16 else 4)
        assert nchw > 0 and nchw - nhwc == (copy + 255) // 256 * 256, (layer, nchw, nhwc)
        # the output's layout changes no workspace byte (split-K partials are as large either way)
        assert lib.centernet_dcnv2_workspace_size(*layer, 1, 1, 0) == nhwc
        # a channels-last weight is copied straight into the stages only by the warpgroup kernel (sm_90a, on a
        # Hopper GPU); the planner without a GPU picks a kernel that reads a packed weight, whose room stays
        if not _cuda_device_present():
            assert lib.centernet_dcnv2_workspace_size(*layer, 1, 1, 1) == nhwc
