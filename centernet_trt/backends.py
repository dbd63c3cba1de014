"""Run an exported CenterNet: ONNX Runtime on CPU, or a TensorRT engine on a GPU, behind one interface.

``backend.run(batch)`` takes (N, 3, H, W) float32 and returns {head name: float32 array}. Fixed-batch
models get the batch in chunks (the last one padded), dynamic ones up to their profile's maximum.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import metadata
from .errors import UserError
from .fsutil import sha256_file
from .metadata import ModelMeta

TENSORRT_HINT = ("install TensorRT 10.x or 11.x (`pip install tensorrt` on a machine with an NVIDIA driver) "
                 "or use the container in docker/ (docker/README.md)")


def sidecar_path(engine: str | Path) -> Path:
    """The JSON written beside an engine: ``x_fp16.engine`` → ``x_fp16.json``."""
    return Path(engine).with_suffix(".json")


class Backend:
    """Common batching; subclasses implement ``_run`` for exactly ``n`` images they accept."""
    meta: ModelMeta
    input_name: str = "input"
    output_names: list[str]
    fixed_batch: int | None = None   # a static batch dimension
    min_batch: int = 1               # the profile's minimum for dynamic batch (smaller chunks are padded)
    max_batch: int | None = None     # the profile's maximum for dynamic batch
    input_hw: tuple[int | None, int | None] = (None, None)   # None: a dynamic side
    hw_range: tuple[tuple[int, int], tuple[int, int]] | None = None  # an engine profile's (min, max) HxW
    stride: int = 1                  # dynamic sides must be multiples of this (the arch's: meta.stride)

    @property
    def dynamic_hw(self) -> bool:
        """Takes any input size (a multiple of the stride): needed by --keep-res."""
        return self.input_hw == (None, None)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._check_size(batch.shape[2:])
        step = self.fixed_batch or self.max_batch or len(batch)
        parts = []
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            n = len(chunk)
            least = self.fixed_batch or self.min_batch
            if n < least:  # pad the last chunk up to the batch the model accepts
                chunk = np.concatenate([chunk, np.zeros((least - n, *chunk.shape[1:]), np.float32)])
            parts.append({k: v[:n] for k, v in self._run(chunk).items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in self.output_names}

    def _check_size(self, hw) -> None:
        for want, got, side in zip(self.input_hw, hw, ("height", "width")):
            if want is not None and want != got:
                raise UserError(f"the model takes input {side} {want}, the pre-processed image has {got}; "
                                "drop --keep-res, or re-export with `make onnx INPUT=dynamic` for any size")
        if any(want is None and got % self.stride for want, got in zip(self.input_hw, hw)):
            raise UserError(f"input {hw[0]}x{hw[1]} is not a multiple of {self.meta.arch}'s stride {self.stride}; "
                            "pad it (--keep-res pre-processing does) or resize it to a multiple")
        if self.hw_range:
            (lo_h, lo_w), (hi_h, hi_w) = self.hw_range
            if not (lo_h <= hw[0] <= hi_h and lo_w <= hw[1] <= hi_w):
                raise UserError(f"input {hw[0]}x{hw[1]} is outside the engine's profile {lo_h}x{lo_w} to "
                                f"{hi_h}x{hi_w}; rebuild it with a wider `make engine HW=min:opt:max`")

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def ort_model_bytes(onnx_path: Path, meta: ModelMeta) -> bytes:
    """The ONNX to give ONNX Runtime: DCNv2 custom nodes become standard DeformConv (same numbers),
    with the export check's own rewrite (``check_onnx.ort_runnable``)."""
    if meta.dcn_op != "dcnv2":
        return onnx_path.read_bytes()
    import onnx

    from .check_onnx import ort_runnable

    return ort_runnable(onnx.load(str(onnx_path))).SerializeToString()


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on CPU: the reference, and the way to run the whole flow without a GPU."""

    def __init__(self, onnx_path: str | Path, threads: int = 0):
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        self.meta = metadata.read(onnx_path)
        self.stride = self.meta.stride
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(ort_model_bytes(onnx_path, self.meta), opts,
                                                providers=["CPUExecutionProvider"])
        except UserError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise UserError(f"ONNX Runtime cannot load {onnx_path}: {first}; re-export it with `make onnx`") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = _static(inp.shape[0])
        self.input_hw = (_static(inp.shape[2]), _static(inp.shape[3]))
        names = [o.name for o in self.session.get_outputs()]
        missing = [h for h in self.meta.head_names if h not in names]
        if missing:
            raise UserError(f"{onnx_path} lacks outputs {missing} its metadata lists; re-export it with `make onnx`")
        self.output_names = self.meta.head_names

    def _run(self, batch):
        outs = self.session.run(self.output_names, {self.input_name: batch})
        return {k: np.asarray(v, dtype=np.float32) for k, v in zip(self.output_names, outs)}


# --- TensorRT -------------------------------------------------------------------------------------

def import_tensorrt():
    """The ``tensorrt`` module and a CUDA device, or one line saying what is missing and how to get it."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError(f"TensorRT is not installed for this Python: {TENSORRT_HINT}") from None
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU is visible (TensorRT needs one): run on an NVIDIA GPU machine, "
                        "with `docker run --gpus all` for the container")
    return trt


