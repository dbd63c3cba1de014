"""Decoded detections → image coordinates, grouped as upstream's ``ctdet_post_process`` /
``multi_pose_post_process`` and the detectors' ``post_process`` / ``merge_outputs`` (single scale,
no flip) return them: a dict per image, 1-based class id → float32 rows."""
from __future__ import annotations

import numpy as np

from .metadata import ModelMeta
from .preprocess import ImageMeta, affine_transform

MAX_PER_IMAGE = 100  # upstream BaseDetector.max_per_image


def to_image(coords: np.ndarray, im: ImageMeta) -> np.ndarray:
    """(N, 2) output-map points → image points (float64), the inverse of the input warp."""
    trans = affine_transform(im.c, im.s, (im.out_width, im.out_height), inv=True)
    pts = np.concatenate([coords.astype(np.float32), np.ones((len(coords), 1), np.float32)], axis=1)
    return pts.astype(np.float64) @ trans.T


def ctdet(dets: np.ndarray, im: ImageMeta, num_classes: int) -> dict[int, np.ndarray]:
    """One image's (K, 6) rows → {class + 1: (n, 5) [x1, y1, x2, y2, score]}, in score order."""
    dets = np.asarray(dets, dtype=np.float32)
    boxes = to_image(dets[:, :4].reshape(-1, 2), im).reshape(-1, 4).astype(np.float32) / im.scale
    out = {}
    for j in range(num_classes):
        sel = dets[:, -1] == j
        out[j + 1] = np.concatenate([boxes[sel], dets[sel, 4:5]], axis=1).astype(np.float32)
    # merge_outputs: keep the best MAX_PER_IMAGE over all classes (a no-op for K <= 100).
    scores = np.hstack([out[j][:, 4] for j in out])
    if len(scores) > MAX_PER_IMAGE:
        kth = len(scores) - MAX_PER_IMAGE
        thresh = np.partition(scores, kth)[kth]
        out = {j: v[v[:, 4] >= thresh] for j, v in out.items()}
    return out


def multi_pose(dets: np.ndarray, im: ImageMeta) -> dict[int, np.ndarray]:
    """One image's (K, 40) rows → {1: (K, 39) [x1, y1, x2, y2, score, 17 × (x, y)]}."""
    dets = np.asarray(dets, dtype=np.float32)
    joints2 = dets.shape[1] - 6
    boxes = to_image(dets[:, :4].reshape(-1, 2), im).reshape(-1, 4)
    pts = to_image(dets[:, 5:5 + joints2].reshape(-1, 2), im).reshape(-1, joints2)
    rows = np.concatenate([boxes, dets[:, 4:5], pts], axis=1).astype(np.float32)
    rows[:, :4] /= im.scale
    rows[:, 5:] /= im.scale
    return {1: rows}


def postprocess(dets: np.ndarray, metas: list[ImageMeta], meta: ModelMeta) -> list[dict[int, np.ndarray]]:
    """Batch (B, K, D) decoded rows → one results dict per image."""
    dets = np.asarray(dets)
    if meta.task == "multi_pose":
        return [multi_pose(d, im) for d, im in zip(dets, metas)]
    return [ctdet(d, im, meta.num_classes) for d, im in zip(dets, metas)]
