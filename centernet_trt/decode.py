"""Network outputs → top-K detections in output-map coordinates, as upstream's ``ctdet_decode`` and
``multi_pose_decode`` compute them (same operations in the same order, so the same numbers and order).

Rows: ctdet ``[x1, y1, x2, y2, score, class]``; multi_pose ``[x1, y1, x2, y2, score, 34 keypoint
coordinates (x, y per joint), class]``. Works on CPU or CUDA tensors.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

from .metadata import ModelMeta

K_DEFAULT = 100           # upstream --K
KEYPOINT_THRESH = 0.1     # upstream's fixed threshold for snapping keypoints to hm_hp peaks


def nms(heat: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    """Keep only local maxima of a heatmap (a 3×3 max-pool stands in for box NMS)."""
    hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=(kernel - 1) // 2)
    return heat * (hmax == heat).float()


def gather(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """feat (B, N, D), ind (B, K) → (B, K, D)."""
    return feat.gather(1, ind.unsqueeze(2).expand(ind.size(0), ind.size(1), feat.size(2)))


def gather_map(fmap: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """fmap (B, C, H, W), flat spatial indices (B, K) → (B, K, C)."""
    b, c = fmap.shape[:2]
    return gather(fmap.permute(0, 2, 3, 1).reshape(b, -1, c), ind)


def topk_channel(scores: torch.Tensor, k: int):
    """Top-k per channel: scores, flat spatial indices, ys, xs, each (B, C, k)."""
    b, c, h, w = scores.shape
    top_scores, top_inds = torch.topk(scores.view(b, c, -1), k)
    top_inds = top_inds % (h * w)
    # Integer division: upstream's float division + truncation gives the same for any real map size.
    ys = torch.div(top_inds, w, rounding_mode="floor").float()
    xs = (top_inds % w).float()
    return top_scores, top_inds, ys, xs


def topk(scores: torch.Tensor, k: int):
    """Top-k over all classes, in upstream's two stages (per class, then across) so ties order alike."""
    b = scores.shape[0]
    top_scores, top_inds, ys, xs = topk_channel(scores, k)
    score, ind = torch.topk(top_scores.view(b, -1), k)
    clses = torch.div(ind, k, rounding_mode="floor").int()
    inds = gather(top_inds.view(b, -1, 1), ind).view(b, k)
    ys = gather(ys.view(b, -1, 1), ind).view(b, k)
    xs = gather(xs.view(b, -1, 1), ind).view(b, k)
    return score, inds, clses, ys, xs


def _centres(xs, ys, reg, inds, b, k):
    if reg is None:
        return xs.view(b, k, 1) + 0.5, ys.view(b, k, 1) + 0.5
    reg = gather_map(reg, inds).view(b, k, 2)
    return xs.view(b, k, 1) + reg[:, :, 0:1], ys.view(b, k, 1) + reg[:, :, 1:2]


def _boxes(xs, ys, wh):
    return torch.cat([xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2,
                      xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], dim=2)


def ctdet_decode(heat, wh, reg=None, k: int = K_DEFAULT) -> torch.Tensor:
    """heat: sigmoid heatmap (B, C, H, W); wh, reg: (B, 2, H, W) → (B, k, 6)."""
    b = heat.shape[0]
    scores, inds, clses, ys, xs = topk(nms(heat), k)
    xs, ys = _centres(xs, ys, reg, inds, b, k)
    wh = gather_map(wh, inds).view(b, k, 2)
    return torch.cat([_boxes(xs, ys, wh), scores.view(b, k, 1), clses.view(b, k, 1).float()], dim=2)


def _snap_keypoints(kps, bboxes, hm_hp, hp_offset, b, k, joints):
    """Move each regressed joint to the nearest hm_hp peak when that peak is confident, inside the box
    and close enough (0.3 × the box's longer side); otherwise keep the regressed position."""
    thresh = KEYPOINT_THRESH
    kps = kps.view(b, k, joints, 2).permute(0, 2, 1, 3).contiguous()  # B × J × K × 2
    reg_kps = kps.unsqueeze(3).expand(b, joints, k, k, 2)
    hm_score, hm_inds, hm_ys, hm_xs = topk_channel(nms(hm_hp), k)    # B × J × K
    if hp_offset is not None:
        off = gather_map(hp_offset, hm_inds.view(b, -1)).view(b, joints, k, 2)
        hm_xs = hm_xs + off[:, :, :, 0]
        hm_ys = hm_ys + off[:, :, :, 1]
    else:
        hm_xs = hm_xs + 0.5
        hm_ys = hm_ys + 0.5
    mask = (hm_score > thresh).float()
    hm_score = (1 - mask) * -1 + mask * hm_score
    hm_ys = (1 - mask) * (-10000) + mask * hm_ys
    hm_xs = (1 - mask) * (-10000) + mask * hm_xs
    hm_kps = torch.stack([hm_xs, hm_ys], dim=-1).unsqueeze(2).expand(b, joints, k, k, 2)
    dist = ((reg_kps - hm_kps) ** 2).sum(dim=4) ** 0.5
    min_dist, min_ind = dist.min(dim=3)                                # B × J × K
    hm_score = hm_score.gather(2, min_ind).unsqueeze(-1)
    min_dist = min_dist.unsqueeze(-1)
    min_ind = min_ind.view(b, joints, k, 1, 1).expand(b, joints, k, 1, 2)
    hm_kps = hm_kps.gather(3, min_ind).view(b, joints, k, 2)
    l, t, r, btm = (bboxes[:, :, i].view(b, 1, k, 1).expand(b, joints, k, 1) for i in range(4))
    reject = ((hm_kps[..., 0:1] < l) + (hm_kps[..., 0:1] > r) + (hm_kps[..., 1:2] < t)
              + (hm_kps[..., 1:2] > btm) + (hm_score < thresh)
              + (min_dist > (torch.max(btm - t, r - l) * 0.3)))
    reject = (reject > 0).float().expand(b, joints, k, 2)
    kps = (1 - reject) * hm_kps + reject * kps
    return kps.permute(0, 2, 1, 3).contiguous().view(b, k, joints * 2)


def multi_pose_decode(heat, wh, kps, reg=None, hm_hp=None, hp_offset=None, k: int = K_DEFAULT):
    """heat, hm_hp: sigmoid heatmaps; kps: (B, 2J, H, W) joint offsets from the centre → (B, k, 5 + 2J + 1)."""
    b = heat.shape[0]
    joints = kps.shape[1] // 2
    scores, inds, clses, ys, xs = topk(nms(heat), k)
    kps = gather_map(kps, inds).view(b, k, joints * 2)
    kps[..., ::2] += xs.view(b, k, 1).expand(b, k, joints)
    kps[..., 1::2] += ys.view(b, k, 1).expand(b, k, joints)
    xs, ys = _centres(xs, ys, reg, inds, b, k)
    wh = gather_map(wh, inds).view(b, k, 2)
    bboxes = _boxes(xs, ys, wh)
    if hm_hp is not None:
        kps = _snap_keypoints(kps, bboxes, hm_hp, hp_offset, b, k, joints)
    return torch.cat([bboxes, scores.view(b, k, 1), kps, clses.view(b, k, 1).float()], dim=2)


def decode(outputs: Mapping[str, object], meta: ModelMeta, k: int = K_DEFAULT) -> torch.Tensor:
    """Raw head outputs (by head name; numpy or torch) → detections, applying the sigmoid the
    upstream detectors apply to ``hm`` and ``hm_hp`` (the exported graph ends at the raw heads)."""
    t = {name: torch.as_tensor(v).float() for name, v in outputs.items()}
    heat = t["hm"].sigmoid()
    if meta.task == "ctdet":
        return ctdet_decode(heat, t["wh"], reg=t.get("reg"), k=k)
    if meta.task == "multi_pose":
        hm_hp = t["hm_hp"].sigmoid() if "hm_hp" in t else None
        return multi_pose_decode(heat, t["wh"], t["hps"], reg=t.get("reg"), hm_hp=hm_hp,
                                 hp_offset=t.get("hp_offset"), k=k)
    raise ValueError(f"no decoder for task {meta.task!r} (ctdet and multi_pose are supported)")