def trt_major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def gpu_info() -> dict:
    import torch

    dev = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(dev)
    return {"gpu": torch.cuda.get_device_name(dev), "compute_capability": f"{major}.{minor}"}


def init_builtin_plugins(trt, logger) -> None:
    """TensorRT's own plugins (DeformConv parses onto its ModulatedDeformConv2d); the parser does not load them."""
    trt.init_libnvinfer_plugins(logger, "")


_LOADED_PLUGINS: set[Path] = set()


def load_plugin(trt, plugin: str | Path, logger=None) -> None:
    """Load the DCNv2 plugin library into TensorRT's registry and check it registered its creator."""
    plugin = Path(plugin)
    if not plugin.is_file():
        raise UserError(f"plugin library {plugin} not found: build it with `make plugin`")
    if plugin.resolve() in _LOADED_PLUGINS:  # build then run in one process: register its creators once
        return
    registry = trt.get_plugin_registry()
    try:
        handle = registry.load_library(str(plugin))
    except Exception as exc:
        raise UserError(f"TensorRT could not load {plugin} ({exc}); rebuild it with `make plugin` "
                        "against this TensorRT version") from None
    if handle is None:
        raise UserError(f"TensorRT could not load {plugin}; rebuild it with `make plugin` against this TensorRT version")
    try:
        creator = registry.get_creator("DCNv2", "1", "")
    except Exception:
        creator = None
    if creator is None:
        raise UserError(f"{plugin} loaded but registers no DCNv2 (version 1) plugin creator; rebuild it with `make plugin`")
    _LOADED_PLUGINS.add(plugin.resolve())


def read_sidecar(engine: Path) -> dict:
    path = sidecar_path(engine)
    if not path.is_file():
        raise UserError(f"{engine} has no sidecar {path.name} (written by `make engine`), so its plugin and "
                        "GPU cannot be checked; rebuild it with `make engine`")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"sidecar {path} is unreadable ({exc.__class__.__name__}); rebuild with `make engine`") from None


def check_engine_files(engine: str | Path, plugin: str | Path | None) -> dict:
    """Checks that need no TensorRT: the engine is the one its sidecar describes, and the plugin given
    is the one it was built with. Returns the sidecar."""
    engine = Path(engine)
    if not engine.is_file():
        raise UserError(f"engine {engine} not found: build it with `make engine`")
    side = read_sidecar(engine)
    if side.get("engine_sha256") and sha256_file(engine) != side["engine_sha256"]:
        raise UserError(f"engine {engine} does not match its sidecar (corrupt or replaced); rebuild it with `make engine`")
    want = (side.get("plugin") or {}).get("sha256")
    if want:
        if plugin is None:
            raise UserError(f"engine {engine} needs the DCNv2 plugin it was built with: pass --plugin build/libdcnv2_plugin.so")
        if not Path(plugin).is_file():
            raise UserError(f"plugin library {plugin} not found: build it with `make plugin`")
        have = sha256_file(plugin)
        if have != want:
            raise UserError(f"engine {engine} was built with another plugin build (sha256 {want[:12]}…, "
                            f"{Path(plugin).name} is {have[:12]}…); rebuild the engine with `make engine`")
    return side


