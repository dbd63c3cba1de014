"""centernet-trt: upstream CenterNet → patched tree → ONNX (DCNv2 op) → TensorRT engine."""

__version__ = "0.1.0"
