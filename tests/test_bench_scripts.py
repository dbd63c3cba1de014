"""The GPU check, benchmark and trace scripts (bench/) import and parse their arguments on a machine without a GPU.

Their real runs need a CUDA GPU (bench/gpu_run.sh); this catches a broken import or argument list before a device
call is spent on it.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["bench_dcn.py", "gpu_check.py", "trace_dcn.py", "profile_one.py", "model_dcn.py",
                                    "timeline_dcn.py", "ab_dcn.py"])
def test_script_imports_and_parses_help(script):
    if script == "profile_one.py":  # positional usage only: import it as a module instead of running it
        cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, 'bench'); import profile_one"]
    else:
        cmd = [sys.executable, f"bench/{script}", "--help"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if script != "profile_one.py":
        assert "usage:" in proc.stdout


@pytest.mark.parametrize("argv, message", [
    (["--lib", "nolibpath"], "want NAME=PATH"),
    (["--lib", "a=/nonexistent/lib.so"], "no such library: /nonexistent/lib.so"),
    (["--lib", "a=LIB", "--lib", "a=LIB"], "--lib names must differ: a, a"),
    (["--lib", "a=LIB", "--modes", "tf32,bf16"], "want a comma-separated subset of fp16, tf32, fp32"),
    (["--lib", "a=LIB", "--shapes", "1,64,128,128"], "want N,C,H,W,COUT"),
    (["--lib", "a=LIB", "--rounds", "0"], "--rounds, --calls and --reps must be at least 1"),
])
def test_ab_script_refuses_bad_arguments_naming_the_fix(argv, message, tmp_path):
    """bench/ab_dcn.py (side-by-side timing of kernel builds) checks its arguments before any CUDA work."""
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"")
    argv = [a.replace("LIB", str(lib)) for a in argv]
    proc = subprocess.run([sys.executable, "bench/ab_dcn.py", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr


def test_ab_script_accepts_good_arguments(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import ab_dcn
    finally:
        sys.path.pop(0)
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    a.write_bytes(b"")
    b.write_bytes(b"")
    args = ab_dcn.parse_args(["--lib", f"v30={a}", "--lib", f"v31={b}", "--modes", "tf32,fp32", "--shapes",
                              "1,64,128,128,64;8,64,128,128,64", "--rounds", "4"])
    assert args.lib == [("v30", a), ("v31", b)]
    assert args.modes == ["tf32", "fp32"] and args.rounds == 4
    assert args.shapes == [(1, 64, 128, 128, 64), (8, 64, 128, 128, 64)]


def test_variant_help_names_every_kernel_variant():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import dcn_ctypes
    finally:
        sys.path.pop(0)
    # the default list runs only variants the help explains
    for v in dcn_ctypes.DEFAULT_VARIANTS.split(","):
        assert f"{v} = " in dcn_ctypes.VARIANTS_HELP or f"{v} / " in dcn_ctypes.VARIANTS_HELP, v
    proc = subprocess.run([sys.executable, "bench/bench_dcn.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert "one-warpgroup" in proc.stdout.replace("\n", " ").replace("  ", " ")


def test_gpu_floors_program_compiles_and_takes_the_benchmarks_rates(tmp_path):
    """bench/gpu_floors.cu (launch, barrier, memory-latency and L1 floors, least call per layer; run by
    bench/gpu_run.sh) builds with nvcc, accepts the rates bench_dcn.py --rates-out writes, and refuses malformed ones
    with a message naming the expected form (both checked before any CUDA call, so on a machine without a GPU too)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: compiling bench/gpu_floors.cu needs the CUDA toolkit")
    exe = tmp_path / "gpu_floors"
    proc = subprocess.run([nvcc, "-O3", "-std=c++17", "-arch=sm_90", "-o", str(exe), "bench/gpu_floors.cu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for bad in ["1,2", "753,406,51.3,x", "753,406,0,3009"]:
        proc = subprocess.run([str(exe), "--rates", bad], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (bad, proc.stdout, proc.stderr)
        assert "--rates wants FP16_TFLOPS,TF32_TFLOPS,FP32_TFLOPS,COPY_GBPS" in proc.stderr
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_dcn
    finally:
        sys.path.pop(0)
    good = bench_dcn.floors_rates_arg({"fp16": 753.2e12, "tf32": 406.1e12, "fp32": 51.3e12}, 3009.4e9)
    assert good == "753.200,406.100,51.300,3009.400"
    proc = subprocess.run([str(exe), "1", "1", "--rates", good], capture_output=True, text=True, timeout=600)
    assert "--rates wants" not in proc.stderr  # accepted; without a GPU it then stops at the first CUDA call


def test_timeline_instrumentation_fits_the_kernel(tmp_path):
    """bench/timeline_dcn.py instruments a copy of the kernel at fixed anchors: every anchor is still in the kernel
    exactly once (a kernel change that moves one fails here, not in a device call), a kernel without one is refused
    with a message naming the fix, and the instrumented copy compiles for sm_90a where nvcc exists."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import timeline_dcn
    finally:
        sys.path.pop(0)
    source = timeline_dcn.KERNEL.read_text()
    instrumented = timeline_dcn.instrument(source)
    assert instrumented.count("stamp(1, ") == 5 and "centernet_dcnv2_stamps" in instrumented
    broken = source.replace(timeline_dcn.INSTRUMENTATION[2][0], "")
    with pytest.raises(SystemExit, match="update bench/timeline_dcn.py INSTRUMENTATION"):
        timeline_dcn.instrument(broken)
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: compiling the instrumented kernel needs the CUDA toolkit")
    (tmp_path / "dcnv2Kernel.h").write_text(timeline_dcn.KERNEL.with_suffix(".h").read_text())
    (tmp_path / "dcnv2Kernel.cu").write_text(instrumented)
    proc = subprocess.run([nvcc, "-std=c++17", "-O3", "-c", "-Xcompiler", "-fPIC", "-DCENTERNET_DCN_SM90A", "-gencode",
                           "arch=compute_90a,code=sm_90a", "-o", str(tmp_path / "k.o"), str(tmp_path / "dcnv2Kernel.cu")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("argv, message", [
    (["--blocks", "--layouts", "nhwc"], "unknown layout 'nhwc'"),
    (["--layouts", "in"], "--layouts needs --blocks"),
    (["--modes", "bf16"], "unknown mode 'bf16'"),
])
def test_timeline_refuses_bad_arguments_before_any_gpu_work(argv, message):
    """bench/timeline_dcn.py checks its layout and mode lists first, with a message naming the accepted values, so a
    typo costs no instrumented build or device time."""
    proc = subprocess.run([sys.executable, "bench/timeline_dcn.py", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr
