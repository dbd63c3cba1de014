"""The model description every exported ONNX carries, and that engine/infer/compare read back.

Stored as one JSON string under the ONNX ``metadata_props`` key ``centernet_trt``; the engine's
JSON sidecar embeds the same dict under ``"model"``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

METADATA_KEY = "centernet_trt"
FORMAT_VERSION = 1


@dataclass
class ModelMeta:
    arch: str                      # e.g. "resdcn_18"
    task: str                      # "ctdet" | "multi_pose"
    heads: list[tuple[str, int]]   # output order: [(name, channels), ...]; ONNX outputs carry these names
    input_h: int                   # the input size; with extra["dynamic_hw"], the default (traced) size
    input_w: int
    mean: list[float]              # per channel, BGR order as upstream applies it
    std: list[float]
    down_ratio: int = 4
    num_classes: int = 80
    batch: str = "1"               # "1", "N" (an int as text) or "dynamic"
    dcn_op: str = "dcnv2"          # "dcnv2" | "deformconv" | "none" (archs without DCN)
    dcn_domain: str = ""           # ONNX domain of the DCNv2 nodes ("" = recipe form)
    upstream_commit: str = ""
    checkpoint: str = ""           # file name, or "random"
    checkpoint_sha256: str = ""
    random_weights: bool = False
    num_joints: int = 0            # 17 for multi_pose
    opset: int = 0
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def head_names(self) -> list[str]:
        return [name for name, _ in self.heads]

    @property
    def dynamic_hw(self) -> bool:
        """Exported with dynamic H and W (INPUT=dynamic): any multiple of ``extra["stride"]`` runs."""
        return bool((self.extra or {}).get("dynamic_hw"))

    @property
    def stride(self) -> int:
        """What input sides must be multiples of (32; hourglass 128)."""
        return int((self.extra or {}).get("stride") or (128 if "hourglass" in self.arch else 32))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelMeta":
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise UserError(f"model metadata format {data.get('format_version')!r} is not {FORMAT_VERSION}; "
                            "re-export the ONNX with this version (`make onnx`)")
        data["heads"] = [tuple(h) for h in data["heads"]]
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def attach(model_proto, meta: ModelMeta) -> None:
    """Set (replace) our metadata entry on an ``onnx.ModelProto``."""
    for prop in list(model_proto.metadata_props):
        if prop.key == METADATA_KEY:
            model_proto.metadata_props.remove(prop)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()


def read(model_or_path) -> ModelMeta:
    """Metadata of an ONNX file or ``ModelProto``; a clear error if it was not exported by us."""
    import onnx

    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if not path.is_file():
            raise UserError(f"ONNX file {path} not found: export it with `make onnx ARCH=...`")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and friends
            raise UserError(f"{path} is not a readable ONNX file ({exc.__class__.__name__}); re-export it") from None
        where = str(path)
    else:
        model, where = model_or_path, "the ONNX model"
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelMeta.from_json(prop.value)
    raise UserError(f"{where} has no centernet-trt metadata: export it with `make onnx` "
                    "(infer needs the arch, heads, input size and mean/std it records)")