def check_engine_device(side: dict, engine: str | Path, tensorrt_version: str, device: dict) -> None:
    """TensorRT engines only run on the TensorRT version and GPU model they were built with."""
    built = side.get("tensorrt")
    if built and built != tensorrt_version:
        raise UserError(f"engine {engine} was built with TensorRT {built}, this is TensorRT {tensorrt_version}; "
                        "rebuild it with `make engine`")
    cc = side.get("compute_capability")
    if cc and cc != device["compute_capability"]:
        raise UserError(f"engine {engine} was built for {side.get('gpu')} (compute {cc}), this GPU is "
                        f"{device['gpu']} (compute {device['compute_capability']}); rebuild it with `make engine`")


def torch_dtype(trt, dtype):
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT32": torch.int32,
             "INT64": torch.int64, "INT8": torch.int8, "BOOL": torch.bool, "UINT8": torch.uint8}
    for name, tdt in table.items():
        if getattr(trt.DataType, name, None) == dtype:
            return tdt
    raise UserError(f"engine tensor type {dtype} is not supported by this runner")


class TensorRTBackend(Backend):
    """A serialized engine run through the TensorRT 10/11 tensor-name API on the current CUDA device."""

    def __init__(self, engine_path: str | Path, plugin: str | Path | None = None):
        engine_path = Path(engine_path)
        side = check_engine_files(engine_path, plugin)
        trt = import_tensorrt()
        import torch

        check_engine_device(side, engine_path, trt.__version__, gpu_info())
        self.side = side
        self.meta = ModelMeta.from_json(json.dumps(side["model"]))
        self.stride = self.meta.stride
        self.logger = trt.Logger(trt.Logger.WARNING)
        init_builtin_plugins(trt, self.logger)
        if side.get("plugin"):  # an engine without DCNv2 nodes needs none, whatever --plugin says
            load_plugin(trt, plugin, self.logger)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise UserError(f"TensorRT could not deserialize {engine_path} (see its log above); rebuild it with `make engine`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1:
            raise UserError(f"engine {engine_path} has inputs {inputs}; expected one image input")
        self.input_name = inputs[0]
        self.output_names = self.meta.head_names
        self.dtypes = {n: torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        shape = tuple(self.engine.get_tensor_shape(self.input_name))
        if shape[0] == -1:
            lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        else:
            self.fixed_batch = shape[0]
        self.input_hw = (_static(shape[2]), _static(shape[3]))
        if self.dynamic_hw:
            lo, _, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
            self.hw_range = ((int(lo[2]), int(lo[3])), (int(hi[2]), int(hi[3])))
        self.stream = torch.cuda.Stream()

    def _run(self, batch):
        import torch

        x = torch.from_numpy(batch).to("cuda", self.dtypes[self.input_name]).contiguous()
        if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
            raise UserError(f"batch shape {tuple(x.shape)} is outside the engine's optimization profile; "
                            "rebuild with a wider BATCH=min:opt:max (or HW=min:opt:max)")
        self.context.set_tensor_address(self.input_name, x.data_ptr())
        outs = {}
        for name in self.output_names:
            outs[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name], device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())  # x was written on the default stream
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log above)")
        self.stream.synchronize()
        return {k: v.float().cpu().numpy() for k, v in outs.items()}


def open_backend(kind: str, onnx: str | Path | None = None, engine: str | Path | None = None,
                 plugin: str | Path | None = None) -> Backend:
    if kind == "onnxruntime":
        if onnx is None:
            raise UserError("the onnxruntime backend needs --onnx build/<task>_<arch>.onnx")
        return OnnxRuntimeBackend(onnx)
    if kind == "tensorrt":
        if engine is None:
            raise UserError("the tensorrt backend needs --engine build/<task>_<arch>_<precision>.engine")
        return TensorRTBackend(engine, plugin)
    raise UserError(f"unknown backend {kind!r}; choose tensorrt or onnxruntime")
