#!/usr/bin/env bash
# Build libdcnv2_plugin.so and its IPluginV3 interface harness against the TensorRT headers at $TRT_INCLUDE, then
# run the harness (full GPU checks when a CUDA device is present, interface checks only otherwise).
#   TRT_INCLUDE=/path/to/TensorRT/include bash plugin/tests/run_harness.sh [--interface-only]
# Env: BUILD_DIR (default build/plugin-harness-<trt version>), CUDA_ARCHITECTURES (default: this GPU's, else CMake's).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

: "${TRT_INCLUDE:?set TRT_INCLUDE to the folder holding NvInferRuntime.h (TensorRT 10.x or 11.x headers)}"
if [[ ! -f "$TRT_INCLUDE/NvInferRuntime.h" ]]; then
  echo "error: $TRT_INCLUDE/NvInferRuntime.h not found; point TRT_INCLUDE at TensorRT's include folder" >&2
  exit 2
fi
TRT_INCLUDE="$(cd "$TRT_INCLUDE" && pwd)"
version="$(sed -nE 's/^#define (TRT_MAJOR_ENTERPRISE|NV_TENSORRT_MAJOR) +([0-9]+).*/\2/p' "$TRT_INCLUDE/NvInferVersion.h" | head -1)"
version+=".$(sed -nE 's/^#define (TRT_MINOR_ENTERPRISE|NV_TENSORRT_MINOR) +([0-9]+).*/\2/p' "$TRT_INCLUDE/NvInferVersion.h" | head -1)"
build="${BUILD_DIR:-$root/build/plugin-harness-$version}"

archs="${CUDA_ARCHITECTURES:-}"
if [[ -z "$archs" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')" || cc=""
  # Hopper: build sm_90a, the target the kernel is measured with (bench/gpu_run.sh).
  case "$cc" in
    90) archs="90a-real" ;;
    [0-9]*) archs="${cc}-real" ;;
  esac
fi

echo "== TensorRT headers $version at $TRT_INCLUDE; build dir $build; CUDA archs ${archs:-CMake default}"
cmake -S "$root/plugin" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTRT_INCLUDE="$TRT_INCLUDE" \
  ${archs:+-DCMAKE_CUDA_ARCHITECTURES="$archs"} >/dev/null
cmake --build "$build" -j "$(nproc)"
"$build/dcnv2_plugin_harness" "$build/libdcnv2_plugin.so" "$@"
