"""Development builds of plugin/dcnv2Kernel.cu: a copy patched at fixed anchors, compiled into a shared library with
bench/dcn_ctypes.py's C ABI (bench/timeline_dcn.py's instrumented build, bench/bounds_dcn.py's timing-only builds).

A patch is kernel text with the lines to insert marked by a leading "+": the unmarked lines are the anchor, which must
occur exactly once in the kernel file; the patched text is the anchor with the marked lines in place (the marked lines
may also replace anchor lines, which are then prefixed "-").
"""
from __future__ import annotations

import hashlib
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
    """Compile a (patched) kernel source for sm_90a into out_dir/lib_name, next to a copy of the header it includes.
    A library built before from the same source, header, defines and nvcc is reused (its key is stored beside it), so
    the builds can be made on a machine without a GPU and carried to one: the GPU's time is not spent compiling."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise SystemExit("error: nvcc not on PATH: the development builds of the kernel need the CUDA toolkit")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(lib_name).stem
    lib, src, stamp = out_dir / lib_name, out_dir / f"{stem}.cu", out_dir / f".{stem}.key"
    header = KERNEL.with_suffix(".h").read_text()
    flags = ["-std=c++17", "-O3", "-DCENTERNET_DCN_SM90A", *[f"-D{d}" for d in defines], "-gencode",
             "arch=compute_90a,code=sm_90a", "-shared", "-Xcompiler", "-fPIC"]
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([version, " ".join(flags), header, source]).encode()).hexdigest()
    if lib.is_file() and stamp.is_file() and stamp.read_text() == key:
        return lib
    stamp.unlink(missing_ok=True)  # (a build stopped half-way must not pass for the last complete one)
    # the header by rename, whole: builds side by side in one folder (bench/bounds_dcn.py) never read it half-written
    tmp = out_dir / f".{stem}.h.tmp"
    tmp.write_text(header)
    os.replace(tmp, out_dir / "dcnv2Kernel.h")
    src.write_text(source)
    proc = subprocess.run([nvcc, *flags, "-o", str(lib), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: nvcc failed on {src}:\n{proc.stderr[-3000:]}")
    stamp.write_text(key)
    return lib
