"""Development builds of plugin/dcnv2Kernel.cu: a copy patched at fixed anchors, compiled into a shared library with
bench/dcn_ctypes.py's C ABI (bench/timeline_dcn.py's instrumented build, bench/bounds_dcn.py's timing-only builds).

A patch is kernel text with the lines to insert marked by a leading "+": the unmarked lines are the anchor, which must
occur exactly once in the kernel file; the patched text is the anchor with the marked lines in place (the marked lines
may also replace anchor lines, which are then prefixed "-").
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "plugin" / "dcnv2Kernel.cu"


def anchor_and_replacement(patch: str) -> tuple[str, str]:
    """(text the kernel must contain once, what replaces it) of a patch: "+" lines are added, "-" lines removed."""
    lines = patch.split("\n")
    anchor = "\n".join(line[1:] if line.startswith("-") else line for line in lines if not line.startswith("+"))
    replacement = "\n".join(line[1:] if line.startswith("+") else line for line in lines if not line.startswith("-"))
    return anchor, replacement


def apply(source: str, edits: list[tuple[str, str]], owner: str) -> str:
    """The source with every (anchor, replacement) applied; a clear error, naming the script whose patches to update
    (owner), where the kernel no longer has an anchor exactly once."""
    for anchor, replacement in edits:
        count = source.count(anchor)
        if count != 1:
            raise SystemExit(f"error: {KERNEL.name} has {count} copies of a patch anchor (want 1); update {owner} "
                             f"to the kernel's code:\n{anchor}")
        source = source.replace(anchor, replacement)
    return source


def build(source: str, out_dir: Path, lib_name: str, defines: tuple[str, ...] = ()) -> Path:
    """Compile a (patched) kernel source for sm_90a into out_dir/lib_name, next to a copy of the header it includes."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise SystemExit("error: nvcc not on PATH: the development builds of the kernel need the CUDA toolkit")
    out_dir.mkdir(parents=True, exist_ok=True)
    # the header by rename, whole: builds side by side in one folder (bench/bounds_dcn.py) never read it half-written
    tmp = out_dir / f".{Path(lib_name).stem}.h.tmp"
    shutil.copy(KERNEL.with_suffix(".h"), tmp)
    os.replace(tmp, out_dir / "dcnv2Kernel.h")
    src = out_dir / f"{Path(lib_name).stem}.cu"
    src.write_text(source)
    lib = out_dir / lib_name
    proc = subprocess.run([nvcc, "-std=c++17", "-O3", "-DCENTERNET_DCN_SM90A", *[f"-D{d}" for d in defines],
                           "-gencode", "arch=compute_90a,code=sm_90a", "-shared", "-Xcompiler", "-fPIC", "-o", str(lib),
                           str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: nvcc failed on {src}:\n{proc.stderr[-3000:]}")
    return lib
