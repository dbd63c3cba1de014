"""Detect on images with an engine (TensorRT) or an ONNX (ONNX Runtime, CPU); write COCO-style JSON
and drawn images.

    python -m centernet_trt.infer --img images/ --backend onnxruntime --onnx build/ctdet_resdcn_18.onnx
    python -m centernet_trt.infer --img a.jpg --engine build/ctdet_resdcn_18_fp16.engine --plugin build/libdcnv2_plugin.so

Pre-processing, decode and post-processing are upstream's (see preprocess/decode/postprocess). Output:
``<out>/detections.json`` and ``<out>/<image name>`` with boxes (and keypoints for multi_pose). All
files are staged and moved into place at the end, so a failure leaves nothing partial.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from . import coco, decode, postprocess, preprocess
from .backends import Backend, open_backend
from .errors import UserError, cli
from .metadata import ModelMeta

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"--img {path} does not exist; give an image file or a folder of images")
    images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not images:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) in {path}")
    return images


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path} (not an image, corrupt, or unreadable); fix or remove it")
    return image


def to_records(image_id: int, name: str, result: dict, meta: ModelMeta, thresh: float) -> list[dict]:
    """COCO result format (bbox = x, y, w, h) plus the file and class name."""
    names = coco.class_names(meta.task, meta.num_classes)
    records = []
    for cls_id, rows in result.items():
        for row in rows:
            score = float(row[4])
            if score <= thresh:
                continue
            x1, y1, x2, y2 = (float(v) for v in row[:4])
            rec = {"image_id": image_id, "file_name": name,
                   "category_id": coco.category_id(meta.task, meta.num_classes, cls_id - 1),
                   "category_name": names[cls_id - 1],
                   "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                   "score": round(score, 4)}
            if meta.task == "multi_pose":
                pts = np.asarray(row[5:], dtype=np.float64).reshape(-1, 2)
                rec["keypoints"] = [round(float(v), 2) for p in pts for v in (p[0], p[1], 1)]
            records.append(rec)
    records.sort(key=lambda r: -r["score"])
    return records


def color(i: int) -> tuple[int, int, int]:
    hue = (i * 47) % 180
    return tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 200, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])


def draw(image: np.ndarray, records: list[dict], task: str) -> np.ndarray:
    out = image.copy()
    for rec in sorted(records, key=lambda r: r["score"]):
        x, y, w, h = rec["bbox"]
        c = color(rec["category_id"])
        p1, p2 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(out, p1, p2, c, 2)
        label = f"{rec['category_name']} {rec['score']:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(p1[1], th + 4)
        cv2.rectangle(out, (p1[0], top - th - 4), (p1[0] + tw + 2, top), c, -1)
        cv2.putText(out, label, (p1[0] + 1, top - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if task == "multi_pose":
            pts = np.asarray(rec["keypoints"]).reshape(-1, 3)[:, :2].round().astype(int)
            for a, b in coco.SKELETON:
                if a < len(pts) and b < len(pts) and pts[[a, b]].min() > 0:
                    cv2.line(out, tuple(map(int, pts[a])), tuple(map(int, pts[b])), (255, 0, 0), 2, cv2.LINE_AA)
            for p in pts:
                cv2.circle(out, tuple(map(int, p)), 3, (0, 0, 255), -1)
    return out


def batches(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def detect(backend: Backend, images: list[np.ndarray], keep_res: bool = False, k: int = decode.K_DEFAULT):
    """BGR images → upstream-style results dicts (one per image), run as one backend batch per input size."""
    meta = backend.meta
    prepped = [preprocess.preprocess(img, meta, keep_res=keep_res) for img in images]
    results: list = [None] * len(images)
    by_shape: dict = {}
    for i, (x, _) in enumerate(prepped):
        by_shape.setdefault(x.shape, []).append(i)
    for idx in by_shape.values():
        outputs = backend.run(preprocess.stack([prepped[i][0] for i in idx]))
        dets = decode.decode(outputs, meta, k=k).numpy()
        for i, res in zip(idx, postprocess.postprocess(dets, [prepped[i][1] for i in idx], meta)):
            results[i] = res
    return results


def run(img, backend: Backend, out: str | Path, thresh: float = 0.3, batch_size: int = 1,
        keep_res: bool = False, draw_images: bool = True) -> list[dict]:
    if batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {batch_size}")
    if keep_res and not backend.dynamic_hw:
        h, w = backend.input_hw
        raise UserError(f"--keep-res runs each image at its own padded size, but this model takes only "
                        f"{h or '?'}x{w or '?'} input: re-export it with `make onnx INPUT=dynamic`"
                        + (" and rebuild the engine (`make engine`)" if hasattr(backend, "engine") else ""))
    paths = list_images(img)
    out = Path(out)
    if any(p.parent.resolve() == out.resolve() for p in paths):
        raise UserError(f"--out {out} is the image folder; choose another so drawn images do not replace inputs")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    records: list[dict] = []
    try:
        for group in batches(list(enumerate(paths)), batch_size):
            images = [read_image(p) for _, p in group]
            for (i, p), image, res in zip(group, images, detect(backend, images, keep_res)):
                recs = to_records(i, p.name, res, backend.meta, thresh)
                records += recs
                if draw_images and not cv2.imwrite(str(stage / p.name), draw(image, recs, backend.meta.task)):
                    raise UserError(f"cannot encode {p.name} for writing; use a .jpg or .png name")
                top = ", ".join(f"{r['category_name']} {r['score']:.2f}" for r in recs[:3])
                print(f"{p.name}: {len(recs)} detection(s) above {thresh}" + (f" ({top}{', …' if len(recs) > 3 else ''})" if recs else ""))
        # One detection per line: greppable, diffable, still one JSON list.
        (stage / "detections.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(stage.iterdir()):
            # move, not rename: --out may be another filesystem (a Docker bind mount, docker/README.md)
            shutil.move(str(f), str(out / f.name))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"wrote {out / 'detections.json'} ({len(records)} detections)"
          + (f" and {len(paths)} drawn image(s) to {out}" if draw_images else ""))
    return records


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m centernet_trt.infer", description=__doc__.split("\n")[0])
    ap.add_argument("--img", required=True, help="image file or folder")
    ap.add_argument("--backend", choices=("tensorrt", "onnxruntime"),
                    help="default: tensorrt with --engine, onnxruntime with --onnx")
    ap.add_argument("--engine", help="TensorRT engine (make engine); checked against its JSON sidecar")
    ap.add_argument("--onnx", help="exported ONNX (make onnx), for the onnxruntime backend")
    ap.add_argument("--plugin", help="libdcnv2_plugin.so the engine was built with")
    ap.add_argument("--thresh", type=float, default=0.3, help="minimum score written and drawn")
    ap.add_argument("--out", default="build/infer", help="output folder")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--keep-res", action="store_true",
                    help="upstream's keep_res: pad each image to a multiple of 32 (hourglass 128) instead of "
                         "resizing; needs a model exported with `make onnx INPUT=dynamic`")
    ap.add_argument("--no-draw", action="store_true", help="write only detections.json")
    return ap


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    kind = args.backend or ("tensorrt" if args.engine else "onnxruntime")
    list_images(args.img)  # cheap input checks before loading a model
    backend = open_backend(kind, onnx=args.onnx, engine=args.engine, plugin=args.plugin)
    run(args.img, backend, args.out, args.thresh, args.batch_size, args.keep_res, not args.no_draw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
