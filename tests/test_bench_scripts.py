"""The GPU check, benchmark and trace scripts (bench/) import and parse their arguments on a machine without a GPU.

Their real runs need a CUDA GPU (bench/gpu_run.sh); this catches a broken import or argument list before a device
call is spent on it.
"""
from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench_module(name: str):
    """Import a bench/ script as a module (they import each other by plain name, as when run from bench/)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


@pytest.mark.parametrize("script", ["bench_dcn.py", "gpu_check.py", "trace_dcn.py", "profile_one.py", "model_dcn.py",
                                    "timeline_dcn.py", "ab_dcn.py", "bounds_dcn.py", "host_dcn.py"])
def test_script_imports_and_parses_help(script):
    if script == "profile_one.py":  # positional usage only: import it as a module instead of running it
        cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, 'bench'); import profile_one"]
    else:
        cmd = [sys.executable, f"bench/{script}", "--help"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    if script != "profile_one.py":
        assert "usage:" in proc.stdout


@pytest.mark.parametrize("script, argv, message", [
    ("ab_dcn.py", ["--lib", "nolibpath"], "want NAME=PATH"),
    ("ab_dcn.py", ["--lib", "a=/nonexistent/lib.so"], "no such library: /nonexistent/lib.so"),
    ("ab_dcn.py", ["--lib", "a=LIB", "--lib", "a=LIB"], "--lib names must differ: a, a"),
    ("ab_dcn.py", ["--lib", "a=LIB", "--modes", "tf32,bf16"], "want a comma-separated subset of fp16, tf32, fp32"),
    ("ab_dcn.py", ["--lib", "a=LIB", "--shapes", "1,64,128,128"], "want N,C,H,W,COUT"),
    ("ab_dcn.py", ["--lib", "a=LIB", "--rounds", "0"], "--rounds, --calls and --reps must be at least 1"),
    ("host_dcn.py", ["--lib", "a=/nonexistent/lib.so"], "no such library: /nonexistent/lib.so"),
    ("host_dcn.py", ["--lib", "a=LIB", "--lib", "a=LIB"], "--lib names must differ: a, a"),
    ("host_dcn.py", ["--lib", "a=LIB", "--calls", "0"], "--rounds and --calls must be at least 1"),
])
def test_side_by_side_scripts_refuse_bad_arguments_naming_the_fix(script, argv, message, tmp_path):
    """bench/ab_dcn.py (device time of kernel builds side by side) and bench/host_dcn.py (host time per call) check
    their arguments before any CUDA work."""
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"")
    argv = [a.replace("LIB", str(lib)) for a in argv]
    proc = subprocess.run([sys.executable, f"bench/{script}", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr


def test_side_by_side_measures_alternate_and_take_the_median():
    """ab_dcn.alternating_medians (both side-by-side scripts time through it): builds measured forward, then backward,
    so neither place favours one, and each build's median over the rounds."""
    ab_dcn = bench_module("ab_dcn")
    order, samples = [], {"a": iter([5.0, 1.0, 3.0]), "b": iter([2.0, 9.0, 4.0])}

    def measure(name):
        order.append(name)
        return next(samples[name])

    med = ab_dcn.alternating_medians({k: functools.partial(measure, k) for k in "ab"}, rounds=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert med == {"a": 3.0, "b": 4.0}


def test_ab_script_accepts_good_arguments(tmp_path):
    ab_dcn = bench_module("ab_dcn")
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    a.write_bytes(b"")
    b.write_bytes(b"")
    args = ab_dcn.parse_args(["--lib", f"v30={a}", "--lib", f"v31={b}", "--modes", "tf32,fp32", "--shapes",
                              "1,64,128,128,64;8,64,128,128,64", "--rounds", "4"])
    assert args.lib == [("v30", a), ("v31", b)]
    assert args.modes == ["tf32", "fp32"] and args.rounds == 4
    assert args.shapes == [(1, 64, 128, 128, 64), (8, 64, 128, 128, 64)]


def test_variant_help_names_every_kernel_variant():
    dcn_ctypes = bench_module("dcn_ctypes")
    # the default list runs only variants the help explains
    for v in dcn_ctypes.DEFAULT_VARIANTS.split(","):
        assert f"{v} = " in dcn_ctypes.VARIANTS_HELP or f"{v} / " in dcn_ctypes.VARIANTS_HELP, v
    proc = subprocess.run([sys.executable, "bench/bench_dcn.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert "one-warpgroup" in proc.stdout.replace("\n", " ").replace("  ", " ")


def test_benchmark_summary_counts_targets_from_unrounded_times():
    """bench_dcn.py's closing lines judge the issue's targets on unrounded times: a 2.96x row, printed 3.0x at one
    decimal, is short of 3x; exactly 5x in fp16 is met; strict fp32 rows (no target of their own) are left out; the
    floor bound counts ours <= 3 x floor."""
    bench_dcn = bench_module("bench_dcn")
    rows = [((1, 512, 16, 16, 256), "tf32", "random", 11.25, 33.3, 1.84),  # 2.96x
            ((1, 64, 128, 128, 64), "tf32", "random", 15.0, 60.0, 5.0),     # 4x, exactly 3x the floor
            ((1, 64, 128, 128, 64), "fp16", "random", 4.0, 20.0, 1.0),      # exactly 5x
            ((1, 64, 128, 128, 64), "fp16", "smooth", 5.0, 20.0, 1.0),      # 4x
            ((1, 64, 128, 128, 64), "fp32", "random", 50.0, 60.0, 20.0)]
    lines = bench_dcn.target_summary(rows)
    assert lines == [
        "tf32 random: >= 3x torchvision on 1 of 2 layers (short: 1,512,16,16->256 1.01x to go); "
        "within 3x of the floor on 1 of 2",
        "fp16 random: >= 5x torchvision on 1 of 1 layers; within 3x of the floor on 0 of 1",
        "fp16 smooth: >= 5x torchvision on 0 of 1 layers (short: 1,64,128,128->64 1.25x to go); "
        "within 3x of the floor on 0 of 1",
    ], lines


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
    bench_dcn = bench_module("bench_dcn")
    good = bench_dcn.floors_rates_arg({"fp16": 753.2e12, "tf32": 406.1e12, "fp32": 51.3e12}, 3009.4e9)
    assert good == "753.200,406.100,51.300,3009.400"
    proc = subprocess.run([str(exe), "1", "1", "--rates", good], capture_output=True, text=True, timeout=600)
    assert "--rates wants" not in proc.stderr  # accepted; without a GPU it then stops at the first CUDA call


def test_runtime_calls_program_compiles_and_needs_a_gpu(tmp_path):
    """bench/runtime_calls.cu (host time of the runtime calls an enqueue makes) builds with nvcc; on a machine without
    a GPU it stops at once, saying so, before timing anything."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: compiling bench/runtime_calls.cu needs the CUDA toolkit")
    exe = tmp_path / "runtime_calls"
    proc = subprocess.run([nvcc, "-O2", "-std=c++17", "-o", str(exe), "bench/runtime_calls.cu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:  # a GPU: the table
        assert "| cudaFuncSetAttribute (dynamic shared-memory limit, 100000 bytes) |" in proc.stdout
    else:
        assert proc.returncode == 2 and "no CUDA device" in proc.stderr, (proc.stdout, proc.stderr)


def compile_for_sm90a(tmp_path, sources: dict[str, str], *defines: str) -> None:
    """Compile patched copies of the kernel (name -> source) for sm_90a side by side, next to the kernel's header;
    skips where nvcc is not on PATH."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH: compiling the patched kernels needs the CUDA toolkit")
    (tmp_path / "dcnv2Kernel.h").write_text((ROOT / "plugin" / "dcnv2Kernel.h").read_text())
    procs = []
    for name, text in sources.items():
        (tmp_path / f"{name}.cu").write_text(text)
        procs.append(subprocess.Popen([nvcc, "-std=c++17", "-O3", "-c", "-Xcompiler", "-fPIC", "-DCENTERNET_DCN_SM90A",
                                       *[f"-D{d}" for d in defines], "-gencode", "arch=compute_90a,code=sm_90a", "-o",
                                       str(tmp_path / f"{name}.o"), str(tmp_path / f"{name}.cu")],
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]


def test_timeline_instrumentation_fits_the_kernel(tmp_path):
    """bench/timeline_dcn.py instruments a copy of the kernel at fixed anchors: every anchor is still in the kernel
    exactly once (a kernel change that moves one fails here, not in a device call), a kernel without one is refused
    with a message naming the fix, and the instrumented copy compiles for sm_90a where nvcc exists."""
    timeline_dcn = bench_module("timeline_dcn")
    source = timeline_dcn.KERNEL.read_text()
    instrumented = timeline_dcn.instrument(source)
    assert instrumented.count("stamp(1, ") == 5 and "centernet_dcnv2_stamps" in instrumented
    broken = source.replace(timeline_dcn.INSTRUMENTATION[2][0], "")
    with pytest.raises(SystemExit, match="update bench/timeline_dcn.py INSTRUMENTATION"):
        timeline_dcn.instrument(broken)
    compile_for_sm90a(tmp_path, {"instrumented": instrumented})


def test_bounds_builds_fit_the_kernel(tmp_path):
    """bench/bounds_dcn.py's timing-only builds patch a copy of the kernel at fixed anchors: each anchor is still in the
    kernel exactly once and each build changes what it says (the finalize launch / the prep launch), a kernel without
    one is refused with a message naming the fix, and both patched copies compile for sm_90a where nvcc exists."""
    bounds_dcn, kernel_variants = bench_module("bounds_dcn"), bench_module("kernel_variants")
    kernel = kernel_variants.KERNEL.read_text()
    srcs = bounds_dcn.sources(kernel)
    assert srcs["kernel"] == kernel
    assert "if (false && endsWithFinalize(g))" in srcs["no_sum"] and "prepNow" not in srcs["no_sum"]
    assert srcs["no_prep"].count("prepNow") == 3 and "if (false &&" not in srcs["no_prep"]
    broken = kernel.replace("  bool const afterPrep = pa.transBlocks + pa.packBlocks + pa.zeroBlocks > 0;", "")
    with pytest.raises(SystemExit, match="update bench/bounds_dcn.py NO_SUM / NO_PREP"):
        bounds_dcn.sources(broken)
    compile_for_sm90a(tmp_path, {name: srcs[name] for name in ("no_sum", "no_prep")}, "CENTERNET_DCN_PREP_PERIOD=20")


def test_variant_builds_are_reused_only_for_the_same_inputs(tmp_path, monkeypatch):
    """bench/kernel_variants.build compiles once per source, defines and nvcc: the same inputs again reuse the library
    without running nvcc (so builds made on a machine without a GPU can be carried to one), any change rebuilds, and a
    build that failed half-way is never taken for the last good one."""
    kernel_variants = bench_module("kernel_variants")
    compiles, version = [], ["nvcc 13.0"]

    def run(cmd, capture_output=True, text=True):
        if cmd[1:] == ["--version"]:
            return subprocess.CompletedProcess(cmd, 0, version[0], "")
        compiles.append(cmd)
        failed = "broken" in Path(cmd[-1]).read_text()
        Path(cmd[cmd.index("-o") + 1]).write_text("half-written" if failed else "lib")
        return subprocess.CompletedProcess(cmd, int(failed), "", "error: broken source" if failed else "")

    monkeypatch.setattr(kernel_variants.shutil, "which", lambda name: "/opt/cuda/bin/nvcc")
    monkeypatch.setattr(kernel_variants, "subprocess", SimpleNamespace(run=run))
    build = functools.partial(kernel_variants.build, out_dir=tmp_path, lib_name="libdcnv2_x.so")
    lib = build("source A")
    assert lib.read_text() == "lib" and (tmp_path / "libdcnv2_x.cu").read_text() == "source A"
    assert build("source A") == lib and len(compiles) == 1  # reused
    build("source A", defines=("CENTERNET_DCN_PREP_PERIOD=20",))
    build("source B")
    version[0] = "nvcc 13.1"
    build("source B")
    assert len(compiles) == 4  # defines, source, nvcc: each rebuilds
    with pytest.raises(SystemExit, match="error: broken source"):
        build("broken source")
    build("source B")
    assert len(compiles) == 6 and lib.read_text() == "lib"  # the half-written library was not reused


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
