// DCNv2 (modulated deformable convolution v2) forward on CUDA: the kernel API the TensorRT plugin calls.
// Semantics follow torchvision.ops.deform_conv2d with a mask (and upstream DCNv2): bilinear sampling with
// zero padding outside the image, per-tap modulation, output = conv + bias.
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace centernet_trt {

enum class DCNv2DataType : int { kFLOAT = 0, kHALF = 1 };

struct DCNv2Params {
  int batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth;
  int kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW;
  int groups, deformableGroups;
  bool allowTF32;  // fp32 only: TF32 tensor cores (default true); false = strict fp32 path
  // The input given channels-last, [N][H][W][C] (TensorRT's kHWC, or kHWC8 where C % 8 == 0, so no channel padding):
  // read in place, 16-byte aligned, with no transpose pass and no workspace for a copy. Every other tensor as below.
  bool inputNHWC;
  // The output written channels-last, [N][Ho][Wo][Cout] (kHWC, or kHWC8 where Cout % 8 == 0): the same values as NCHW
  // (the fused tactic: the same bits).
  bool outputNHWC;
  // The weight given channels-last, [Cout][kh][kw][Cin/groups] (kHWC, or kHWC8 where Cin/groups % 8 == 0), 16-byte
  // aligned: the warpgroup kernel copies its stages straight from it (no pack pass, no workspace for a packed copy);
  // the other kernels pack it as they pack the linear one. fp16 and strict fp32: the same bits as the linear weight;
  // TF32: the tensor cores read the weight's fp32 values (the pack would round them to TF32 first).
  bool weightNHWC;
};

// Two algorithms (the plugin's TensorRT tactics; TensorRT times both at engine build and keeps the faster):
//   kFused      the fused deformable implicit GEMM (tactic 0, the default; every supported layer);
//   kIm2colGemm sampled columns + a cuBLAS GEMM (tactic 1; 3x3 kernels with 16-byte channel vectors, a build with
//               cuBLAS headers and libcublas loadable at run time). Faster on weight-heavy and large layers.
enum class DCNv2Algo : int { kFused = 0, kIm2colGemm = 1 };

// cuBLAS loaded at run time (dlopen of libcublas.so.<CUDA major>) with a handle of its own; the plugin library never
// links it. Create on the thread/context that will use it, outside enqueue (it allocates). nullptr when cuBLAS
// cannot be loaded; *why (if given) then names the reason and the fix.
struct DCNv2Blas;
DCNv2Blas* dcnv2BlasCreate(char const** why);
void dcnv2BlasDestroy(DCNv2Blas* blas);

// Why `algo` cannot run these params (nullptr: it can). Includes dcnv2CheckSupported's reasons.
char const* dcnv2AlgoUnsupported(DCNv2Params const& p, DCNv2DataType type, DCNv2Algo algo);

// Bytes of scratch the forward needs (the plugin declares it as TensorRT workspace; no allocation in enqueue).
size_t dcnv2WorkspaceSize(DCNv2Params const& p, DCNv2DataType type, DCNv2Algo algo = DCNv2Algo::kFused);
// dcnv2Forward's workspaceSize when the workspace holds at least dcnv2WorkspaceSize(p, type, algo) bytes (the plugin's
// case): the forward takes that size from the launch plan it makes anyway, instead of the caller making one more.
constexpr size_t kDCNv2WorkspaceAsPlanned = ~size_t(0);

// All tensors NCHW contiguous (input, output and weight channels-last where p.inputNHWC / outputNHWC / weightNHWC),
// same type.
// offset: [N, 2*dg*kh*kw, Ho, Wo] laid out like torchvision
// (per deformable group, per tap: dy, dx); mask: [N, dg*kh*kw, Ho, Wo] (already sigmoid-ed); weight:
// [Cout, Cin/groups, kh, kw]; bias: [Cout] (may be nullptr). All device work on `stream`.
// kIm2colGemm needs `blas` (dcnv2BlasCreate); its stream and workspace are set on each call.
cudaError_t dcnv2Forward(DCNv2Params const& p, DCNv2DataType type, void const* input, void const* offset,
    void const* mask, void const* weight, void const* bias, void* output, void* workspace, size_t workspaceSize,
    cudaStream_t stream, DCNv2Algo algo = DCNv2Algo::kFused, DCNv2Blas* blas = nullptr);

// Validates params (positive sizes, divisibility of channels by groups/deformableGroups, ...). Returns nullptr if
// supported, else a static message naming the problem (the plugin reports it at build time).
char const* dcnv2CheckSupported(DCNv2Params const& p, DCNv2DataType type);

// Benchmark/tuning hook: force the split-K factor of later forwards in this process (0 = heuristic).
void dcnv2SetForcedSplits(int splits);
// Benchmark hook: programmatic dependent launch between the kernels on sm_90+ (true = off; default: on since v6).
void dcnv2SetDisablePDL(bool disable);
// Benchmark hook: fp32 layers with two K splits add both into the output (true = off: the finalize pass sums their
// partials, as before v27; default: on).
void dcnv2SetNoSumInOutput(bool off);
// Benchmark hook (process-wide, like the two above): 0 = the default kernels (the sm_90a warpgroup kernel where the
// build carries it); 1 = the shared-memory tile kernel of the first version on every path; 2 = the register-fragment
// kernel with 64-channel blocks only; 3 = the register-fragment kernel (v7's default; no warpgroup kernel).
void dcnv2SetKernelVariant(int variant);
// Benchmark hook: TF32 layers gather from an fp16 copy of the input where the plan allows (v30; true = off: the fp32
// copy, as before v30; default: on).
void dcnv2SetNoHalfCopy(bool off);
// Benchmark hook: fp32 layers that take the fp16 copy run on fp16 tensor cores with the fp16 kernel's plan where it
// applies (v34; true = off: v32's TF32 K loop; default: on).
void dcnv2SetNoHmma(bool off);

// Output spatial size of a convolution (same rule as torch): (in + 2*pad - dil*(k-1) - 1) / stride + 1.
inline int dcnv2OutSize(int in, int k, int stride, int pad, int dil) {
  return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

}  // namespace centernet_trt

extern "C" {
// C ABI for Python ctypes tests/bench (same semantics as dcnv2Forward; dtype 0 = fp32, 1 = fp16; inputNHWC,
// outputNHWC and weightNHWC 0 / 1).
// Returns cudaError_t as int (cudaErrorInvalidValue when dcnv2CheckSupported rejects the params).
int centernet_dcnv2_forward(int batch, int inChannels, int inHeight, int inWidth, int outChannels, int outHeight,
    int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW, int dilationH,
    int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC, int outputNHWC,
    int weightNHWC, void const* input,
    void const* offset, void const* mask, void const* weight, void const* bias, void* output, void* workspace,
    size_t workspaceSize, void* stream);
// kDCNv2WorkspaceAsPlanned: the forward's workspaceSize for "at least centernet_dcnv2_workspace_size" (absent in
// builds before it).
size_t centernet_dcnv2_workspace_as_planned(void);
size_t centernet_dcnv2_workspace_size(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC);
// Static message when unsupported, nullptr when supported.
char const* centernet_dcnv2_check_supported(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC);
// Tuning hook (see dcnv2SetForcedSplits).
void centernet_dcnv2_set_splits(int splits);
void centernet_dcnv2_set_pdl(int enable);
void centernet_dcnv2_set_sum_in_output(int enable);
void centernet_dcnv2_set_variant(int variant);
void centernet_dcnv2_set_half_copy(int enable);
void centernet_dcnv2_set_hmma(int enable);
// The fused path's launch plan on the current device in words (kernel, configuration, tiles, K steps, splits), under
// the hooks set now, for 16-byte aligned tensors (a forward with a misaligned input or fp32 output takes the fp32 copy
// or the finalize pass instead of what the text says); the text stays valid until the calling thread's next call.
char const* centernet_dcnv2_plan(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC);
// Algorithm of later calls in this process (0 = fused, 1 = im2col + cuBLAS, loading cuBLAS on first use): nullptr
// when it can run, else the reason. forward / workspace_size / check_supported then answer for that algorithm.
char const* centernet_dcnv2_set_algo(int algo);
}
