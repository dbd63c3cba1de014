"""Image → network input exactly as upstream's ``BaseDetector.pre_process`` does it (no flip test).

fix_res (upstream default): warp the image, centred and scaled by its longer side, onto the model's
input size. keep_res: pad the image (centred) up to the next multiple of ``pad + 1`` (31 → 32; 127 for
hourglass). Pixels stay BGR, as OpenCV reads them and as the models were trained.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import UserError
from .metadata import ModelMeta


@dataclass
class ImageMeta:
    """What post-processing needs to map outputs back to this image (upstream's ``meta`` dict)."""
    c: np.ndarray          # centre in the (scaled) image, float32 (2,)
    s: float | np.ndarray  # scale: longer side (fix_res) or padded input size (keep_res)
    out_height: int
    out_width: int
    scale: float = 1.0


def third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes (a, b, result) a right angle at b, turning counter-clockwise."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def affine_transform(center, scale, output_size, inv: bool = False) -> np.ndarray:
    """2×3 matrix mapping a box of size ``scale`` centred at ``center`` onto ``output_size`` (w, h).

    Built from three point pairs in float32 like upstream (rotation 0), so it matches bit for bit.
    """
    if not isinstance(scale, (np.ndarray, list)):
        scale = np.array([scale, scale], dtype=np.float32)
    src_w = scale[0]
    dst_w, dst_h = output_size
    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0, src_w * -0.5], dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5], np.float32) + np.array([0, dst_w * -0.5], np.float32)
    src[2] = third_point(src[0], src[1])
    dst[2] = third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def default_pad(arch: str) -> int:
    """Upstream's keep_res padding: hourglass downsamples 128×, the others 32×."""
    return 127 if "hourglass" in arch else 31


def preprocess(image: np.ndarray, meta: ModelMeta, keep_res: bool = False, scale: float = 1.0,
               pad: int | None = None) -> tuple[np.ndarray, ImageMeta]:
    """One BGR uint8 image (H, W, 3) → (3, h, w) float32 network input and its ``ImageMeta``."""
    if image is None or image.ndim != 3 or image.shape[2] != 3:
        raise UserError("expected a 3-channel BGR image; convert it to colour JPEG/PNG first")
    pad = default_pad(meta.arch) if pad is None else pad
    height, width = image.shape[:2]
    new_height, new_width = int(height * scale), int(width * scale)
    if keep_res:
        inp_height, inp_width = (new_height | pad) + 1, (new_width | pad) + 1
        c = np.array([new_width // 2, new_height // 2], dtype=np.float32)
        s = np.array([inp_width, inp_height], dtype=np.float32)
    else:
        inp_height, inp_width = meta.input_h, meta.input_w
        c = np.array([new_width / 2.0, new_height / 2.0], dtype=np.float32)
        s = max(height, width) * 1.0
    trans = affine_transform(c, s, [inp_width, inp_height])
    resized = cv2.resize(image, (new_width, new_height))
    warped = cv2.warpAffine(resized, trans, (inp_width, inp_height), flags=cv2.INTER_LINEAR)
    mean = np.array(meta.mean, dtype=np.float32).reshape(1, 1, 3)
    std = np.array(meta.std, dtype=np.float32).reshape(1, 1, 3)
    # Same arithmetic as upstream: float64 normalisation, then float32.
    inp = ((warped / 255.0 - mean) / std).astype(np.float32)
    return inp.transpose(2, 0, 1), ImageMeta(c=c, s=s, out_height=inp_height // meta.down_ratio,
                                             out_width=inp_width // meta.down_ratio, scale=scale)


def stack(inputs: list[np.ndarray]) -> np.ndarray:
    """Batch (3, h, w) inputs; they must share one size (always true in fix_res mode)."""
    shapes = {x.shape for x in inputs}
    if len(shapes) != 1:
        raise UserError(f"images of different padded sizes {sorted(shapes)} cannot share a batch; "
                        "use --batch-size 1 with --keep-res")
    return np.ascontiguousarray(np.stack(inputs))
