"""TensorRT engine (plugin loaded) vs ONNX Runtime (CPU) on the same inputs: one line per output.

    python -m centernet_trt.compare --onnx build/ctdet_resdcn_18.onnx \
        --engine build/ctdet_resdcn_18_fp16.engine --plugin build/libdcnv2_plugin.so [--img photo.jpg]

fp32 engines: every element must satisfy |trt - ort| <= atol + rtol * |ort| (numpy/polygraphy
``allclose``, 1e-3 each by default; TF32 is off in fp32 engines).
fp16 engines: how far fp16 moves an output depends on the weights (random weights amplify input noise
of 1e-3 into 2 % output changes), so a fixed tolerance is either loose or fails good engines. The
budget is measured instead: ONNX Runtime runs the same model as an fp16 graph (``engine.to_fp16``),
and the engine passes when its max and mean error against fp32 stay within ``FP16_SLACK`` × that
faithful fp16 execution's. Decoded top detections are compared too (trained weights only: random
weights saturate every score). Exit 0 when all pass, 1 when something differs, 2 on bad input or
without TensorRT.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import decode, preprocess
from .backends import OnnxRuntimeBackend, TensorRTBackend
from .errors import UserError, cli

FP32_TOL = (1e-3, 1e-3)  # (atol, rtol) on raw head outputs
FP16_SLACK = 2.0         # an fp16 engine may be this much less accurate than ORT's fp16 graph
SCORE_FLOOR = 0.1  # detections compared: those either side scores above this


def compare_outputs(ref: dict, got: dict, atol: float, rtol: float) -> list[dict]:
    rows = []
    for name, r in ref.items():
        g = got[name]
        if g.shape != r.shape:
            rows.append({"name": name, "ok": False, "line": f"{name}: shape {g.shape} vs {r.shape}  FAIL"})
            continue
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        bad = diff > atol + rtol * np.abs(r)
        ok = not bad.any() and np.isfinite(g).all()
        rows.append({"name": name, "ok": ok, "max_abs": float(diff.max()), "line":
                     f"{name:>9} {str(tuple(r.shape)):>18}: max|d| {diff.max():.3e}  mean|d| {diff.mean():.3e}  "
                     f"|ref| max {np.abs(r).max():.3e}  outside tol {bad.mean() * 100:.3f}%  "
                     f"(atol {atol:g}, rtol {rtol:g})  {'PASS' if ok else 'FAIL'}"})
    return rows


def compare_to_budget(ref: dict, got: dict, fp16_ref: dict, slack: float = FP16_SLACK) -> list[dict]:
    """fp16: pass when max and mean |got - ref| are within ``slack`` × those of ``fp16_ref`` (+1e-3 floor)."""
    rows = []
    for name, r in ref.items():
        if got[name].shape != r.shape:
            rows.append({"name": name, "ok": False, "line": f"{name}: shape {got[name].shape} vs {r.shape}  FAIL"})
            continue
        d = np.abs(got[name].astype(np.float64) - r)
        b = np.abs(fp16_ref[name].astype(np.float64) - r)
        ok = (np.isfinite(got[name]).all()
              and d.max() <= slack * b.max() + 1e-3 and d.mean() <= slack * b.mean() + 1e-3)
        rows.append({"name": name, "ok": bool(ok), "line":
                     f"{name:>9} {str(tuple(r.shape)):>18}: max|d| {d.max():.3e}  mean|d| {d.mean():.3e}  "
                     f"(fp16 budget: max {slack * b.max() + 1e-3:.3e}, mean {slack * b.mean() + 1e-3:.3e})  "
                     f"{'PASS' if ok else 'FAIL'}"})
    return rows


def compare_detections(ref: dict, got: dict, meta, min_match: float = 0.9) -> dict:
    """Top-K boxes of both outputs: the share of confident reference detections that the other side
    has with the same class and IoU >= 0.9."""
    a = decode.decode(ref, meta).numpy()
    b = decode.decode(got, meta).numpy()
    hits = total = 0
    for da, db in zip(a, b):
        keep_a, keep_b = da[da[:, 4] > SCORE_FLOOR], db[db[:, 4] > SCORE_FLOOR]
        for row in keep_a:
            total += 1
            same = keep_b[keep_b[:, -1] == row[-1]]
            if len(same) and iou(row[:4], same[:, :4]).max() >= 0.9:
                hits += 1
    share = hits / total if total else 1.0
    ok = share >= min_match
    return {"ok": ok, "line": f"detections: {hits}/{total} with score > {SCORE_FLOOR} matched (class, IoU >= 0.9)"
                               f"  {'PASS' if ok else 'FAIL'}"}


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def fp16_reference(onnx_path, meta, x: np.ndarray) -> dict:
    """ONNX Runtime running the model as the fp16 graph a strongly typed engine is built from."""
    import onnx
    import onnxruntime as ort

    from .backends import ort_model_bytes
    from .engine import to_fp16

    model = to_fp16(onnx.load_from_string(ort_model_bytes(Path(onnx_path), meta)))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(meta.head_names, sess.run(meta.head_names, {sess.get_inputs()[0].name: x})))


def inputs(meta, batch: int, img: str | None, seed: int) -> np.ndarray:
    """Pre-processed real images when given (the distribution that matters), else seeded N(0, 1)."""
    if img:
        from .infer import list_images, read_image

        xs = [preprocess.preprocess(read_image(p), meta)[0] for p in list_images(img)]
        return np.stack([xs[i % len(xs)] for i in range(batch)])
    return np.random.default_rng(seed).standard_normal((batch, 3, meta.input_h, meta.input_w)).astype(np.float32)


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m centernet_trt.compare", description=__doc__.split("\n")[0])
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--engine", required=True)
    ap.add_argument("--plugin")
    ap.add_argument("--img", help="image file or folder to use as input (default: random normal input)")
    ap.add_argument("--batch", type=int, help="batch size (default: the engine's opt batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--atol", type=float, help=f"fixed tolerance instead of the default (fp32 {FP32_TOL[0]:g}; fp16: measured budget)")
    ap.add_argument("--rtol", type=float, help=f"(fp32 default {FP32_TOL[1]:g})")
    args = ap.parse_args(argv)
    trt_backend = TensorRTBackend(args.engine, args.plugin)  # checks engine/sidecar/plugin before importing TensorRT
    side = trt_backend.side
    ort_backend = OnnxRuntimeBackend(args.onnx)
    if ort_backend.meta.head_names != trt_backend.meta.head_names:
        raise UserError(f"{args.onnx} and {args.engine} are different models (heads differ); pass the ONNX the engine was built from")
    if Path(args.onnx).name != side["onnx"]["path"]:
        print(f"note: the engine was built from {side['onnx']['path']}, comparing against {args.onnx}")
    precision = side.get("precision", "fp32")
    batch = args.batch or side.get("batch", {}).get("opt", 1)
    x = inputs(ort_backend.meta, batch, args.img, args.seed)
    ref, got = ort_backend.run(x), trt_backend.run(x)
    print(f"TensorRT {side.get('tensorrt')} {precision} on {side.get('gpu')} vs ONNX Runtime (CPU) fp32, "
          f"input {tuple(x.shape)}")
    if precision == "fp16" and args.atol is None and args.rtol is None:
        rows = compare_to_budget(ref, got, fp16_reference(args.onnx, ort_backend.meta, x))
    else:
        rows = compare_outputs(ref, got, args.atol if args.atol is not None else FP32_TOL[0],
                               args.rtol if args.rtol is not None else FP32_TOL[1])
    if ort_backend.meta.random_weights:
        print("detections: not compared (random weights saturate every score)")
    else:
        rows.append(compare_detections(ref, got, ort_backend.meta))
    for row in rows:
        print(row["line"])
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
