// DCNv2 forward as a fused deformable implicit GEMM.
//
//   M = output pixels, N = output channels, K = taps * input channels (per conv group).
//   1. prep kernel (one launch): input NCHW -> NHWC in workspace (so each bilinear corner is one 16-byte
//      channel vector; for the warpgroup kernel's TF32, v30, as a scaled fp16 copy), weight packed for
//      the main kernel. Neither where the plugin is handed the tensor
//      channels-last (DCNv2Params::inputNHWC / weightNHWC): the input is read in place, and dcnWgKernel copies its
//      weight stages straight from a channels-last weight; with both, there is no prep launch.
//   2. main kernel: a block owns an 8 x 8 output-pixel patch x 64 (or 128) output channels and a range of K
//      steps (split-K when the tile grid alone cannot fill the GPU). It first builds a shared table of the
//      4 corner offsets and 4 weights (bilinear x mask) per (pixel, deformable group, tap) for the taps of its
//      range; then walks K channel-step outer, tap inner (the sampled window stays in L1).
//      - dcnWgKernel (fp16 and TF32 with 16-byte vectors on compute capability 9.0, builds with sm_90a code): two
//        warpgroups per block split the block's K steps (intra-block split-K, summed in shared memory at the end);
//        each blends whole 128-byte channel lines into a swizzled shared A stage, its weight arrives by a bulk copy
//        (TMA) or cp.async (a channels-last weight: by the TMA unit through a tensor map, which swizzles the rows),
//        and wgmma reads both from shared memory while the threads gather and blend the next steps. fp32 layers
//        with an NCHW input gather from an fp16 copy the prep kernel writes (v30) and, where the fp16 kernel's plan
//        applies, run its K loop on fp16 tensor cores with scaled operands (HMMA, v34); else TF32 wgmma.
//      - dcnRegKernel (fp16 and TF32 with 16-byte vectors, sm_80+ otherwise): no shared-memory A tile. Each
//        warp gathers + blends its own 16 pixels straight into mma.sync A fragments (K permuted inside a step so
//        a lane's fragment elements are one corner vector), B fragments come from a weight pre-packed in the same
//        order (one coalesced 16-byte load per n-tile, L1-resident); two K groups of warps split the steps and
//        are summed through shared memory at the end. One step is gathered ahead while the MMAs run.
//      - dcnMainKernel (strict fp32 FFMA, scalar gathers for channel counts not a multiple of the vector, and
//        pre-Ampere): gathers + blends into a shared A tile, B tile copied from the packed weight, WMMA or FFMA;
//        register prefetch of the next chunk + double-buffered tiles, one barrier per chunk.
//      Epilogue: bias added, output written NCHW (under split-K: the fp32 partial stored in this split's own
//      workspace slice; no atomics, so every run gives the same bits).
//   3. finalize (split-K only): the partials summed in split order + bias -> output type.
//   On sm_90 the main and finalize kernels use programmatic dependent launch: the sampling table (which reads
//   only offset and mask) is built while the prep kernel drains, and the finalize's blocks wait on the SMs the main
//   grid leaves free.
// A second algorithm (DCNv2Algo::kIm2colGemm, the plugin's TensorRT tactic 1): the prep kernel's NHWC copy, then
// dcnIm2colKernel writes the samples once as a column matrix and cuBLAS (opened at run time) multiplies it by the
// weight as it lies. TensorRT times both per layer; it wins on weight-heavy and large layers and in strict fp32.
// docs/kernel.md has the design notes, the floor arithmetic and the measured times.
#include "dcnv2Kernel.h"

#include <cuda.h>  // CUtensorMap and its enums (types only: the encoder comes through cudaGetDriverEntryPoint)
#include <cuda_fp16.h>
#include <mma.h>
// cuBLAS for the im2col tactic: its headers at build time where the toolkit has them, the library loaded at run
// time (dlopen, as TensorRT's own plugins do), so the plugin links only the CUDA runtime and loads without cuBLAS.
#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>
#include <dlfcn.h>
#define CENTERNET_DCN_CUBLAS 1
#endif
#include <string>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>

// TF32 tensor-core instructions exist from sm_80 on; for older targets the TF32 variants compile to a trap and the
// host never launches them (it takes the FFMA path instead).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define CENTERNET_DCN_NO_TF32 1
#endif

namespace centernet_trt {
namespace {

using namespace nvcuda;

constexpr int kThreads = 256;  // 8 warps
constexpr int kBM = 64;        // output pixels per block: an 8 x 8 patch, so the bilinear corners of all taps
constexpr int kTW = 8;         // of a channel chunk fall in a small window that stays in L1
constexpr int kTH = kBM / kTW;
constexpr int kBNSmall = 64;   // output channels per block (FFMA / scalar-gather paths, and Cout_g <= 64)
constexpr int kBNLarge = 128;  // fp16 tile kernel when Cout_g > 64: one gathered A tile feeds twice the MMAs
constexpr size_t kAlign = 256;

// Compute modes of the main kernel.
constexpr int kModeHalf = 0;  // fp16 operands, HMMA
constexpr int kModeTF32 = 1;  // fp32 storage, TF32 HMMA
constexpr int kModeFFMA = 2;  // fp32 storage, exact fp32 FFMA

// Programmatic dependent launch (Hopper+): the next kernel starts while the previous one drains; it calls
// gridDependencyWait() before touching what the previous kernel wrote.
__device__ __forceinline__ void gridDependencyWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void gridDependentsMayLaunch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#ifdef CENTERNET_DCN_NO_TF32
template <int MODE> struct MmaIn { using type = __half; };
template <typename F> __device__ __forceinline__ F toTF32(F x) { return x; }
#else
template <int MODE> struct MmaIn {
  using type = typename std::conditional<MODE == kModeHalf, __half, wmma::precision::tf32>::type;
};
template <typename F> __device__ __forceinline__ F toTF32(F x) { return wmma::__float_to_tf32(x); }
#endif

template <typename T> struct Traits;
template <> struct Traits<__half> {
  static constexpr int kBK = 64;
  static constexpr int kVec = 8;  // 16 bytes
  static constexpr int kPad = 8;  // keeps rows 16-byte aligned and shifts banks
  static __device__ __forceinline__ float toF(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half fromF(float v) { return __float2half_rn(v); }
};
template <> struct Traits<float> {
  static constexpr int kBK = 32;
  static constexpr int kVec = 4;
  static constexpr int kPad = 4;
  static __device__ __forceinline__ float toF(float v) { return v; }
  static __device__ __forceinline__ float fromF(float v) { return v; }
};

template <typename T, int V> struct alignas(sizeof(T) * V) Pack { T v[V]; };

struct Geometry {
  int N, C, H, W, Cout, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, groups, dg;
  int Cin_g, Cout_g, Cdg, KK, M, HoWo, chunksPerTap, Kpad, nChunks, splits, chunksPerSplit, tilesN, tilesX, tilesY;
  int nSteps, ntPad;  // register-fragment kernel: K steps per tap, packed n-tiles per group
  int outNHWC;        // DCNv2Params::outputNHWC: the output (and the split-K partials) channels-last
  int wKRSC;          // DCNv2Params::weightNHWC: the weight [Cout][kh][kw][Cin_g]
  int sumInOut;       // two K splits added into the zeroed output by atomic adds, no partials (fp32 v27, fp16 v42)
};

// Whether a call ends with the split-K finalize pass (dcnFinalizeKernel sums the partials): the host launches it after
// the main kernel, which lets it launch early (v46).
__host__ __device__ inline bool endsWithFinalize(Geometry const& g) { return g.splits > 1 && !g.sumInOut; }

// Element (output channel co of all groups, input channel c of its group, tap t) of a weight laid out
// [Cout][Cin_g][KK], or channels-last (krsc: DCNv2Params::weightNHWC) [Cout][KK][Cin_g].
__host__ __device__ inline size_t weightIndex(bool krsc, size_t co, int c, int t, int KK, int Cin_g) {
  return krsc ? (co * KK + t) * Cin_g + c : (co * Cin_g + c) * KK + t;
}

// Sampling record of one (tap, deformable group, pixel): 4 NHWC base offsets (channel 0) and 4 weights that
// already include the mask; invalid corners point at element 0 with weight 0 (branch-free gather). Shared memory
// holds them as two arrays (all idx, then all w) so that 8 consecutive pixels' records are one bank-conflict-free
// 128-byte wavefront.
struct SampleInfo {
  int4 idx;
  float4 w;
};
// Where the table keeps its weights, for its writer and all its readers: after the nRows x kBM offset records, as
// float4 or (kHalfW: the fp16 warpgroup kernel, v22) as 4 halves in a uint2; weightAt counts in those units.
template <bool kHalfW> struct SampleTable {
  using Weights = typename std::conditional<kHalfW, uint2, float4>::type;
  static constexpr int kRecordBytes = int(sizeof(int4) + sizeof(Weights));
  __host__ __device__ static constexpr int weightAt(int nRows, int record) {
    return int(sizeof(int4) / sizeof(Weights)) * nRows * kBM + record;
  }
};

template <typename T> struct MainArgs {
  T const* __restrict__ inNHWC;
  T const* __restrict__ offset;
  T const* __restrict__ mask;
  T const* __restrict__ wpack;
  T const* __restrict__ bias;
  T* __restrict__ out;
  float* __restrict__ acc;
  Geometry g;
  // TF32 from an fp16 copy of the input (v30, dcnWgKernel's H16): the input and the weight as given, for the redo
  T const* __restrict__ inNCHW;
  T const* __restrict__ weight;
};

// The warpgroup kernel's second parameter: where it reads a channels-last weight as it lies (DIRECT, v24; wpack is
// then the weight itself), the weight's tensor map for the bulk-copy configurations; else nothing, so the linear-weight
// kernels keep v23's code (a runtime switch cost them 0.2-0.7 us, H100).
template <bool DIRECT> struct WeightMap {};
template <> struct WeightMap<true> {
  CUtensorMap map;  // read by the TMA unit from the kernel's parameter space (hence __grid_constant__)
};

// Shared bytes of the A/B double buffers (also holding the C staging tile) for one kernel variant.
template <typename T, int BN> __host__ __device__ constexpr size_t tileBytes() {
  return size_t(2) * (kBM + BN) * (Traits<T>::kBK + Traits<T>::kPad) * sizeof(T) >
                 size_t(BN) * (kBM + 4) * sizeof(float)
             ? size_t(2) * (kBM + BN) * (Traits<T>::kBK + Traits<T>::kPad) * sizeof(T)
             : size_t(BN) * (kBM + 4) * sizeof(float);
}
constexpr size_t kMaxTileBytes = 55296;  // the largest variant (fp16 with BN = 128)

// Two resident blocks per SM (128-register cap). Three (80 registers) measured slower on H200 for fp16.
constexpr int kMinBlocks = 2;

// Address of a sampling record's corner: `base` (the step's channel vector, 64-bit) plus a non-negative element
// offset from the table, widened as unsigned so the add is one IMAD.WIDE.U32 per load (a signed offset folded
// into the 64-bit pointer cost four instructions per load: ~1/5 of the warpgroup kernel's loop).
// The base goes through an opaque move: otherwise the compiler re-associates base + channel + offset and is back
// at four instructions.
template <typename T> __device__ __forceinline__ T const* stepBase(T const* p) {
  asm("mov.b64 %0, %0;" : "+l"(p));
  return p;
}
template <typename T> __device__ __forceinline__ T const* corner(T const* base, int idx) {
  return reinterpret_cast<T const*>(reinterpret_cast<char const*>(base) + size_t(unsigned(idx)) * sizeof(T));
}

// Read-only-path load of a channel vector (16/8/4/2 bytes).
template <typename T, int V> __device__ __forceinline__ Pack<T, V> ldgPack(T const* p) {
  Pack<T, V> r;
  constexpr int kBytes = sizeof(T) * V;
  if constexpr (kBytes == 16) {
    *reinterpret_cast<uint4*>(&r) = __ldg(reinterpret_cast<uint4 const*>(p));
  } else if constexpr (kBytes == 8) {
    *reinterpret_cast<uint2*>(&r) = __ldg(reinterpret_cast<uint2 const*>(p));
  } else if constexpr (kBytes == 4) {
    *reinterpret_cast<unsigned*>(&r) = __ldg(reinterpret_cast<unsigned const*>(p));
  } else {
    static_assert(kBytes == 2, "unsupported vector");
    *reinterpret_cast<unsigned short*>(&r) = __ldg(reinterpret_cast<unsigned short const*>(p));
  }
  return r;
}

// Blend the 4 bilinear corners of VEC channels with weights w (mask folded in). fp16: packed half2 FMAs
// (the rounding is far below fp16's own tolerance); fp32: fp32 FMAs.
template <typename T, int VEC>
__device__ __forceinline__ Pack<T, VEC> blend(float4 const& w, Pack<T, VEC> const (&r)[4]) {
  Pack<T, VEC> o;
  if constexpr (std::is_same<T, __half>::value && VEC % 2 == 0) {
    __half2 const w0 = __float2half2_rn(w.x), w1 = __float2half2_rn(w.y);
    __half2 const w2 = __float2half2_rn(w.z), w3 = __float2half2_rn(w.w);
#pragma unroll
    for (int e = 0; e < VEC; e += 2) {
      __half2 const a = *reinterpret_cast<__half2 const*>(&r[0].v[e]);
      __half2 const b = *reinterpret_cast<__half2 const*>(&r[1].v[e]);
      __half2 const c = *reinterpret_cast<__half2 const*>(&r[2].v[e]);
      __half2 const d = *reinterpret_cast<__half2 const*>(&r[3].v[e]);
      __half2 s = __hmul2(w0, a);
      s = __hfma2(w1, b, s);
      s = __hfma2(w2, c, s);
      s = __hfma2(w3, d, s);
      *reinterpret_cast<__half2*>(&o.v[e]) = s;
    }
  } else {
    using Tr = Traits<T>;
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      float s = w.x * Tr::toF(r[0].v[e]);
      s = fmaf(w.y, Tr::toF(r[1].v[e]), s);
      s = fmaf(w.z, Tr::toF(r[2].v[e]), s);
      s = fmaf(w.w, Tr::toF(r[3].v[e]), s);
      o.v[e] = Tr::fromF(s);
    }
  }
  return o;
}

// Sampling records: record j = d*KK + t (deformable group d, tap t) of pixel mi lives at info[j*kBM + mi].
// Each thread keeps one pixel and walks j in steps of THREADS / kBM; offset/mask loads of a pass come first.
// Only the taps of the block's K range are built (K steps run tap-inner from tap cb % KK): a split-K block of a few
// steps needs a few taps, and the offset/mask reads are the slow part here.
// How the records keep their 4 weights (WF): kWeightsF32, a float4; kWeightsF16, 4 halves (8 bytes: two half2
// (w0, w1), (w2, w3), after the offsets; fp16 warpgroup kernel: the conversion is made once per record instead of once
// per record and channel slot in the K loop, and the smaller table lets two blocks per SM leave more of L1 to the
// gathers, v22); kWeightsF16Scaled (TF32 from the fp16 copy, v32: blendH16), in the float4 slot: the weights as halves
// divided by the power of two `scale` just above the largest |w| (so the largest is in [0.5, 1) where |w| >= 2^-126),
// then `scale`: half2 (w0, w1), half2 (w2, w3), scale, 0; a NaN weight is a NaN half, an Inf weight (or |w| >= 2^126)
// a NaN scale: the blend is then NaN and the block redoes (wgRedoFp32).
enum TableWeights { kWeightsF32, kWeightsF16, kWeightsF16Scaled };
template <typename T, bool kTapFilter, int THREADS = kThreads, TableWeights WF = kWeightsF32>
__device__ __forceinline__ void buildSampleTable(MainArgs<T> const& a, SampleInfo* info, int img, int ho0, int wo0,
    int tid, int cb, int ce, float* maxScale = nullptr, bool* ownScale = nullptr) {
  using Tr = Traits<T>;
  Geometry const& g = a.g;
  constexpr int kJStep = THREADS / kBM;
  int const mi = tid % kBM;
  int const ho = ho0 + mi / kTW;
  int const wo = wo0 + mi % kTW;
  bool const inside = ho < g.Ho && wo < g.Wo;
  int const p = inside ? ho * g.Wo + wo : 0;
  int const nj = g.dg * g.KK;
  T const* offPix = a.offset + size_t(img) * 2 * nj * g.HoWo + p;  // channel 2j: dy, 2j+1: dx
  T const* maskPix = a.mask + size_t(img) * nj * g.HoWo + p;       // channel j
  float const yBase = float(ho * g.sh - g.ph);
  float const xBase = float(wo * g.sw - g.pw);
  int const rowBase = img * g.H;
  int const tapFirst = cb % g.KK;
  int const tapCount = ce - cb;  // >= KK: all taps
  // tap t = j % KK of each record, tracked without divisions (integer division costs ~20 instructions here)
  auto needed = [&](int t) {
    int const d = t - tapFirst;
    return !kTapFilter || (d < 0 ? d + g.KK : d) < tapCount;
  };
  int tNext = (tid / kBM) % g.KK;
  for (int j0 = tid / kBM; j0 < nj; j0 += 4 * kJStep) {
    float oy[4], ox[4], mk[4];
    int tk[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      tk[k] = tNext;
      tNext += kJStep;
      while (tNext >= g.KK) tNext -= g.KK;
    }
    // Branch-free loads (an unused record reads its pixel's channel 0, always valid), so all 12 are in flight at
    // once: behind a branch per record, ptxas waited for each record's loads before issuing the next record's. The
    // table build is on every block's critical path; this made it 0.1-0.4 us shorter (v17, H100, docs/kernel.md).
    T vy[4], vx[4], vm[4];
    bool use[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      int const j = j0 + k * kJStep;
      use[k] = inside && j < nj && needed(tk[k]);
      size_t const jj = use[k] ? size_t(j) : 0;
      vy[k] = offPix[2 * jj * g.HoWo];
      vx[k] = offPix[(2 * jj + 1) * g.HoWo];
      vm[k] = maskPix[jj * g.HoWo];
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      oy[k] = use[k] ? Tr::toF(vy[k]) : 0.f;
      ox[k] = use[k] ? Tr::toF(vx[k]) : 0.f;
      mk[k] = use[k] ? Tr::toF(vm[k]) : 0.f;
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      int const j = j0 + k * kJStep;
      if (j >= nj) break;
      int const t = tk[k];
      if (!needed(t)) continue;
      int ki = 0, kj = t;
      while (kj >= g.kw) {
        kj -= g.kw;
        ++ki;
      }
      SampleInfo s;
      s.idx = make_int4(0, 0, 0, 0);
      s.w = make_float4(0.f, 0.f, 0.f, 0.f);
      float const y = yBase + float(ki * g.dh) + oy[k];
      float const x = xBase + float(kj * g.dw) + ox[k];
      // torchvision's rule: outside (-1, H) x (-1, W) is zero; inside, missing corners are zero.
      if (inside && y > -1.f && y < float(g.H) && x > -1.f && x < float(g.W)) {
        int const y0 = int(floorf(y));
        int const x0 = int(floorf(x));
        float const ly = y - float(y0);
        float const lx = x - float(x0);
        float const hy = 1.f - ly;
        float const hx = 1.f - lx;
        float const mkk = mk[k];
        bool const vy0 = y0 >= 0, vy1 = y0 + 1 <= g.H - 1, vx0 = x0 >= 0, vx1 = x0 + 1 <= g.W - 1;
        int const at00 = ((rowBase + y0) * g.W + x0) * g.C;
        if (vy0 && vx0) { s.idx.x = at00; s.w.x = hy * hx * mkk; }
        if (vy0 && vx1) { s.idx.y = at00 + g.C; s.w.y = hy * lx * mkk; }
        if (vy1 && vx0) { s.idx.z = at00 + g.W * g.C; s.w.z = ly * hx * mkk; }
        if (vy1 && vx1) { s.idx.w = at00 + (g.W + 1) * g.C; s.w.w = ly * lx * mkk; }
      }
      reinterpret_cast<int4*>(info)[j * kBM + mi] = s.idx;  // two arrays: conflict-free 16-byte rows
      int const at = SampleTable<WF == kWeightsF16>::weightAt(nj, j * kBM + mi);
      if constexpr (WF == kWeightsF16) {
        __half2 const h[2] = {__floats2half2_rn(s.w.x, s.w.y), __floats2half2_rn(s.w.z, s.w.w)};
        reinterpret_cast<uint2*>(info)[at] = *reinterpret_cast<uint2 const*>(h);
      } else if constexpr (WF == kWeightsF16Scaled) {
        float const wmax = fmaxf(fmaxf(fabsf(s.w.x), fabsf(s.w.y)), fmaxf(fabsf(s.w.z), fabsf(s.w.w)));
        int const e = int(__float_as_uint(wmax) >> 23);  // biased exponent (|w| < 2^(e - 126); 0: zero or subnormal)
        // scale = 2^(e - 126), inv = 1 / scale: both normal floats; |w| >= 2^126 (absurd), Inf or NaN: a NaN scale
        float const scale = e < 253 ? __uint_as_float(unsigned(e + 1) << 23) : __uint_as_float(0x7FC00000u);
        float const inv = e < 253 ? __uint_as_float(unsigned(253 - e) << 23) : 1.f;
        if (maxScale) *maxScale = fmaxf(*maxScale, scale);  // (HMMA; a NaN scale is skipped)
        // (v61) a record whose largest weight is in [2^-10, 1) is stored as it is, at scale 1: where the block's
        // largest scale is 1 (the usual mask range) the re-normalization after the wait has nothing to do, and where it
        // is less, the halves it scales up lost at most 2^-25 of a weight, 2^-15 of the block's largest. Others keep
        // their own scale and ask for the re-normalization (ownScale), but a zero record, whose halves any scale keeps.
        bool const one = e >= 117 && e <= 126;
        float const st = one ? 1.f : scale, si = one ? 1.f : inv;
        if (!one && wmax != 0.f && ownScale) *ownScale = true;
        __half2 const h[2] = {__floats2half2_rn(s.w.x * si, s.w.y * si), __floats2half2_rn(s.w.z * si, s.w.w * si)};
        reinterpret_cast<float4*>(info)[at] = make_float4(__uint_as_float(*reinterpret_cast<unsigned const*>(&h[0])),
            __uint_as_float(*reinterpret_cast<unsigned const*>(&h[1])), st, 0.f);
      } else {
        reinterpret_cast<float4*>(info)[at] = s.w;
      }
    }
  }
}

// What a block of either main kernel owns. Grid: x = image x 8x8 output-pixel patch, y = conv group x n-tile,
// z = K split. cb >= ce means the split has no K steps (the last split of an uneven division).
struct BlockTile {
  int img, ho0, wo0, grp, nb, cb, ce;
};

__device__ __forceinline__ BlockTile blockTile(Geometry const& g) {
  BlockTile b;
  b.img = blockIdx.x / (g.tilesY * g.tilesX);
  int const tileRem = blockIdx.x - b.img * (g.tilesY * g.tilesX);
  b.ho0 = (tileRem / g.tilesX) * kTH;
  b.wo0 = (tileRem % g.tilesX) * kTW;
  b.grp = blockIdx.y / g.tilesN;
  b.nb = blockIdx.y % g.tilesN;
  b.cb = blockIdx.z * g.chunksPerSplit;
  b.ce = min(b.cb + g.chunksPerSplit, g.nChunks);
  return b;
}

// out[n] = value(n) + bias for the channels n = nFirst, nFirst + nStep, ... < nEnd of one pixel (o: channel nFirst);
// all of a thread's bias values (up to AHEAD) are loaded before the first store: one global-load round trip per
// epilogue instead of one per 4 channels (v19; each of those waits was ~1/8 of the stall samples in v8, and the
// epilogue of a layer without split-K took 2.2 us against 0.75 with split-K partials, which need no bias).
// RED (fp32, Geometry::sumInOut): added into the output by an atomic add instead of stored (fp16: addHalfPairs).
template <int AHEAD, bool RED = false, typename T, typename F>
__device__ __forceinline__ void storeChannels(T* o, T const* b, int nFirst, int nEnd, int nStep, int HoWo, F value) {
  using Tr = Traits<T>;
  for (int n0 = nFirst; n0 < nEnd; n0 += AHEAD * nStep) {
    float bv[AHEAD];
#pragma unroll
    for (int k = 0; k < AHEAD; ++k) bv[k] = (b && n0 + k * nStep < nEnd) ? Tr::toF(b[n0 - nFirst + k * nStep]) : 0.f;
#pragma unroll
    for (int k = 0; k < AHEAD; ++k) {
      int const n = n0 + k * nStep;
      if (n >= nEnd) break;
      if constexpr (RED) atomicAdd(o + size_t(n - nFirst) * HoWo, value(n) + bv[k]);  // (no return value: RED.ADD)
      else o[size_t(n - nFirst) * HoWo] = Tr::fromF(value(n) + bv[k]);
    }
  }
}

// One staged C value: the sum of the block's PARTS partial tiles (one per warpgroup, partStride floats apart) at cs,
// in warpgroup order (every epilogue adds them so, hence the same bits in each layout).
template <int PARTS> __device__ __forceinline__ float stagedSum(float const* cs, int partStride) {
  float v = cs[0];
#pragma unroll
  for (int q = 1; q < PARTS; ++q) v += cs[q * partStride];
  return v;
}

// storeTile for a channels-last output (Geometry::outNHWC; its split-K partials are channels-last too): a thread
// takes KV consecutive channels of one pixel and stores them as one vector where the channel offset is a multiple of
// KV, else one by one; a warp covers 8 pixels x 4 vectors, so each store instruction fills whole 32-byte sectors
// (reads of C_s[n][m] 2-way bank-conflicted). The same sums in the same order as storeTile's NCHW path, so the same
// bits. 32-bit offsets (every tensor has fewer than 2^31 elements) and predicated, unrolled tails keep it in a few
// registers beside the K loop's.
template <typename T, int THREADS, int BN, int LDC, int PARTS>
__device__ __forceinline__ void storeTileNHWC(MainArgs<T> const& a, float const* Cs, int img, int ho0, int wo0,
    int grp, int n0, int partStride) {
  using Tr = Traits<T>;
  constexpr int KV = 4;  // 16 bytes of fp32 partials; 8 (fp16) or 16 (fp32) bytes of output
  Geometry const& g = a.g;
  int const nEnd = min(BN, g.Cout_g - n0);
  int const co0 = grp * g.Cout_g + n0;
  bool const vecOk = g.Cout % KV == 0 && co0 % KV == 0;
  constexpr int kVecs = BN / KV;  // channel vectors of a pixel
  static_assert(kVecs % 4 == 0 && (kBM * kVecs) % 32 == 0, "a warp covers 8 pixels x 4 channel vectors");
  for (int idx = threadIdx.x; idx < kBM * kVecs; idx += THREADS) {
    int const rest = idx >> 5, cvGroups = kVecs / 4;
    int const m = (rest / cvGroups) * 8 + (idx & 7);
    int const nv = ((rest % cvGroups) * 4 + ((idx >> 3) & 3)) * KV;
    int const ho = ho0 + m / kTW, wo = wo0 + m % kTW;
    if (nv >= nEnd || ho >= g.Ho || wo >= g.Wo) continue;
    int const at = ((img * g.Ho + ho) * g.Wo + wo) * g.Cout + co0 + nv;
    int const nv4 = min(KV, nEnd - nv);
    float v[KV];
#pragma unroll
    for (int j = 0; j < KV; ++j) v[j] = stagedSum<PARTS>(Cs + (nv + min(j, nv4 - 1)) * LDC + m, partStride);
    if (g.sumInOut) {  // split 0 adds the bias (see storeTile)
#pragma unroll
      for (int j = 0; j < KV; ++j) v[j] += blockIdx.z == 0 && a.bias && j < nv4 ? Tr::toF(a.bias[co0 + nv + j]) : 0.f;
      if constexpr (std::is_same<T, float>::value) {
#if __CUDA_ARCH__ >= 900
        if (vecOk && nv4 == KV) atomicAdd(reinterpret_cast<float4*>(a.out + at), make_float4(v[0], v[1], v[2], v[3]));
        else
#endif
#pragma unroll
          for (int j = 0; j < KV; ++j)  // (vector atomics from sm_90 on)
            if (j < nv4) atomicAdd(a.out + at + j, v[j]);
      } else {  // two pairs of halves (RED.ADD.F16x2; sumsInOutput: every vector whole and aligned)
        atomicAdd(reinterpret_cast<__half2*>(a.out + at), __floats2half2_rn(v[0], v[1]));
        atomicAdd(reinterpret_cast<__half2*>(a.out + at) + 1, __floats2half2_rn(v[2], v[3]));
      }
      continue;
    }
    if (g.splits > 1) {
      float* const part = a.acc + size_t(blockIdx.z) * g.M * g.Cout + at;
      if (vecOk && nv4 == KV) *reinterpret_cast<float4*>(part) = make_float4(v[0], v[1], v[2], v[3]);
      else
#pragma unroll
        for (int j = 0; j < KV; ++j)  // unrolled with a predicate: v stays in registers
          if (j < nv4) part[j] = v[j];
      continue;
    }
    Pack<T, KV> o;
#pragma unroll
    for (int j = 0; j < KV; ++j) o.v[j] = Tr::fromF(v[j] + (a.bias && j < nv4 ? Tr::toF(a.bias[co0 + nv + j]) : 0.f));
    if (vecOk && nv4 == KV) *reinterpret_cast<Pack<T, KV>*>(a.out + at) = o;
    else
#pragma unroll
      for (int j = 0; j < KV; ++j)
        if (j < nv4) a.out[at + j] = o.v[j];
  }
}

// fp16 two-split sums in an NCHW output (Geometry::sumInOut, v42): a thread adds two neighbouring pixels of a channel
// as one pair of halves (RED.ADD.F16x2), bias and all its channels' values first; each half of the pair is added on
// its own, so the bits are order-free as for fp32 (storeTile). The pair is one aligned 4-byte word: sumsInOutput takes
// only even plane widths (the pair's first pixel is at an even column, the output 16-byte aligned). Scalar 2-byte
// atomics, one per pixel, made 1,128,64,64->64 2.1x and ->128 2.9x slower than the finalize pass (H100, "v42").
template <int THREADS, int BN, int LDC, int PARTS>
__device__ __forceinline__ void addHalfPairs(MainArgs<__half> const& a, float const* Cs, int img, int ho0, int wo0,
    int grp, int n0, int partStride) {
  Geometry const& g = a.g;
  constexpr int kPairs = kBM / 2;
  static_assert(kTW % 2 == 0 && THREADS % kPairs == 0, "a pair is two pixels of one tile row");
  constexpr int kNStep = THREADS / kPairs;
  constexpr int kPer = (BN + kNStep - 1) / kNStep;  // channels per thread
  int const tid = threadIdx.x;
  int const m = (tid % kPairs) * 2;
  int const ho = ho0 + m / kTW, wo = wo0 + m % kTW;
  if (ho >= g.Ho || wo >= g.Wo) return;  // (wo + 1 < Wo: the width is even)
  int const nFirst = tid / kPairs;
  int const nEnd = min(BN, g.Cout_g - n0);
  int const coFirst = grp * g.Cout_g + n0 + nFirst;
  __half const* const bias = blockIdx.z == 0 ? a.bias : nullptr;  // split 0 adds the bias
  float bv[kPer];
#pragma unroll
  for (int k = 0; k < kPer; ++k)
    bv[k] = bias && nFirst + k * kNStep < nEnd ? __half2float(bias[coFirst + k * kNStep]) : 0.f;
  __half* o = a.out + (size_t(img) * g.Cout + coFirst) * g.HoWo + ho * g.Wo + wo;
#pragma unroll
  for (int k = 0; k < kPer; ++k, o += size_t(kNStep) * g.HoWo) {
    int const n = nFirst + k * kNStep;
    if (n >= nEnd) break;
    float const v0 = stagedSum<PARTS>(Cs + n * LDC + m, partStride);
    float const v1 = stagedSum<PARTS>(Cs + n * LDC + m + 1, partStride);
    atomicAdd(reinterpret_cast<__half2*>(o), __floats2half2_rn(v0 + bv[k], v1 + bv[k]));
  }
}

// Epilogue shared by the main kernels: the block's C tile, staged in shared memory as [n][m] (row stride LDC), goes
// out along pixels (coalesced NCHW stores) + bias into the output, or under split-K as this split's fp32 partial
// into its own workspace slice (no atomics: the finalize pass sums the slices in a fixed order). PARTS > 1: the
// block's warpgroups staged one partial tile each, partStride floats apart, summed in a fixed order.
template <typename T, int THREADS, int BN, int LDC, int PARTS = 1>
__device__ __forceinline__ void storeTile(MainArgs<T> const& a, float const* Cs, int img, int ho0, int wo0, int grp,
    int n0, int partStride = 0) {
  Geometry const& g = a.g;
  if (g.outNHWC) {
    storeTileNHWC<T, THREADS, BN, LDC, PARTS>(a, Cs, img, ho0, wo0, grp, n0, partStride);
    return;
  }
  if constexpr (std::is_same<T, __half>::value) {
    if (g.sumInOut) {
      addHalfPairs<THREADS, BN, LDC, PARTS>(a, Cs, img, ho0, wo0, grp, n0, partStride);
      return;
    }
  }
  int const tid = threadIdx.x;
  int const mi = tid % kBM;
  int const ho = ho0 + mi / kTW;
  int const wo = wo0 + mi % kTW;
  if (ho >= g.Ho || wo >= g.Wo) return;
  int const nFirst = tid / kBM;
  constexpr int kNStep = THREADS / kBM;
  int const nEnd = min(BN, g.Cout_g - n0);
  int const coFirst = grp * g.Cout_g + n0 + nFirst;
  size_t const oFirst = (size_t(img) * g.Cout + coFirst) * g.HoWo + ho * g.Wo + wo;
  auto staged = [&](int n) { return stagedSum<PARTS>(Cs + n * LDC + mi, partStride); };
  if (g.splits == 1) {
    constexpr int kPerThread = (BN + kNStep - 1) / kNStep;  // channels per thread
    storeChannels<kPerThread < 32 ? kPerThread : 32>(a.out + oFirst, a.bias ? a.bias + coFirst : nullptr, nFirst,
        nEnd, kNStep, g.HoWo, staged);
    return;
  }
  if constexpr (std::is_same<T, float>::value) {
    // Two splits, no partials (v27; fp16 since v42: addHalfPairs): both add into the output, which the prep kernel
    // zeroed; split 0 adds its partial plus the bias, split 1 its partial. 0 + x + y is the same float in either order
    // (addition commutes, and x + 0 is x), so the bits do not depend on which split arrives first; a third addend would
    // break that.
    if (g.sumInOut) {
      constexpr int kPerThread = (BN + kNStep - 1) / kNStep;
      storeChannels<kPerThread < 32 ? kPerThread : 32, true>(a.out + oFirst,
          blockIdx.z == 0 && a.bias ? a.bias + coFirst : nullptr, nFirst, nEnd, kNStep, g.HoWo, staged);
      return;
    }
  }
  float* o = a.acc + size_t(blockIdx.z) * g.M * g.Cout + oFirst;
  for (int n = nFirst; n < nEnd; n += kNStep, o += size_t(kNStep) * g.HoWo) *o = staged(n);
}

template <typename T, int MODE, int VEC, int kBN>
__device__ __forceinline__ void dcnMainBody(MainArgs<T> const& a) {
  using Tr = Traits<T>;
  constexpr int BK = Tr::kBK;
  constexpr int LD = BK + Tr::kPad;  // A_s[m][k], B_s[n][k]
  constexpr int LDC = kBM + 4;       // C_s[n][m]
  constexpr int VPR = BK / VEC;      // A vectors per row
  static_assert(kThreads % VPR == 0, "each thread keeps one channel slot");
  constexpr int kARowStep = kThreads / VPR;
  constexpr int kAItems = kBM / kARowStep;
  constexpr int kBVec = 16 / sizeof(T);
  constexpr int BPR = BK / kBVec;
  constexpr int kBRowStep = kThreads / BPR;
  constexpr int kBItems = kBN / kBRowStep;
  static_assert(kAItems >= 1 && kBItems >= 1, "tile too small for the block");
  static_assert(MODE != kModeFFMA || kBN == 64, "the FFMA micro-tile assumes 64 output channels");
  constexpr int FN = kBN / 64;  // 16-wide accumulator fragments per warp in n
  static_assert(2 * (kBM + kBN) * LD * sizeof(T) <= tileBytes<T, kBN>(), "tiles exceed the shared budget");
  static_assert(kBN * LDC * sizeof(float) <= tileBytes<T, kBN>(), "C staging exceeds the shared budget");

  extern __shared__ __align__(128) unsigned char smem[];
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = As + 2 * kBM * LD;
  float* Cs = reinterpret_cast<float*>(smem);
  SampleInfo* info = reinterpret_cast<SampleInfo*>(smem + tileBytes<T, kBN>());

  Geometry const& g = a.g;
  int const tid = threadIdx.x;
  BlockTile const bt = blockTile(g);
  int const img = bt.img, ho0 = bt.ho0, wo0 = bt.wo0, grp = bt.grp, cb = bt.cb, ce = bt.ce;
  int const n0 = bt.nb * kBN;  // within the group
  if (cb >= ce) {
    gridDependencyWait();
    return;
  }
  // K runs channel chunk outer, tap inner: consecutive chunks re-read the same L1-resident input window.

  buildSampleTable<T, false>(a, info, img, ho0, wo0, tid, cb, ce);
  // The sampling table reads only offset and mask (inputs); from here on we read what the prep kernel wrote.
  gridDependencyWait();
  __syncthreads();

  // --- per-thread fixed roles: A channel slot av (rows amBase + it*kARowStep), B slot bk (rows bnBase + ...) --
  int const av = tid % VPR;
  int const amBase = tid / VPR;
  int const bk = tid % BPR;
  int const bnBase = tid / BPR;
  T const* brow[kBItems];
#pragma unroll
  for (int it = 0; it < kBItems; ++it) {
    int const co = n0 + bnBase + it * kBRowStep;
    brow[it] = co < g.Cout_g ? a.wpack + size_t(grp * g.Cout_g + co) * g.KK * g.Kpad + bk * kBVec : nullptr;
  }
  int const cinBase = grp * g.Cin_g;

  // Register staging of one chunk's raw corner vectors and weight vectors.
  struct Stage {
    Pack<T, VEC> ra[kAItems][4];
    uint4 rb[kBItems];
  };
  Stage st;

  auto loadChunk = [&](Stage& sg, int t, int c0) {
    int const c = c0 + av * VEC;
    if (c < g.Cin_g) {
      int const cg = cinBase + c;
      int const d = g.dg == 1 ? 0 : cg / g.Cdg;
      int4 const* infIdx = reinterpret_cast<int4 const*>(info) + (d * g.KK + t) * kBM + amBase;
      T const* base = stepBase(a.inNHWC + cg);
#pragma unroll
      for (int it = 0; it < kAItems; ++it) {
        int4 const idx = infIdx[it * kARowStep];
        sg.ra[it][0] = ldgPack<T, VEC>(corner(base, idx.x));
        sg.ra[it][1] = ldgPack<T, VEC>(corner(base, idx.y));
        sg.ra[it][2] = ldgPack<T, VEC>(corner(base, idx.z));
        sg.ra[it][3] = ldgPack<T, VEC>(corner(base, idx.w));
      }
    } else {
#pragma unroll
      for (int it = 0; it < kAItems; ++it)
#pragma unroll
        for (int k = 0; k < 4; ++k)
#pragma unroll
          for (int e = 0; e < VEC; ++e) sg.ra[it][k].v[e] = T(0.f);
    }
    size_t const koff = size_t(t) * g.Kpad + c0;
#pragma unroll
    for (int it = 0; it < kBItems; ++it)
      sg.rb[it] = brow[it] ? __ldg(reinterpret_cast<uint4 const*>(brow[it] + koff)) : make_uint4(0, 0, 0, 0);
  };

  auto storeChunk = [&](Stage const& sg, int t, int c0, int buf) {
    T* A = As + buf * kBM * LD;
    T* B = Bs + buf * kBN * LD;
    int const c = min(c0 + av * VEC, g.Cin_g - 1);
    int const d = g.dg == 1 ? 0 : (cinBase + c) / g.Cdg;
    float4 const* infW =
        reinterpret_cast<float4 const*>(info) + SampleTable<false>::weightAt(g.dg * g.KK, (d * g.KK + t) * kBM + amBase);
#pragma unroll
    for (int it = 0; it < kAItems; ++it) {
      float4 const w = infW[it * kARowStep];
      *reinterpret_cast<Pack<T, VEC>*>(A + (amBase + it * kARowStep) * LD + av * VEC) = blend<T, VEC>(w, sg.ra[it]);
    }
#pragma unroll
    for (int it = 0; it < kBItems; ++it)
      *reinterpret_cast<uint4*>(B + (bnBase + it * kBRowStep) * LD + bk * kBVec) = sg.rb[it];
  };

  // --- accumulators: 8 warps as 2 (m) x 4 (n), 32 x (kBN / 4) each ---------------------------------------------
  int const warp = tid / 32;
  int const wm = warp / 4;
  int const wn = warp % 4;
  constexpr int KS = (MODE == kModeTF32) ? 8 : 16;
  using InT = typename MmaIn<MODE>::type;
  wmma::fragment<wmma::accumulator, 16, 16, KS, float> cf[2][FN];
  float facc[4][4];
  if constexpr (MODE != kModeFFMA) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::fill_fragment(cf[i][j], 0.f);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) facc[i][j] = 0.f;
  }
  int const fm = tid / 16;  // FFMA: rows fm*4 + i, cols fn + 16*j
  int const fn = tid % 16;

  auto compute = [&](int buf) {
    T const* A = As + buf * kBM * LD;
    T const* B = Bs + buf * kBN * LD;
    if constexpr (MODE != kModeFFMA) {
#pragma unroll
      for (int ks = 0; ks < BK; ks += KS) {
        wmma::fragment<wmma::matrix_a, 16, 16, KS, InT, wmma::row_major> af[2];
        wmma::fragment<wmma::matrix_b, 16, 16, KS, InT, wmma::col_major> bf[FN];
#pragma unroll
        for (int j = 0; j < FN; ++j) {
          wmma::load_matrix_sync(bf[j], B + (wn * 16 * FN + j * 16) * LD + ks, LD);
          if constexpr (MODE == kModeTF32) {
#pragma unroll
            for (int e = 0; e < bf[j].num_elements; ++e) bf[j].x[e] = toTF32(bf[j].x[e]);
          }
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          wmma::load_matrix_sync(af[i], A + (wm * 32 + i * 16) * LD + ks, LD);
          if constexpr (MODE == kModeTF32) {
#pragma unroll
            for (int e = 0; e < af[i].num_elements; ++e) af[i].x[e] = toTF32(af[i].x[e]);
          }
#pragma unroll
          for (int j = 0; j < FN; ++j) wmma::mma_sync(cf[i][j], af[i], bf[j], cf[i][j]);
        }
      }
    } else {
#pragma unroll 8
      for (int k = 0; k < BK; ++k) {
        float av4[4], bv4[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) av4[i] = Tr::toF(A[(fm * 4 + i) * LD + k]);
#pragma unroll
        for (int j = 0; j < 4; ++j) bv4[j] = Tr::toF(B[(fn + 16 * j) * LD + k]);
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) facc[i][j] = fmaf(av4[i], bv4[j], facc[i][j]);
      }
    }
  };

  // --- main loop: register prefetch of the next chunk (issued right after the barrier, consumed after the MMAs)
  // + double-buffered tiles, one barrier per chunk. (A two-deep register prefetch measured no faster on H200:
  // the loop is bound by L1/shared-memory wavefronts, not by load latency.)
  int t = cb % g.KK;
  int c0 = (cb / g.KK) * BK;
  loadChunk(st, t, c0);
  for (int ch = cb; ch < ce; ++ch) {
    int const buf = (ch - cb) & 1;
    storeChunk(st, t, c0, buf);
    __syncthreads();
    if (++t == g.KK) {
      t = 0;
      c0 += BK;
    }
    if (ch + 1 < ce) loadChunk(st, t, c0);
    compute(buf);
  }
  __syncthreads();  // everyone is done with A/B before C staging overwrites them

  // --- epilogue: stage C as [n][m] so stores along pixels are coalesced --------------------------------------
  if constexpr (MODE != kModeFFMA) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j)
        wmma::store_matrix_sync(Cs + (wn * 16 * FN + j * 16) * LDC + wm * 32 + i * 16, cf[i][j], LDC,
            wmma::mem_col_major);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) Cs[(fn + 16 * j) * LDC + fm * 4 + i] = facc[i][j];
  }
  __syncthreads();
  storeTile<T, kThreads, kBN, LDC>(a, Cs, img, ho0, wo0, grp, n0);
}

template <typename T, int MODE, int VEC, int kBN>
__global__ void __launch_bounds__(kThreads, kMinBlocks) dcnMainKernel(MainArgs<T> a) {
#ifdef CENTERNET_DCN_NO_TF32
  if constexpr (MODE == kModeTF32) {
    __trap();
  } else
#endif
  {
    dcnMainBody<T, MODE, VEC, kBN>(a);
  }
}

// ---- register-fragment kernel (fp16 and TF32 tensor-core paths, sm_80+) ------------------------------------
// No shared-memory round trip for A and no barrier in the K loop. Block: 8 warps = 4 (16 output pixels each of
// the 8 x 8 patch) x 2 K groups (even / odd K steps of the block's range, summed through shared memory at the
// end), each warp owning all BN = 8 * NT output channels of the block. mma.sync m16n8k16 (fp16) / m16n8k8 (TF32)
// with K permuted inside each step so that every lane's A elements are one 16-byte corner vector per row: lane
// (g = lane / 4, q = lane % 4) gathers channels [q*VEC, q*VEC + VEC) of the step for pixels g and g + 8, blends
// the 4 corners in registers and feeds them straight to the MMAs (two k-steps per gathered vector). The weight
// is pre-packed in the same permuted fragment order ([group][tap][step][n-tile][lane][VEC]), so each B fragment
// pair is one coalesced 16-byte load that stays in L1. One step (STEPC = 4 * VEC channels of one tap) is
// gathered ahead while the MMAs of the previous step run.
constexpr int kRegWarpsM = 4;
constexpr int kRegKG = 2;
constexpr int kRegThreads = 32 * kRegWarpsM * kRegKG;
static_assert(kRegThreads == kThreads, "the sampling-table builder assumes kThreads threads");
constexpr int kFragNTPad = 16;       // packed n-tiles per group padded to a multiple of the largest NT
constexpr int kRegMinBlocks8 = 2;    // resident blocks per SM the register caps are set for: NT = 8 needs ~130
constexpr int kRegMinBlocks16 = 1;   // registers (capped at 128), NT = 16 ~200

template <int NT> __host__ __device__ constexpr size_t regCsBytes() { return size_t(NT) * 8 * (kBM + 4) * sizeof(float); }

// One tensor-core step, fp32 accumulate: fp16 m16n8k16 or TF32 m16n8k8 (operands already rounded to TF32).
template <int MODE>
__device__ __forceinline__ void mmaStep(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0,
    unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (MODE == kModeHalf) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
#endif
}

// fp32 -> TF32, rounded to nearest. sm_90 does it in one instruction (cvt.rn: F2FP); the ties-away form (cvt.rna, the
// only one before sm_90) compiles to three integer instructions per value, 48 of a TF32 K step's ~370 in the warpgroup
// kernel's blend (v29: 1-4 % faster on the TF32 layers, H100; the two roundings differ only on exact ties).
__device__ __forceinline__ unsigned tf32Bits(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  unsigned r;
  asm("cvt.rn.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#else
  return __float_as_uint(x);
#endif
}

// fp16 blend of 4 raw corner vectors with the 4 corner weights as halves (wh: (w0, w1), (w2, w3)); each is used as a
// (w, w) pair, which the half2 FMA takes as an operand broadcast.
__device__ __forceinline__ void blendHalf2(uint2 const& wh, uint4 const (&r)[4], unsigned (&o)[4]) {
  __half2 const w01 = *reinterpret_cast<__half2 const*>(&wh.x), w23 = *reinterpret_cast<__half2 const*>(&wh.y);
  __half2 const w0 = __low2half2(w01), w1 = __high2half2(w01), w2 = __low2half2(w23), w3 = __high2half2(w23);
  unsigned const* r0 = reinterpret_cast<unsigned const*>(&r[0]);
  unsigned const* r1 = reinterpret_cast<unsigned const*>(&r[1]);
  unsigned const* r2 = reinterpret_cast<unsigned const*>(&r[2]);
  unsigned const* r3 = reinterpret_cast<unsigned const*>(&r[3]);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    __half2 s = __hmul2(w0, *reinterpret_cast<__half2 const*>(&r0[e]));
    s = __hfma2(w1, *reinterpret_cast<__half2 const*>(&r1[e]), s);
    s = __hfma2(w2, *reinterpret_cast<__half2 const*>(&r2[e]), s);
    s = __hfma2(w3, *reinterpret_cast<__half2 const*>(&r3[e]), s);
    o[e] = *reinterpret_cast<unsigned*>(&s);
  }
}

// 4 A registers of one row from its 4 raw corner vectors: fp16 -> 4 half2 (channels 2e, 2e+1), fp32 -> 4 tf32.
template <typename T>
__device__ __forceinline__ void blendFrag(float4 const& w, uint4 const (&r)[4], unsigned (&o)[4]) {
  if constexpr (std::is_same<T, __half>::value) {
    __half2 const h[2] = {__floats2half2_rn(w.x, w.y), __floats2half2_rn(w.z, w.w)};
    blendHalf2(*reinterpret_cast<uint2 const*>(h), r, o);
  } else {
    float const* r0 = reinterpret_cast<float const*>(&r[0]);
    float const* r1 = reinterpret_cast<float const*>(&r[1]);
    float const* r2 = reinterpret_cast<float const*>(&r[2]);
    float const* r3 = reinterpret_cast<float const*>(&r[3]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float s = w.x * r0[e];
      s = fmaf(w.y, r1[e], s);
      s = fmaf(w.z, r2[e], s);
      s = fmaf(w.w, r3[e], s);
      o[e] = tf32Bits(s);
    }
  }
}

template <typename T, int MODE, int NT, int MINB>
__global__ void __launch_bounds__(kRegThreads, MINB) dcnRegKernel(MainArgs<T> a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  constexpr int VEC = 16 / int(sizeof(T));  // channels per 16-byte vector
  constexpr int STEPC = 4 * VEC;            // channels per K step (4 lanes per row)
  constexpr int BN = NT * 8;
  constexpr int LDC = kBM + 4;
  using Tr = Traits<T>;
  extern __shared__ __align__(128) unsigned char smem[];
  float* Cs = reinterpret_cast<float*>(smem);
  SampleInfo* info = reinterpret_cast<SampleInfo*>(smem + regCsBytes<NT>());

  Geometry const& g = a.g;
  int const tid = threadIdx.x;
  BlockTile const bt = blockTile(g);
  int const img = bt.img, ho0 = bt.ho0, wo0 = bt.wo0, grp = bt.grp, nb = bt.nb, cb = bt.cb, ce = bt.ce;
  int const n0 = nb * BN;  // within the group
  if (cb >= ce) {
    gridDependencyWait();
    return;
  }
  buildSampleTable<T, true>(a, info, img, ho0, wo0, tid, cb, ce);
  gridDependencyWait();  // from here on we read what the prep kernel wrote
  __syncthreads();

  int const warp = tid >> 5;
  int const lane = tid & 31;
  int const q = lane & 3;
  int const wm = warp % kRegWarpsM;
  int const kg = warp / kRegWarpsM;
  int const mi0 = wm * 16 + (lane >> 2);  // rows mi0 and mi0 + 8
  int const cinBase = grp * g.Cin_g;
  size_t const tileStride = size_t(32) * VEC;              // elements per packed n-tile of one step
  size_t const stepStride = size_t(g.ntPad) * tileStride;  // per (tap, step)
  T const* wg = a.wpack + size_t(grp) * g.KK * g.nSteps * stepStride + size_t(nb) * NT * tileStride + lane * VEC;

  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  uint4 raw[2][4];  // [row][corner] of the gathered step
  float4 wts[2];
  // Gather of step s = cs * KK + t (channel step outer, tap inner: consecutive steps read one L1-resident window).
  // A lane whose channel vector lies past Cin_g (last step of a group) reads channel 0 instead, with zero weights:
  // its B rows are zero-padded too, so nothing of it reaches the sums (and the loop stays branch-free).
  auto issue = [&](int t, int cs) {
    int c = cs * STEPC + q * VEC;
    bool const valid = c < g.Cin_g;
    c = valid ? c : 0;
    int const d = g.dg == 1 ? 0 : (cinBase + c) / g.Cdg;
    int const rec = (d * g.KK + t) * kBM + mi0;
    T const* base = stepBase(a.inNHWC + cinBase + c);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      int4 const idx = reinterpret_cast<int4 const*>(info)[rec + r * 8];
      float4 const w = reinterpret_cast<float4 const*>(info)[SampleTable<false>::weightAt(g.dg * g.KK, rec + r * 8)];
      wts[r] = valid ? w : make_float4(0.f, 0.f, 0.f, 0.f);
      raw[r][0] = __ldg(reinterpret_cast<uint4 const*>(corner(base, idx.x)));
      raw[r][1] = __ldg(reinterpret_cast<uint4 const*>(corner(base, idx.y)));
      raw[r][2] = __ldg(reinterpret_cast<uint4 const*>(corner(base, idx.z)));
      raw[r][3] = __ldg(reinterpret_cast<uint4 const*>(corner(base, idx.w)));
    }
  };

  int s = cb + kg;
  int cs = s / g.KK;
  int t = s - cs * g.KK;
  if (s < ce) issue(t, cs);
  for (; s < ce; s += kRegKG) {
    T const* wp = wg + (size_t(t) * g.nSteps + cs) * stepStride;
    unsigned af[2][4];
    blendFrag<T>(wts[0], raw[0], af[0]);
    blendFrag<T>(wts[1], raw[1], af[1]);
    // next step of this K group, gathered while the MMAs below run
    int tn = t + kRegKG, csn = cs;
    while (tn >= g.KK) {
      tn -= g.KK;
      ++csn;
    }
    if (s + kRegKG < ce) issue(tn, csn);
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      uint4 const b = __ldg(reinterpret_cast<uint4 const*>(wp + j * tileStride));
      mmaStep<MODE>(acc[j], af[0][0], af[1][0], af[0][1], af[1][1], b.x, b.y);
      mmaStep<MODE>(acc[j], af[0][2], af[1][2], af[0][3], af[1][3], b.z, b.w);
    }
    t = tn;
    cs = csn;
  }

  // --- epilogue: K group 1 parks its sums in C_s[n][m], group 0 adds its own; then stores along pixels ---------
  int const g8 = lane >> 2;
  if (kg == 1) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e) Cs[(j * 8 + 2 * q + e) * LDC + wm * 16 + g8 + 8 * h] = acc[j][2 * h + e];
  }
  __syncthreads();
  if (kg == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e) Cs[(j * 8 + 2 * q + e) * LDC + wm * 16 + g8 + 8 * h] += acc[j][2 * h + e];
  }
  __syncthreads();
  storeTile<T, kRegThreads, BN, LDC>(a, Cs, img, ho0, wo0, grp, n0);
#endif
}

// ---- warpgroup kernel (v9: fp16 and TF32 on sm_90a; wgmma with both operands in shared memory) --------------
// A block of KG warpgroups owns an 8 x 8 output-pixel patch x BN (64 or 128) output channels and a range of K steps
// (one step = one tap x 128 bytes of channels: 64 fp16 / 32 fp32); warpgroup w takes steps w, w + KG, ... of the
// range with its own stages and accumulators (intra-block split-K: more warps per tile to hide the gather latency,
// without the partial-sum traffic of a grid split), and the KG partial tiles are summed in shared memory at the end.
// Per step every thread of a warpgroup gathers the 4 corner vectors of 4 pixels for one 16-byte channel slot (8 lanes
// per pixel: whole 128-byte lines), blends them and stores the row into a 128-byte-swizzled A stage; the packed
// weight of the step (already in the swizzled layout) is copied into a B stage (one bulk copy with one step of
// look-ahead, cp.async by every thread with two); then 4 wgmma (k16 fp16 /
// k8 TF32) read both stages straight from shared memory while the warps blend the next step. Pipelining: gathers and
// weight copies run AHEAD steps ahead (AHEAD register sets, loop unrolled by AHEAD; AHEAD + 1 B stages), A is
// double-buffered; one warpgroup barrier per step, before which every warp has waited for its previous wgmma, so the
// stages that step s - 1 read are free afterwards.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CENTERNET_DCN_WGMMA 1
#endif

constexpr int kWgThreads = 128;                  // one warpgroup
// H16 (v30; v32's scale): the fp16 copy holds kHalfCopyScale x the input, so that fp16's normal range (2^-14 ..
// 65504) covers |x| from 2^-18 up and blendH16's fp16 sum of 4 corners (weights at most 1) cannot overflow below
// |x| = 1023.5; each block's accumulators are scaled back by its inverse at the end (a power of two: exact). Where the
// copy cannot hold the input to TF32's precision, blocks redo their K range from the fp32 input (wgRedoFp32), and they
// find out from their accumulators: (1) a value beyond the copy's range, an Inf or a NaN (or a blend that overflows)
// is an Inf or a NaN in the sums, which leaves a non-finite accumulator in every block that gathers it (whatever its
// weight: Inf x 0 is NaN); (2) a transpose tile (32 channels x 64 positions) whose nonzero values are all below
// kHalfCopyTiny, where fp16's subnormal step would exceed 2^-12 of the tile's largest value, is written as NaN by the
// prep kernel, so the blocks that read it redo too. Blocks that read neither hold TF32's precision as they are.
constexpr float kHalfCopyScale = 16.f;
constexpr float kHalfCopyTiny = 7.62939453125e-06f;  // 2^-17
// HMMA (v34): the fp16 weight pack holds 2^12 x the weight: full fp16 precision for |w| >= 2^-26; |w| >= 16 is an Inf
// there, so the blocks that use it redo (wgRedoFp32). Weights that fp16 holds only as subnormals (0 < |w| < 2^-26) keep
// fewer bits than TF32's 11: a pack thread whose weights (4 channels x the taps of one output row) are all that small,
// and not all zero, writes the first of them in every tap as NaN (v35, packWgChunk), so the blocks that use any of
// them redo too (v34 gave 2-3e-2 relative error on a layer of weights ~1e-9; one scale per output row instead kept the
// fast path but cost 1-3 % on every layer: the pack's row reduction, docs/kernel.md "v35").
constexpr float kHmmaWeightScale = 4096.f;
constexpr unsigned kHmmaTinyBits = 0x32800000u;  // 2^-26 as float bits: below it, 2^12 x |w| is an fp16 subnormal
#ifdef CENTERNET_DCN_WGMMA
// TF32 from an fp16 copy (v32): the 8 A registers of one row (o[h]: A chunk h) from its 4 corner vectors of 8 halves,
// with the record's weights as kWeightsF16Scaled stores them: blended in fp16 as the fp16 kernel does (blendHalf2),
// converted to fp32 and multiplied by the record's power-of-two scale: at most 11 significant bits, exactly a TF32 value
// (no rounding instruction). The largest weight is at least 1/2, so the dominant product keeps fp16's 11 bits wherever
// its corner value is in fp16's normal range (the copy's tile guard); smaller products, and weights below 2^-14 of the
// largest, carry an absolute error of at most ~2^-25 x scale x the copy's scale, small against the dominant one. v30
// converted each corner to fp32 and blended in fp32: 2.4x the instructions; the error grows ~1.4x (docs/kernel.md
// "v32").
__device__ __forceinline__ void blendH16(float4 const& w, uint4 const (&r)[4], unsigned (&o)[2][4]) {
  unsigned sum[4];
  blendHalf2(make_uint2(__float_as_uint(w.x), __float_as_uint(w.y)), r, sum);
#pragma unroll
  for (int q = 0; q < 4; ++q) {  // word q: channels 2q, 2q + 1 of the 8 = A chunk q / 2, registers 2 (q % 2) ..
    float2 const f = __half22float2(*reinterpret_cast<__half2 const*>(&sum[q]));
    o[q >> 1][2 * (q & 1)] = __float_as_uint(f.x * w.z);
    o[q >> 1][2 * (q & 1) + 1] = __float_as_uint(f.y * w.z);
  }
}
#endif
constexpr int kWgStagesA = 2;
constexpr int kWgRowBytes = 128;                 // one swizzle row: the K extent of a step
constexpr int kWgStageA = kBM * kWgRowBytes;     // 8 KB
template <int BN> __host__ __device__ constexpr int wgStageB() { return BN * kWgRowBytes; }
// Stages of one warpgroup (its C partial reuses them at the end); a step is WIDE 128-byte rows of K. The kernel and
// the host's shared-memory sizing both use this.
__host__ __device__ constexpr int wgGroupBytes(int bn, int ahead, int wide) {
  return wide * (kWgStagesA * kWgStageA + (ahead + 1) * bn * kWgRowBytes);
}
// Where a step's weight arrives by one bulk copy (v21): the configurations with one step of look-ahead, where it
// measured faster (H100, v19 side by side in balanced order: 1,256,32,32->64 TF32 11.8 -> 11.4 us, the 8-image batch
// 1-2 %); the two-step configuration was 0.0-0.3 us slower with it and keeps cp.async.
// A channels-last weight (v24) always arrives so, by the tensor map: its rows are not one contiguous piece.
__host__ __device__ constexpr bool wgBulkB(int ahead, bool direct) { return ahead == 1 || direct; }
constexpr int kWgBarMax = 64;  // their mbarriers: 8 bytes per B stage, at most 2 warpgroups x 3 stages
// Shared memory for those mbarriers, with 8 bytes to align them (the kernel and the host's sizing both use this).
__host__ __device__ constexpr int wgBarBytes(int ahead, bool direct) {
  return wgBulkB(ahead, direct) ? 8 + kWgBarMax : 0;
}

#ifdef CENTERNET_DCN_WGMMA
// Next step of a warpgroup's cursor (tap t inner, channel step cs outer), `by` steps on, without divisions.
__device__ __forceinline__ void nextStep(int& t, int& cs, int by, int KK) {
  t += by;
  while (t >= KK) {
    t -= KK;
    ++cs;
  }
}

// Shared-memory matrix descriptor, K-major, 128-byte swizzle: 8-row groups 1024 bytes apart (stride byte offset);
// the leading byte offset is unused for this layout (1 by convention).
__device__ __forceinline__ uint64_t wgDesc(uint32_t saddr) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}
__device__ __forceinline__ void wgFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void cpAsync16(uint32_t dst, void const* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// Or (configurations with one step of look-ahead, v21) a step's weight arrives by one bulk copy (the TMA unit) that
// completes a transaction count on an mbarrier: one thread issues it, every thread of the warpgroup waits on the
// barrier's phase before its wgmma reads the stage.
__device__ __forceinline__ void mbarInit(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void bulkCopy(uint32_t dst, void const* src, uint32_t bytes, uint32_t bar) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
               ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}
// A 4-d box of the weight's tensor map (v24: [group][Cout_g][tap][Cin_g], box 1 x BN x 1 x one 128-byte row) into a
// B stage, swizzled by the TMA unit as the stage's 128-byte layout wants, zeros outside the tensor; the caller has set
// the barrier's expected bytes.
__device__ __forceinline__ void tensorCopy4d(uint32_t dst, CUtensorMap const* map, int c, int t, int n, int grp,
    uint32_t bar) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               " [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
               ::"r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(c), "r"(t), "r"(n), "r"(grp), "r"(bar)
               : "memory");
}
__device__ __forceinline__ void mbarExpect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarWait(uint32_t bar, uint32_t parity) {
  asm volatile("{\n.reg .pred p;\nWAIT:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
               "@!p bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}
// Keeps the compiler from moving accumulator reads across the asynchronous wgmma (CUTLASS's fence_operand).
template <int R> __device__ __forceinline__ void fenceAcc(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// wgmma m64nNk16 (fp16) / m64nNk8 (TF32), D += A * B with both operands in shared memory (descriptors da, db), fp32
// accumulators. One asm shape per N; the instruction and its trailing immediates (fp16: no transposes) are spliced in.
#define CENTERNET_WGMMA_N64(INSTR, TAIL)                                                                        \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" INSTR " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"                  \
               "}, %32, %33, p, 1, 1" TAIL ";\n}\n"                                                             \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),        \
                 "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),      \
                 "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),      \
                 "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                                                           \
               : "l"(da), "l"(db), "r"(1)                                                                        \
               : "memory")
#define CENTERNET_WGMMA_N32(INSTR, TAIL)                                                                        \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n" INSTR " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"                            \
               "}, %16, %17, p, 1, 1" TAIL ";\n}\n"                                                             \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),        \
                 "+f"(d[15])                                                                                     \
               : "l"(da), "l"(db), "r"(1)                                                                        \
               : "memory")
#define CENTERNET_WGMMA_N128(INSTR, TAIL)                                                                       \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" INSTR " {"                                           \
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                          \
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                \
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                \
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"                  \
               "}, %64, %65, p, 1, 1" TAIL ";\n}\n"                                                             \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),        \
                 "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),      \
                 "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]),      \
                 "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),      \
                 "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]),      \
                 "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]),      \
                 "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),      \
                 "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])       \
               : "l"(da), "l"(db), "r"(1)                                                                        \
               : "memory")

template <typename T, int BN>
__device__ __forceinline__ void wgmma(float (&d)[BN / 2], uint64_t da, uint64_t db) {
  if constexpr (std::is_same<T, __half>::value) {
    if constexpr (BN == 32) CENTERNET_WGMMA_N32("wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16", ", 0, 0");
    else if constexpr (BN == 64) CENTERNET_WGMMA_N64("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16", ", 0, 0");
    else CENTERNET_WGMMA_N128("wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16", ", 0, 0");
  } else {
    if constexpr (BN == 32) CENTERNET_WGMMA_N32("wgmma.mma_async.sync.aligned.m64n32k8.f32.tf32.tf32", "");
    else if constexpr (BN == 64) CENTERNET_WGMMA_N64("wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32", "");
    else CENTERNET_WGMMA_N128("wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32", "");
  }
}
#undef CENTERNET_WGMMA_N32
#undef CENTERNET_WGMMA_N64
#undef CENTERNET_WGMMA_N128

// 4 wgmma of one step: K advances 32 bytes (16 fp16 / 8 fp32) inside the 128-byte swizzled rows.
// BN = 256 (v28): two n128 wgmma per k, the second on B rows 128-255 (16 KB further) into accumulators 64-127, whose
// fragment layout continues the first's (column 8 j + ... for j = 16..31), so the epilogue's mapping holds as is.
template <typename T, int BN>
__device__ __forceinline__ void wgStep(float (&d)[BN / 2], uint32_t aAddr, uint32_t bAddr) {
  uint64_t const da = wgDesc(aAddr), db = wgDesc(bAddr);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    uint64_t const off = uint64_t(k * 32) >> 4;  // descriptor address field counts 16-byte units
    if constexpr (BN == 256) {
      float (&lo)[64] = *reinterpret_cast<float (*)[64]>(&d[0]);
      float (&hi)[64] = *reinterpret_cast<float (*)[64]>(&d[64]);
      wgmma<T, 128>(lo, da + off, db + off);
      wgmma<T, 128>(hi, da + off, db + off + ((128 * kWgRowBytes) >> 4));
    } else {
      wgmma<T, BN>(d, da + off, db + off);
    }
  }
}
#endif

#ifdef CENTERNET_DCN_WGMMA
// A warpgroup thread's 16-byte channel slot of a step and its first pixel row (then every kBM / rows pixels). kN16
// (TF32 from the fp16 copy in 128-byte steps): a pixel's 32 halves are 4 lanes' worth, and a quarter-warp's 8 lanes are
// pixels k and k + 4 of its warp's 8, so that the chunks v and v + 4 they store fall in distinct banks (wgAChunk).
template <bool kN16> __device__ __forceinline__ int wgSlot(int lt) { return kN16 ? (lt & 3) : (lt & 7); }
template <bool kN16> __device__ __forceinline__ int wgFirstPixel(int lt) {
  return kN16 ? (lt >> 5) * 8 + (((lt >> 2) & 1) << 2) + ((lt >> 3) & 3) : (lt >> 3);
}
// Where a thread's 16-byte A chunk h of pixel row p goes: chunk v of sub-stage h (kN16: chunks v and v + 4 of the one
// row), at v ^ (p & 7) (the 128-byte swizzle).
template <bool kN16> __device__ __forceinline__ uint32_t wgAChunk(uint32_t aStage, int p, int h, int v) {
  int const sub = kN16 ? 0 : h, chunk = kN16 ? v + 4 * h : v;
  return aStage + sub * kWgStageA + p * kWgRowBytes + ((chunk ^ (p & 7)) << 4);
}

// H16's redo (v31): a block whose accumulators end non-finite computes its warpgroup's partial C tile again, the
// steps s0, s0 + KG, ... from the fp32 input and weight as given, in plain fp32 (CUDA-core FMAs; for these blocks
// strict fp32, more exact than the TF32 it replaces; v32: with the sampling table rebuilt with fp32 weights), into the
// warpgroup's C staging tile [n][m] (two threads per pixel, each with half the tile's columns), then the epilogue. A separate, __noinline__ function without wgmma that
// ends the block: v30's inline redo through the kernel's own stages and wgmma cost its K loop 0.3-0.6 us a call though
// it never ran; a called function holding wgmma makes ptxas serialize every wgmma of the kernel (C7510); and with
// nothing of the caller live after the call, the call keeps no registers of the kernel on the stack. `a` is the
// kernel's __grid_constant__ parameter: a reference to a plain kernel parameter (or a copy by value) gives the kernel
// a 216-byte stack copy of it, made on every call (measured: +1 % on cfg 1). Slow: a rare case.
template <int BN, int KG, int WIDE, int GROUP_BYTES>
__device__ __noinline__ void wgRedoFp32(MainArgs<float> const& a, SampleInfo* info, unsigned char* smem, int img,
    int ho0, int wo0, int grp, int nb, int cb, int ce, int s0, int nLocal) {
  constexpr int STEPC = 32;     // fp32 channels per 128-byte row (WIDE rows per K step)
  constexpr int HALF = BN / 2;  // columns per thread
  constexpr int LDC = kBM + 4;
  static_assert(kWgThreads == 2 * kBM, "two threads per pixel");
  Geometry const& g = a.g;
  int const lt = threadIdx.x % kWgThreads;
  int const m = lt % kBM, n0 = (lt / kBM) * HALF;
  int const nValid = min(HALF, g.Cout_g - nb * BN - n0);  // columns past Cout_g: zero, never stored
  int const cinBase = grp * g.Cin_g;
  int const HW = g.H * g.W;
  // the weight as given (either layout: Cin_g x KK elements apart per output channel)
  size_t const co = size_t(grp) * g.Cout_g + size_t(nb) * BN + n0;
  size_t const wStride = size_t(g.KK) * g.Cin_g;
  // the table again with fp32 weights (the kernel's holds them as scaled halves); every thread is past its last
  // read of the old one (the caller's barrier)
  buildSampleTable<float, true, kWgThreads * KG>(a, info, img, ho0, wo0, threadIdx.x, cb, ce);
  __syncthreads();
  float acc[HALF];
#pragma unroll
  for (int j = 0; j < HALF; ++j) acc[j] = 0.f;
  for (int l = 0; l < nLocal; ++l) {
    int const s = s0 + l * KG, t = s % g.KK, cFirst = s / g.KK * (WIDE * STEPC);
    int const cEnd = min(cFirst + WIDE * STEPC, g.Cin_g);
    for (int c = cFirst; c < cEnd; ++c) {
      int const d = g.dg == 1 ? 0 : (cinBase + c) / g.Cdg;
      int const r = (d * g.KK + t) * kBM + m;
      int4 const idx = reinterpret_cast<int4 const*>(info)[r];
      float4 const w = reinterpret_cast<float4 const*>(info)[SampleTable<false>::weightAt(g.dg * g.KK, r)];
      // a corner's value where the kernel's gathers read it: the record's NHWC element is pixel e / C of the batch (an
      // unused corner: element 0, pixel 0 of image 0, weight 0), so a NaN or an Inf spreads as without the copy
      auto at = [&](int e) {
        int const pix = e / g.C, im = pix / HW;
        return a.inNCHW[(size_t(im) * g.C + cinBase + c) * HW + (pix - im * HW)];
      };
      float v = w.x * at(idx.x);
      v = fmaf(w.y, at(idx.y), v);
      v = fmaf(w.z, at(idx.z), v);
      v = fmaf(w.w, at(idx.w), v);
      float const* wt = a.weight + weightIndex(g.wKRSC, co, c, t, g.KK, g.Cin_g);
#pragma unroll
      for (int j = 0; j < HALF; ++j)
        if (j < nValid) acc[j] = fmaf(v, wt[j * wStride], acc[j]);
    }
  }
  float* Cs = reinterpret_cast<float*>(smem + threadIdx.x / kWgThreads * GROUP_BYTES);
#pragma unroll
  for (int j = 0; j < HALF; ++j) Cs[(n0 + j) * LDC + m] = acc[j];
  __syncthreads();
  storeTile<float, kWgThreads * KG, BN, LDC, KG>(a, reinterpret_cast<float const*>(smem), img, ho0, wo0, grp, nb * BN,
      GROUP_BYTES / int(sizeof(float)));
}
#endif

// WIDE = 2 (TF32 v11, fp16 and HMMA v41): a step is one tap x 256 bytes of channels (two 128-byte rows, two A and B
// sub-stages, 8 wgmma), so the per-step work (sampling-record reads, barrier, waits, fences, addresses) is spread
// over twice the channels; needs Cin / groups (and Cin / deformable_group when > 1) a multiple of the wide step.
// H16 (TF32, v30): the gathers read an fp16 copy of the input that the prep kernel wrote instead of the fp32 one:
// half the bytes per sample for the L1 (the TF32 K loop's busiest unit); since v32 the corners are blended in fp16
// with the table's normalized weights and scaled back to exact TF32 values (blendH16: 2.4x fewer instructions than the
// fp32 blend). fp16 holds 11 significant bits, as TF32 does, but not fp32's range: the copy
// is scaled (kHalfCopyScale), and a block whose accumulators end non-finite (it gathered a value the copy could not
// hold, or a tile of tiny values the prep kernel wrote as NaN) redoes its K range from the fp32 input and weight in
// plain fp32 (wgRedoFp32: slow, rare). Each 64- (WIDE 2) or 32-channel (WIDE 1) run of a pixel in the copy is
// permuted so that lane v's 16 bytes are exactly the channels its A chunks take: v's 4 and the 4 half a step further,
// so A's layout, the weight's packing and the B stages stay as they are.
// NS (v44, cfg 3): the block's two warpgroups take the same K steps, each half of the tile's output channels, instead
// of alternate steps for all of them: one set of A and B stages for the block (half the shared memory: more L1 for the
// gathers, which the split-K layers' K loops read from L2 near the rate bench/gpu_floors.cu measures for them), each
// thread gathers half the pixel rows, the block's steps are shared evenly (the alternate split left one warpgroup a
// step more where their count is odd), one staged C tile, no partial tiles to add. H100, side by side with v42
// (docs/kernel.md "v44"): 3-6 % faster on the six cfg 3 benchmark layers in TF32, 1-6 % in fp16; the timeline put most
// of the gain in the epilogue (0.2-0.5 us), the K loops 0-0.3 us.
template <typename T, int BN, int KG, int AHEAD, int MINB, int WIDE, bool DIRECT, bool H16, bool HMMA, bool NS>
__device__ __forceinline__ void wgBody(MainArgs<T> const& a, WeightMap<DIRECT> const& wmap) {
#ifndef CENTERNET_DCN_WGMMA
  __trap();  // the host launches this kernel only on sm_90 builds that carry sm_90a code
#else
  static_assert(AHEAD == 1 || AHEAD == 2, "one or two steps of look-ahead");
  static_assert(WIDE == 1 || WIDE == 2, "128- or 256-byte steps");
  static_assert(!H16 || std::is_same<T, float>::value, "the fp16 copy is for TF32");
  static_assert(!HMMA || H16, "HMMA: fp32 layers from the fp16 copy on fp16 tensor cores");
  // HMMA (v34): an fp32 layer computed as the fp16 kernel computes: fp16 A stages from the fp16 copy, a weight packed
  // as fp16 (kHmmaWeightScale x the weight), fp16 wgmma; the table's weights normalized by the block's largest (the
  // fixup below), the accumulators scaled back at the end, the redo as for H16 (kTF16: v32's TF32 blend).
  constexpr bool kTF16 = H16 && !HMMA;
  using MT = typename std::conditional<HMMA, __half, T>::type;  // what the stages and wgmma hold
  constexpr int THREADS = kWgThreads * KG;
  constexpr int VEC = 16 / int(sizeof(MT));  // channels per 16-byte vector
  constexpr int STEPC = 8 * VEC;            // channels per 128-byte row of a pixel (WIDE rows per K step)
  constexpr int LDC = kBM + 4;
  constexpr int kStagesB = AHEAD + 1;
  constexpr int kStageB = wgStageB<BN>();   // one 128-byte row of K: the packed weight's step
  constexpr int kStageA = WIDE * kWgStageA;
  constexpr int kGroupBytes = wgGroupBytes(BN, AHEAD, WIDE);
  constexpr bool kBulkB = wgBulkB(AHEAD, DIRECT);
  static_assert(!NS || (KG == 2 && AHEAD == 1 && (BN == 64 || BN == 128)),
      "N split: two warpgroups of 32 / 64 output channels, one step of look-ahead (two measured slower, v44)");
  constexpr int BNW = NS ? BN / 2 : BN;  // output channels of a warpgroup
  constexpr int SK = NS ? 1 : KG;        // a warpgroup's step stride
  static_assert(!kBulkB || KG * kStagesB * 8 <= kWgBarMax, "the B stages' mbarriers must fit their shared memory");
  constexpr int kBChunks = WIDE * kStageB / 16 / kWgThreads;  // 16-byte weight chunks per thread and step (cp.async)
  static_assert(size_t(BN) * LDC * sizeof(float) <= kGroupBytes, "a C partial must fit in its warpgroup's stages");
  static_assert(!NS || 2 * size_t(BN) * LDC * sizeof(float) <= kGroupBytes, "the redo's two C partials must fit");
  // H16: one 16-byte load per corner covers a lane's channels of the whole step (WIDE 2: 8 lanes per pixel as for
  // fp32; WIDE 1: a pixel's 32 halves are 4 lanes, so a thread takes 2 pixel rows instead of 4)
  constexpr bool kN16 = kTF16 && WIDE == 1;
  static_assert(!NS || !kN16, "N split: 8 lanes per pixel");
  constexpr int RW = kTF16 ? 1 : WIDE;    // 16-byte loads per corner and pixel row
  constexpr int PST = kBM / (kN16 ? 2 : 4);  // pixels between a thread's rows
  constexpr int ROWS = (kN16 ? 2 : 4) / (NS ? 2 : 1);  // pixel rows per thread (NS: the warpgroup's half)
  constexpr int NOUT = kTF16 ? 2 : WIDE;  // 16-byte A chunks a thread stores per row and step
  using G = typename std::conditional<H16, __half, T>::type;  // what the gathers read
  extern __shared__ __align__(128) unsigned char smemRaw[];
  uint32_t const rawAddr = static_cast<uint32_t>(__cvta_generic_to_shared(smemRaw));
  uint32_t const sBars = (rawAddr + 7u) & ~7u;  // mbarriers first, outside the stages that the C partials reuse
  uint32_t const sBase = (sBars + wgBarBytes(AHEAD, DIRECT) + 1023u) & ~1023u;  // swizzle atoms are 1024-byte aligned
  unsigned char* const smem = smemRaw + (sBase - rawAddr);
  SampleInfo* info = reinterpret_cast<SampleInfo*>(smem + (NS ? 1 : KG) * kGroupBytes);

  Geometry const& g = a.g;
  int const tid = threadIdx.x;
  int const wgi = tid / kWgThreads;  // this thread's warpgroup
  int const lt = tid % kWgThreads;
  int const set = NS ? 0 : wgi;  // this warpgroup's set of stages and B barriers (NS: the block's one)
  // v46: the split-K finalize (this grid's dependent) may launch as soon as every block here has started: its blocks
  // then wait (griddepcontrol.wait) on the SMs this grid leaves free instead of launching after the last block exits.
  // Only where our own finalize follows: another kernel launched after this one never starts early because of it.
  if (endsWithFinalize(g)) gridDependentsMayLaunch();
  uint32_t const sA = sBase + set * kGroupBytes;
  uint32_t const sB = sA + kWgStagesA * kStageA;
  BlockTile const bt = blockTile(g);
  int const img = bt.img, ho0 = bt.ho0, wo0 = bt.wo0, grp = bt.grp, nb = bt.nb, cb = bt.cb, ce = bt.ce;
  if (cb >= ce) {
    gridDependencyWait();
    return;
  }
  constexpr bool kHalf = std::is_same<T, __half>::value;
  uint32_t const bars = sBars + set * kStagesB * 8;  // this warpgroup's B-stage barriers
  bool const bIssuer = NS ? tid == 0 : lt == 0;  // who initializes the barriers and issues the bulk copies
  if (kBulkB && bIssuer) {
#pragma unroll
    for (int s = 0; s < kStagesB; ++s) mbarInit(bars + s * 8);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  constexpr TableWeights kTableW = kHalf ? kWeightsF16 : H16 ? kWeightsF16Scaled : kWeightsF32;
  float smax = 0.f;   // HMMA: the largest record scale this thread built
  bool own = false;   // HMMA: ... and whether it stored a record at its own scale, not at 1 (v61)
  buildSampleTable<T, true, THREADS, kTableW>(a, info, img, ho0, wo0, tid, cb, ce, HMMA ? &smax : nullptr,
      HMMA ? &own : nullptr);
  float* const hmmaMax = reinterpret_cast<float*>(reinterpret_cast<float4*>(info) +
                                                  SampleTable<false>::weightAt(g.dg * g.KK, g.dg * g.KK * kBM));
  if constexpr (HMMA) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) smax = fmaxf(smax, __shfl_xor_sync(0xFFFFFFFFu, smax, o));
    own = __any_sync(0xFFFFFFFFu, own);
    if ((tid & 31) == 0) hmmaMax[tid >> 5] = own ? -smax : smax;  // (smax >= 0: the sign carries the warp's flag)
  }
  gridDependencyWait();  // from here on we read what the prep kernel wrote
  __syncthreads();
  float blockScale = 1.f;  // HMMA: the largest record scale of the block (a power of two)
  if constexpr (HMMA) {
    bool fix = false;
    blockScale = 0.f;
#pragma unroll
    for (int w = 0; w < THREADS / 32; ++w) {
      float const m = hmmaMax[w];
      fix = fix || signbit(m);
      blockScale = fmaxf(blockScale, fabsf(m));
    }
    // every record's halves (normalized by the scale it was stored at) re-normalized by the block's: one scale for the
    // whole block, applied to the accumulators at the end (slots of taps outside the K range hold garbage; rewriting it
    // is harmless). Nothing to do where every record was stored at 1 and 1 is the block's scale (v61: the fixup's
    // pass and barrier were 0.15-0.23 us of the TF32 layers' calls, H100, docs/kernel.md "v61").
    if (fix || blockScale != 1.f) {
      float const inv = 1.f / blockScale;
      int const nRec = g.dg * g.KK * kBM;
      for (int r = tid; r < nRec; r += THREADS) {
        float4* const slot = reinterpret_cast<float4*>(info) + SampleTable<false>::weightAt(g.dg * g.KK, r);
        float4 const w = *slot;
        // a power of two: <= 1 (an fp16 subnormal down to 2^-24) for a record at its own scale, <= 2^9 for one at 1
        __half2 const k = __float2half2_rn(w.z * inv);
        __half2 h0 = *reinterpret_cast<__half2 const*>(&w.x), h1 = *reinterpret_cast<__half2 const*>(&w.y);
        h0 = __hmul2(h0, k);
        h1 = __hmul2(h1, k);
        *reinterpret_cast<uint2*>(slot) =
            make_uint2(*reinterpret_cast<unsigned const*>(&h0), *reinterpret_cast<unsigned const*>(&h1));
      }
      __syncthreads();
    }
  }

  int const v = wgSlot<kN16>(lt);         // 16-byte channel slot of the step (fp32 channels v * VEC ...)
  int const p0 = wgFirstPixel<kN16>(lt) + (NS ? wgi * ROWS * PST : 0);  // pixels p0 + PST i
  int const cinBase = grp * g.Cin_g;
  // packed weight: [group][n-block][tap][step][BN rows][128 swizzled bytes]
  char const* wg = reinterpret_cast<char const*>(a.wpack) +
                   (size_t(grp) * g.tilesN + nb) * g.KK * g.nSteps * size_t(kStageB) + (kBulkB ? 0 : lt * 16);

  float acc[BNW / 2];
#pragma unroll
  for (int j = 0; j < BNW / 2; ++j) acc[j] = 0.f;
  // NS: the zeros pinned here; with a channels-last weight ptxas otherwise sank them into the first step and serialized
  // every wgmma of the kernel (C7515)
  if constexpr (NS) fenceAcc(acc);

  int const s0 = cb + (NS ? 0 : wgi);                     // this warpgroup's steps: s0, s0 + SK, ... < ce
  int const nLocal = s0 < ce ? (ce - s0 + SK - 1) / SK : 0;
  // Gathered steps in flight: AHEAD register sets ([pixel][corner]) and their weight records. A channel slot past
  // Cin_g (last step of a group whose channels are not a multiple of the step) gathers and blends channel 0 like any
  // other: its B rows are zero, so it adds exact zeros for finite inputs (no predicated or zeroed weights in the
  // loop; an Inf in the input makes those outputs non-finite either way: NaN here, Inf in torchvision).
  uint4 raw[AHEAD][ROWS][RW][4];  // [step in flight][pixel row][16-byte load of the corner][corner]
  int rec[AHEAD];
  int gT = s0 % g.KK, gCs = s0 / g.KK;  // tap and channel step of the next step to gather
  int bT = gT, bCs = gCs;                // ... and of the next weight step to copy
  // Where the next step's gather reads: its channel vector base and sampling-record row (then the cursor moves on).
  struct GatherAt {
    G const* base;
    int rc;
  };
  auto nextGather = [&]() {
    int c = gCs * (WIDE * STEPC) + v * VEC;
    c = c < g.Cin_g ? c : 0;  // (WIDE = 2: Cin_g is a multiple of the step, so the second row is valid too)
    int const d = g.dg == 1 ? 0 : (cinBase + c) / g.Cdg;
    // (H16: the copy's channel runs are permuted, so lane v's 8 halves start at v * 8 of the step's run)
    G const* const src = kTF16 ? reinterpret_cast<G const*>(a.inNHWC) + cinBase + gCs * (WIDE * STEPC) + v * 8
                         : HMMA  ? reinterpret_cast<G const*>(a.inNHWC) + cinBase + c
                                 : reinterpret_cast<G const*>(a.inNHWC + cinBase + c);
    GatherAt const at{stepBase(src), (d * g.KK + gT) * kBM + p0};
    nextStep(gT, gCs, SK, g.KK);
    return at;
  };
  auto weightRow = [&](GatherAt const& at) { return SampleTable<kHalf && !HMMA>::weightAt(g.dg * g.KK, at.rc); };
  auto gatherRow = [&](uint4 (&r)[RW][4], GatherAt const& at, int i) {
    int4 const idx = reinterpret_cast<int4 const*>(info)[at.rc + PST * i];
    G const* const cp[4] = {corner(at.base, idx.x), corner(at.base, idx.y), corner(at.base, idx.z),
                            corner(at.base, idx.w)};
#pragma unroll
    for (int h = 0; h < RW; ++h)
#pragma unroll
      for (int k = 0; k < 4; ++k) r[h][k] = __ldg(reinterpret_cast<uint4 const*>(cp[k] + h * STEPC));
  };
  auto gather = [&](uint4 (&r)[ROWS][RW][4], int& recW) {
    GatherAt const at = nextGather();
    recW = weightRow(at);
#pragma unroll
    for (int i = 0; i < ROWS; ++i) gatherRow(r[i], at, i);
  };
  // the weight of the next step into B stage `stage` (WIDE adjacent packed steps, contiguous). cp.async: always one
  // commit group per step (possibly empty), so cp.async.wait_group AHEAD - 1 means "this step's weight has landed"
  auto copyB = [&](bool issue, int stage) {
    char const* src = wg + (size_t(bT) * g.nSteps + WIDE * bCs) * kStageB;
    uint32_t const dst = sB + stage * (WIDE * kStageB);
    if constexpr (kBulkB) {
      if (issue && bIssuer) {
        if constexpr (DIRECT) {  // WIDE boxes of one 128-byte row each (the swizzle's limit), the barrier counting all
          mbarExpect(bars + stage * 8, WIDE * kStageB);
#pragma unroll
          for (int h = 0; h < WIDE; ++h)
            tensorCopy4d(dst + h * kStageB, &wmap.map, (WIDE * bCs + h) * STEPC, bT, nb * BN, grp, bars + stage * 8);
        } else {
          bulkCopy(dst, src, WIDE * kStageB, bars + stage * 8);
        }
      }
    } else {
      if (issue)
#pragma unroll
        for (int j = 0; j < kBChunks; ++j) cpAsync16(dst + lt * 16 + j * kWgThreads * 16, src + j * kWgThreads * 16);
      cpAsyncCommit();
    }
    nextStep(bT, bCs, SK, g.KK);
  };
  uint32_t phases = 0;  // bit s: the parity of B stage s's next completion

  // prologue: gathers and weights of the first AHEAD steps in flight, the gathers first (v46: a bulk copy issued
  // before a block's loads delayed them ~0.2-0.5 us, docs/kernel.md "v45 experiment")
  if (nLocal > 0) {
#pragma unroll
    for (int l = 0; l < AHEAD; ++l)
      if (l < nLocal) gather(raw[l], rec[l]);
#pragma unroll
    for (int l = 0; l < AHEAD; ++l) copyB(l < nLocal, l);
  }

  int bStage = 0;  // B stage of local step l; its A stage is l & 1
  auto body = [&](uint4 (&r)[ROWS][RW][4], int& recW, int l) {
    uint32_t const aStage = sA + (l & 1) * kStageA;
    // kEarly (the one-block-per-SM configurations): each pixel row's registers are refilled with step l + AHEAD's
    // corners as soon as they are blended, so those loads are in flight during the rest of the blend, the waits
    // and the barrier below (v10). Under the 128-register cap of two blocks per SM that spills inside the loop, so
    // those configurations issue the whole gather after the barrier (as v9 did everywhere).
    constexpr bool kEarly = MINB == 1;
    bool const more = l + AHEAD < nLocal;
    GatherAt at{};
    if (kEarly && more) at = nextGather();
    // blend into A (wgAChunk); wgmma(l - 2) read it last
#pragma unroll
    for (int i = 0; i < ROWS; ++i) {
      unsigned o[NOUT][4];
      if constexpr (kTF16) {
        blendH16(reinterpret_cast<float4 const*>(info)[recW + PST * i], r[i][0], o);
      } else {
#pragma unroll
        for (int h = 0; h < NOUT; ++h) {
          if constexpr (HMMA) blendHalf2(reinterpret_cast<uint2 const*>(info)[2 * (recW + PST * i)], r[i][h], o[h]);
          else if constexpr (kHalf) blendHalf2(reinterpret_cast<uint2 const*>(info)[recW + PST * i], r[i][h], o[h]);
          else blendFrag<T>(reinterpret_cast<float4 const*>(info)[recW + PST * i], r[i][h], o[h]);
        }
      }
      if (kEarly && more) gatherRow(r[i], at, i);
      int const p = p0 + PST * i;
#pragma unroll
      for (int h = 0; h < NOUT; ++h) {
        uint32_t const dst = wgAChunk<kN16>(aStage, p, h, v);
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(o[h][0]), "r"(o[h][1]),
            "r"(o[h][2]), "r"(o[h][3]) : "memory");
      }
    }
    if (kEarly && more) recW = weightRow(at);
    wgWait<0>();  // wgmma(l - 1) done in this warp
    if constexpr (kBulkB) {
      mbarWait(bars + bStage * 8, (phases >> bStage) & 1u);  // this step's weight has landed
      phases ^= 1u << bStage;
    } else {
      cpAsyncWait<AHEAD - 1>();  // this step's weight has landed (later ones may still be in flight)
    }
    fenceProxyAsync();  // generic-proxy writes (st.shared, cp.async) -> visible to wgmma's async proxy
    // this warpgroup's A/B of step l complete; its wgmma(l - 1) done in every warp: those stages are free (NS: the
    // block's, both warpgroups having stored their A rows)
    if constexpr (NS) asm volatile("bar.sync 1, %0;\n" ::"n"(THREADS) : "memory");
    else asm volatile("bar.sync %0, %1;\n" ::"r"(1 + wgi), "n"(kWgThreads) : "memory");
    int const bNext = bStage + AHEAD >= kStagesB ? bStage + AHEAD - kStagesB : bStage + AHEAD;
    copyB(more, bNext);
    if (!kEarly && more) gather(r, recW);
    wgFence();
#pragma unroll
    for (int h = 0; h < WIDE; ++h)
      wgStep<MT, BNW>(acc, aStage + h * kWgStageA,
          sB + (bStage * WIDE + h) * kStageB + (NS ? wgi * BNW * kWgRowBytes : 0));
    wgCommit();
    bStage = bStage + 1 == kStagesB ? 0 : bStage + 1;
  };
  for (int l = 0; l < nLocal; l += AHEAD) {
    body(raw[0], rec[0], l);
    if constexpr (AHEAD == 2)
      if (l + 1 < nLocal) body(raw[1], rec[1], l + 1);
  }
  wgWait<0>();
  fenceAcc(acc);
  if constexpr (!kBulkB) cpAsyncWait<0>();
  // A warpgroup with fewer steps (odd ranges) passes its named barrier as often as the busiest one: no effect on the
  // hardware (each warpgroup has its own barrier), but compute-sanitizer's racecheck reports false shared-memory
  // hazards on the C partials below when the counts differ (measured on H200: hazards exactly in the uneven cases).
  if constexpr (!NS)
    for (int l = nLocal, busiest = (ce - cb + KG - 1) / KG; l < busiest; ++l)
      asm volatile("bar.sync %0, %1;\n" ::"r"(1 + wgi), "n"(kWgThreads) : "memory");
  // every warp's wgmma finished reading the stages before the C partials overwrite them (H16: the same barrier tells
  // every thread whether the block redoes its K range, wgRedoFp32)
  bool redo = false;
  if constexpr (H16) {
    unsigned big = 0u;  // the largest |acc| as bits: Inf or NaN where at least 0x7F800000 (integer max: a tree)
#pragma unroll
    for (int j = 0; j < BNW / 2; ++j) big = max(big, __float_as_uint(acc[j]) & 0x7FFFFFFFu);
    redo = __syncthreads_or(big >= 0x7F800000u);
  } else {
    __syncthreads();
  }

  // accumulator (row 16 * warp + lane / 4 [+ 8], column 8 j + 2 (lane % 4) [+ 1]) -> this warpgroup's C_s[n][m]
  float* Cs = reinterpret_cast<float*>(smem + set * kGroupBytes) + (NS ? wgi * BNW * LDC : 0);
  int const warp = (lt >> 5), lane = lt & 31;
  int const mRow = warp * 16 + (lane >> 2);
  if constexpr (H16) {
    if (redo) {
      // (HMMA: a step is 64 fp32 channels per 128-byte row, the redo's two 32-channel rows per row)
      // (NS: the redo's own partition, the steps alternating between the warpgroups, two C partials)
      int const rs0 = cb + wgi, rn = rs0 < ce ? (ce - rs0 + KG - 1) / KG : 0;
      wgRedoFp32<BN, KG, HMMA ? 2 * WIDE : WIDE, NS ? kGroupBytes / 2 : kGroupBytes>(a, info, smem, img, ho0, wo0, grp,
          nb, cb, ce, rs0, rn);
      return;
    }
#pragma unroll
    for (int j = 0; j < BNW / 2; ++j) acc[j] *= HMMA ? blockScale * (1.f / (kHalfCopyScale * kHmmaWeightScale)) : 1.f / kHalfCopyScale;
  }
#pragma unroll
  for (int j = 0; j < BNW / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      Cs[(8 * j + 2 * (lane & 3) + (e & 1)) * LDC + mRow + 8 * (e >> 1)] = acc[4 * j + e];
  __syncthreads();
  storeTile<T, THREADS, BN, LDC, NS ? 1 : KG>(a, reinterpret_cast<float const*>(smem), img, ho0, wo0, grp, nb * BN,
      kGroupBytes / int(sizeof(float)));
#endif
}

// The kernels: the body above under two register budgets. kWgThreads * KG threads and MINB blocks per SM, or (v49) the
// fp16-MMA N-split kernels with 128-channel tiles held to 160 registers (254 otherwise; no spills): TF32
// 1,256,32,32->128 2 % faster on an H100 (docs/kernel.md "v49"). A separate entry because __maxnreg__ cannot be
// combined with a minimum of blocks per SM, and a launch bound of more threads (65536 / 408 = 160) got ptxas's 128.
template <typename T, int BN, int KG, int AHEAD, int MINB, int WIDE, bool DIRECT, bool H16 = false, bool HMMA = false,
    bool NS = false>
__global__ void __launch_bounds__(kWgThreads * KG, MINB)
    dcnWgKernel(const __grid_constant__ MainArgs<T> a, const __grid_constant__ WeightMap<DIRECT> wmap) {
  wgBody<T, BN, KG, AHEAD, MINB, WIDE, DIRECT, H16, HMMA, NS>(a, wmap);
}
template <typename T, int BN, int KG, int AHEAD, int MINB, int WIDE, bool DIRECT, bool H16 = false, bool HMMA = false,
    bool NS = false>
__global__ void __maxnreg__(160)
    dcnWgKernelCapped(const __grid_constant__ MainArgs<T> a, const __grid_constant__ WeightMap<DIRECT> wmap) {
  wgBody<T, BN, KG, AHEAD, MINB, WIDE, DIRECT, H16, HMMA, NS>(a, wmap);
}

// One launch for all preparation: NCHW -> NHWC transpose, weight packing, accumulator zeroing.
template <typename T> struct PrepArgs {
  T const* __restrict__ in;
  T const* __restrict__ weight;
  T* __restrict__ inNHWC;
  T* __restrict__ wpack;
  int N, C, HW, Cout, Cin_g, KK, Kpad;
  int transBlocksC, transBlocksHW, transBlocks, packBlocks;
  // weight layout: 0 = [Cout][tap][Kpad] rows (dcnMainKernel), 1 = mma fragments (dcnRegKernel), 2 = swizzled
  // wgmma stages (dcnWgKernel)
  int frag, fragTF32, groups, Cout_g, nSteps, ntPad, tilesN, bn;
  size_t packElems;
  int vecTrans;  // 16-byte transpose path (see dcnPrepKernel)
  int weight16;  // weight 16-byte aligned (vector loads in the wgmma pack)
  // TF32 from an fp16 copy (v30; fp32, 16-byte transpose path only): 0 = none, else the copy (kHalfCopyScale x the
  // input; a tile of only tiny values as NaN) has its channel runs of halfRun channels (64 or 32) permuted for
  // dcnWgKernel's H16 gathers
  int halfRun;
  int hmma;  // dcnWgKernel's HMMA (v34): the wgmma pack as fp16 (kHmmaWeightScale x the fp32 weight)
  void* zeroOut;  // the output that two K splits add into (Geometry::sumInOut), zeroed by the last blocks
  int zeroBlocks, zeroVecs;  // ... kZeroVecs 16-byte vectors per thread, zeroVecs in all
  // element (output row co of all groups, input channel c of the group, tap t) of the weight, linear or (KRSC: the
  // weight channels-last, DCNv2Params::weightNHWC) [Cout][KK][Cin_g]
  template <bool KRSC> __device__ size_t wAt(int co, int c, int t) const {
    return weightIndex(KRSC, size_t(co), c, t, KK, Cin_g);
  }
};

constexpr int kPrepThreads = 256;
constexpr int kPrepTileBytes = 128 * 66;  // dcnPrepKernel's transpose tile: 128 bytes of channels x 66 positions
constexpr int kPackStageBytes = kPrepThreads * 9 * 16;  // dcnPrepKernel's STAGED: 9 16-byte vectors a thread

// 16 bytes global -> shared without registers (zeros where !valid); a plain copy before sm_80. (Not the warpgroup
// kernel's cpAsync16: that one is sm_90a-only and has no zero fill. The shared address is converted inside the asm:
// __cvta_generic_to_shared here changed how nvcc passes the fp32 redo's shared-memory pointers in 17 warpgroup
// kernels, which had nothing to do with this.)
__device__ __forceinline__ void copyAsync16(uint4* dst, uint4 const* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "{\n .reg .u64 a;\n .reg .u32 s;\n cvta.to.shared.u64 a, %0;\n cvt.u32.u64 s, a;\n"
      " cp.async.cg.shared.global [s], [%1], 16, %2;\n}\n" ::"l"(dst),
      "l"(src), "r"(valid ? 16 : 0) : "memory");
#else
  *dst = valid ? __ldg(src) : uint4{0, 0, 0, 0};
#endif
}
__device__ __forceinline__ void copyAsyncWaitAll() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}
// Part `part` of one 16-byte chunk of dcnWgKernel's packed weight, for every tap: the 16 / sizeof(T) channels
// c0 + part * 16 / sizeof(T) ... of output row `row` (zeros past the weight: rows where !rowValid, channels from Cin_g,
// a multiple of the chunk's channels on this path), as OUT: the weight's own type (one part;
// fp32 pre-rounded to TF32), or halves of an fp32 weight (HMMA, v34: kHmmaWeightScale x the weight; two parts, 8 bytes
// each: one thread with the 18 source vectors of a whole chunk made the fp32 prep kernel 82 registers (v32: 54) and its
// transpose slower, one thread taking both parts in turn waited for two round trips; H100, docs/kernel.md "v34").
template <typename OUT, typename T, bool KRSC>
__device__ __forceinline__ void packWgChunk(PrepArgs<T> const& a, int row, int c0, int part, bool rowValid, uint4* dst,
    size_t tapStride, uint4* stage) {
  bool const valid = rowValid && c0 < a.Cin_g;
  constexpr int VP = 16 / int(sizeof(T));  // channels of a part: one 16-byte source vector per tap
  using Part = Pack<OUT, VP>;
  auto convert = [](T w) -> OUT {
    if constexpr (std::is_same<OUT, __half>::value && std::is_same<T, float>::value)
      return __float2half_rn(w * kHmmaWeightScale);
    else if constexpr (std::is_same<T, float>::value)
      return __uint_as_float(tf32Bits(w));
    else
      return w;
  };
  // HMMA: the largest |w| of this part as bits (NaN above Inf); where 0 < that < 2^-26 (kHmmaTinyBits) the first half
  // of every tap is then overwritten with NaN, so every block that reads any of these weights redoes (overwritten
  // after the stores rather than known before them: the 36 values held for the maximum took the fp32 prep kernel from
  // 48 to 54 registers)
  constexpr bool kHmma = std::is_same<OUT, __half>::value && std::is_same<T, float>::value;
  unsigned big = 0u;
  auto track = [&](T w) {
    if constexpr (kHmma) big = max(big, __float_as_uint(w) & 0x7FFFFFFFu);
  };
  auto poison = [&](int taps) {
    if constexpr (kHmma)
      if (big != 0u && big < kHmmaTinyBits)
        for (int t = 0; t < taps; ++t) reinterpret_cast<Part*>(dst + t * tapStride)[part].v[0] = __ushort_as_half(0x7E00u);
  };
  c0 += part * VP;
  if (a.KK == 9 && a.weight16 && !KRSC) {
    // 3x3 (every CenterNet layer): the VP x 9 source weights of a lane are 9 contiguous 16-byte vectors, loaded at
    // once (the generic loop below waits for each tap's loads in turn)
    auto emitTap = [&](auto const& w, int t) {  // w(i): the lane's weight i = channel e x 9 + tap t
      Part v;
#pragma unroll
      for (int e = 0; e < VP; ++e) {
        v.v[e] = convert(w(e * 9 + t));
        track(w(e * 9 + t));
      }
      reinterpret_cast<Part*>(dst + t * tapStride)[part] = v;
    };
    if (stage != nullptr) {
      // staged (dcnPrepKernel's STAGED): the G lanes of one output row hold a run of G x 9 contiguous vectors,
      // copied into shared memory with consecutive lanes on consecutive vectors; each lane then reads its own 9 (a
      // lane loading its own 9, 144 bytes from its neighbour's, takes each of a warp's loads to 32 pieces of as many
      // lines; docs/kernel.md "v51")
      constexpr int G = kHmma ? 16 : 8;  // 8 chunks of a row, of two parts each under HMMA
      int const g = threadIdx.x & (G - 1);
      int const base = c0 - c0 % (G * VP);
      uint4* const run = stage + (threadIdx.x & ~(G - 1)) * 9;
      uint4 const* src = reinterpret_cast<uint4 const*>(a.weight + a.template wAt<KRSC>(rowValid ? row : 0, base, 0));
      int const nValid = rowValid ? min(G, (a.Cin_g - base) / VP) * 9 : 0;  // the run's vectors inside the weight
#pragma unroll
      for (int k = 0; k < 9; ++k) copyAsync16(run + g + G * k, src + g + G * k, g + G * k < nValid);
      copyAsyncWaitAll();
      __syncwarp(unsigned((1ull << G) - 1) << (threadIdx.x & 31 & ~(G - 1)));
      T const* own = reinterpret_cast<T const*>(run + (c0 - base) / VP * 9);
      if constexpr (std::is_same<OUT, float>::value) {
#pragma unroll 1
        for (int t = 0; t < 9; ++t) emitTap([&](int i) { return own[i]; }, t);  // (unrolled, the TF32 pack spilled)
      } else {
#pragma unroll
        for (int t = 0; t < 9; ++t) emitTap([&](int i) { return own[i]; }, t);
      }
    } else {
      uint4 raw[9];
      uint4 const* src = reinterpret_cast<uint4 const*>(a.weight + a.template wAt<KRSC>(row, c0, 0));
#pragma unroll
      for (int j = 0; j < 9; ++j) raw[j] = valid ? __ldg(src + j) : uint4{0, 0, 0, 0};
#pragma unroll
      for (int t = 0; t < 9; ++t) emitTap([&](int i) { return reinterpret_cast<T const*>(raw)[i]; }, t);
    }
    poison(9);
    return;
  }
  for (int t = 0; t < a.KK; ++t) {
    Part v;
#pragma unroll
    for (int e = 0; e < VP; ++e) {
      T w = T(0.f);
      if (valid) w = a.weight[a.template wAt<KRSC>(row, c0 + e, t)];
      v.v[e] = convert(w);
      track(w);
    }
    reinterpret_cast<Part*>(dst + t * tapStride)[part] = v;
  }
  poison(a.KK);
}
constexpr int kZeroVecs = 4;
constexpr int kTransC16 = 64;   // fp16 register transpose: channels x positions per block (8 x 32 octets)
constexpr int kTransS16 = 256;

// REGT (fp16 only, large inputs): the transpose moves 8 x 8 tiles through registers (first branch below).
// KRSC: the weight channels-last (packed for the kernels that do not read it directly).
// fp32: 48 registers at most, so 5 blocks per SM for the transpose (v35's tiny-weight check left to itself took 54;
// fp16: no minimum, as before).
// STAGED: the wgmma pack's 3x3 path through kPackStageBytes of dynamic shared memory (v51; where the pack's blocks
// outnumber the transpose's, see launchPrep).
template <typename T, bool REGT = false, bool KRSC = false, bool STAGED = false>
__global__ void __launch_bounds__(kPrepThreads, std::is_same<T, float>::value ? 5 : 0) dcnPrepKernel(PrepArgs<T> a) {
  auto const wAt = [&](int co, int c, int t) { return a.template wAt<KRSC>(co, c, t); };
  constexpr int kTS = 64;                     // vector transpose tile: 64 positions x kTC channels (8 KB)
  constexpr int kVE = 16 / int(sizeof(T));    // elements per 16-byte vector
  constexpr int kTC = 128 / int(sizeof(T));
  static_assert(kTC * (kTS + 2) * sizeof(T) == kPrepTileBytes, "the host counts the tile's bytes (wgPrepCarveout)");
  __shared__ __align__(16) unsigned char tileRaw[kPrepTileBytes];
  extern __shared__ __align__(128) unsigned char smem[];  // STAGED: kPackStageBytes
  // (Launched in plain stream order: with PDL, waiting here for the previous kernel, it was 0.4-0.7 us faster only
  // when that kernel was this layer's own previous call, and no faster after another kernel; docs/kernel.md, v12.)
  gridDependentsMayLaunch();  // the main kernel may start building its sampling tables now
  int b = blockIdx.x;
  if constexpr (REGT && std::is_same<T, __half>::value) {
    if (b < a.transBlocks) {
      // fp16: a thread moves 8 channels x 8 positions through its registers (8 16-byte loads along positions, 8
      // byte permutes per output vector, 8 16-byte stores along channels), no shared memory; a block covers 64
      // channels x 256 positions. A warp's lanes are 8 channel octets x 4 position octets, so its loads are 8
      // whole 64-byte runs and its stores 4 whole 128-byte runs. The shared-memory tile below moves fp16 at ~60 %
      // of the copy rate (8 two-byte shared accesses each way per 16 bytes); this path is faster only where there
      // are enough of its larger tiles to fill the GPU twice (host: regTrans in forwardT; H100, docs/kernel.md).
      int const img = b / (a.transBlocksC * a.transBlocksHW);
      int const r = b % (a.transBlocksC * a.transBlocksHW);
      int const lane = threadIdx.x & 31;
      int const c = (r / a.transBlocksHW) * kTransC16 + (lane & 7) * 8;
      int const s = (r % a.transBlocksHW) * kTransS16 + ((threadIdx.x >> 5) * 4 + (lane >> 3)) * 8;
      if (c >= a.C || s >= a.HW) return;
      T const* src = a.in + (size_t(img) * a.C + c) * a.HW + s;
      T* dst = a.inNHWC + (size_t(img) * a.HW + s) * a.C + c;
      uint4 v[8];  // v[j]: channel c + j, positions s .. s + 7
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = __ldg(reinterpret_cast<uint4 const*>(src + size_t(j) * a.HW));
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        unsigned o[4];  // position s + i: channel pairs (2k, 2k + 1)
#pragma unroll
        for (int k = 0; k < 4; ++k)
          o[k] = __byte_perm(reinterpret_cast<unsigned const*>(&v[2 * k])[i >> 1],
              reinterpret_cast<unsigned const*>(&v[2 * k + 1])[i >> 1], (i & 1) ? 0x7632 : 0x5410);
        *reinterpret_cast<uint4*>(dst + size_t(i) * a.C) = make_uint4(o[0], o[1], o[2], o[3]);
      }
      return;
    }
  }
  if (b < a.transBlocks && a.vecTrans) {
    // 16-byte loads along positions and 16-byte stores along channels (H*W and C multiples of the vector)
    T (*tile)[kTS + 2] = reinterpret_cast<T (*)[kTS + 2]>(tileRaw);
    int const img = b / (a.transBlocksC * a.transBlocksHW);
    int const r = b % (a.transBlocksC * a.transBlocksHW);
    int const c0 = (r / a.transBlocksHW) * kTC;
    int const s0 = (r % a.transBlocksHW) * kTS;
    T const* src = a.in + size_t(img) * a.C * a.HW;
    T* dst = a.inNHWC + size_t(img) * a.C * a.HW;
    static_assert(kTC * kTS / kVE == 2 * kPrepThreads, "two vectors per thread each way");
    float vmax = 0.f;  // halfRun: this thread's max |x| (a NaN is skipped: it is a NaN in the copy anyway)
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      int const v = threadIdx.x + kPrepThreads * k;
      int const row = v / (kTS / kVE);
      int const col = (v % (kTS / kVE)) * kVE;
      int const c = c0 + row;
      int const s = s0 + col;
      if (c < a.C && s < a.HW) {
        Pack<T, kVE> const pk = ldgPack<T, kVE>(src + size_t(c) * a.HW + s);
#pragma unroll
        for (int e = 0; e < kVE; ++e) tile[row][col + e] = pk.v[e];
        if constexpr (std::is_same<T, float>::value)
          if (a.halfRun)
#pragma unroll
            for (int e = 0; e < kVE; ++e) vmax = fmaxf(vmax, fabsf(float(pk.v[e])));
      }
    }
    bool tiny = false;  // halfRun: the tile's nonzero values are all below kHalfCopyTiny: written as NaN
    if (std::is_same<T, float>::value && a.halfRun) {
      // from the barrier the transpose needs anyway (a second one only for a tile with no value of kHalfCopyTiny or more)
      tiny = !__syncthreads_or(vmax >= kHalfCopyTiny) && __syncthreads_or(vmax != 0.f);
    } else {
      __syncthreads();
    }
#pragma unroll
    for (int k = 0; k < 2; ++k) {
      int const v = threadIdx.x + kPrepThreads * k;
      int const sp = v / (kTC / kVE);
      int const cv = (v % (kTC / kVE)) * kVE;
      int const s = s0 + sp;
      int const c = c0 + cv;
      if (c < a.C && s < a.HW) {
        if (std::is_same<T, float>::value && a.halfRun) {
          // channels c .. c + 3 as halves, at their place in the permuted run (lane q of dcnWgKernel's H16 gather
          // reads run positions 8q .. 8q + 7 = channels 4q .. 4q + 3 and run / 2 + 4q .. run / 2 + 4q + 3)
          int const run = a.halfRun, cc = c & (run - 1), q = cc >> 2, lanes = run >> 3;
          constexpr float k = kHalfCopyScale;
          __half2 const h0 = __floats2half2_rn(k * float(tile[cv][sp]), k * float(tile[cv + 1][sp]));
          __half2 const h1 = __floats2half2_rn(k * float(tile[cv + 2][sp]), k * float(tile[cv + 3][sp]));
          uint2 u;
          u.x = tiny ? 0x7E007E00u : *reinterpret_cast<unsigned const*>(&h0);
          u.y = tiny ? 0x7E007E00u : *reinterpret_cast<unsigned const*>(&h1);
          __half* const copy = reinterpret_cast<__half*>(a.inNHWC) + size_t(img) * a.C * a.HW;
          *reinterpret_cast<uint2*>(copy + size_t(s) * a.C + (c - cc) + (q % lanes) * 8 + (q / lanes) * 4) = u;
        } else {
          Pack<T, kVE> pk;
#pragma unroll
          for (int e = 0; e < kVE; ++e) pk.v[e] = tile[cv + e][sp];
          *reinterpret_cast<Pack<T, kVE>*>(dst + size_t(s) * a.C + c) = pk;
        }
      }
    }
    return;
  }
  if (b < a.transBlocks) {
    T (*tile)[33] = reinterpret_cast<T (*)[33]>(tileRaw);
    int const img = b / (a.transBlocksC * a.transBlocksHW);
    int const r = b % (a.transBlocksC * a.transBlocksHW);
    int const c0 = (r / a.transBlocksHW) * 32;
    int const s0 = (r % a.transBlocksHW) * 32;
    int const tx = threadIdx.x % 32;
    int const ty = threadIdx.x / 32;  // 0..7
    T const* src = a.in + size_t(img) * a.C * a.HW;
    T* dst = a.inNHWC + size_t(img) * a.C * a.HW;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      int const c = c0 + ty + 8 * k;
      int const s = s0 + tx;
      if (c < a.C && s < a.HW) tile[ty + 8 * k][tx] = src[size_t(c) * a.HW + s];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      int const s = s0 + ty + 8 * k;
      int const c = c0 + tx;
      if (c < a.C && s < a.HW) dst[size_t(s) * a.C + c] = tile[tx][ty + 8 * k];
    }
    return;
  }
  b -= a.transBlocks;
  if (b < a.packBlocks) {
    // 32-bit index math (dcnv2CheckSupported bounds the packed sizes below 2^31): 64-bit divisions made this
    // part several microseconds for the 512-channel layers.
    unsigned const i = unsigned(b) * kPrepThreads + threadIdx.x;
    if (a.frag == 2) {
      // wpack[grp][n-block][t][step][n][chunk pc] (16-byte chunks, 128-byte rows): chunk pc of row n holds channels
      // step * 8V + (pc ^ (n & 7)) * V + [0, V) of output channel n-block * BN + n (the 128-byte swizzle wgmma
      // reads), zero outside Cout_g / Cin_g; TF32 pre-rounded, or (HMMA, v34) as halves. One thread per chunk (HMMA:
      // per half chunk) walks the taps.
      bool const hmma = std::is_same<T, float>::value && a.hmma;
      int const V = hmma ? 8 : 16 / int(sizeof(T));  // channels per chunk
      unsigned const parts = hmma ? 2u : 1u;         // threads per chunk (packWgChunk)
      unsigned const total = unsigned(a.groups) * a.tilesN * a.bn * a.nSteps * 8u * parts;
      if (i < total) {
        int const part = int(i % parts);
        unsigned const pc = i / parts % 8u;
        unsigned r = i / parts / 8u;
        unsigned const n = r % unsigned(a.bn);
        r /= unsigned(a.bn);
        unsigned const cs = r % unsigned(a.nSteps);
        r /= unsigned(a.nSteps);
        unsigned const nb = r % unsigned(a.tilesN);
        unsigned const grp = r / unsigned(a.tilesN);
        int const co = int(nb * a.bn + n);
        int const c0 = int(cs * 8 * V + ((pc ^ (n & 7u)) * V));
        int const row = int(grp) * a.Cout_g + co;
        uint4* dst = reinterpret_cast<uint4*>(a.wpack) +
                     (((size_t(grp) * a.tilesN + nb) * a.KK * a.nSteps + cs) * a.bn + n) * 8 + pc;
        size_t const tapStride = size_t(a.nSteps) * a.bn * 8;  // chunks between consecutive taps
        uint4* const stage = STAGED ? reinterpret_cast<uint4*>(smem) : nullptr;
        if constexpr (std::is_same<T, float>::value)
          if (hmma) return packWgChunk<__half, T, KRSC>(a, row, c0, part, co < a.Cout_g, dst, tapStride, stage);
        packWgChunk<T, T, KRSC>(a, row, c0, 0, co < a.Cout_g, dst, tapStride, stage);
      }
      return;
    }
    if (a.frag) {
      // wpack[grp][t][step][n-tile][lane][e] = weight[grp*Cout_g + 8*tile + lane/4][step*4V + (lane%4)*V + e][t]
      // (dcnRegKernel's permuted fragment order), zero outside Cout_g / Cin_g; TF32 pre-rounded. One thread
      // writes one lane's 16-byte vector for every tap: its V x KK source weights are contiguous, so the taps after
      // the first hit L1, and each warp's stores are 512 contiguous bytes.
      constexpr int V = 16 / int(sizeof(T));
      if (i < unsigned(a.packElems / (size_t(V) * a.KK))) {
        unsigned const lane = i % 32u;
        unsigned r = i / 32u;
        unsigned const nt = r % unsigned(a.ntPad);
        r /= unsigned(a.ntPad);
        unsigned const cs = r % unsigned(a.nSteps);
        unsigned const grp = r / unsigned(a.nSteps);
        int const co = int(nt * 8 + lane / 4);
        int const c0 = int(cs * 4 * V + (lane % 4) * V);
        int const row = int(grp) * a.Cout_g + co;
        Pack<T, V>* dst = reinterpret_cast<Pack<T, V>*>(a.wpack) +
                          ((size_t(grp) * a.KK * a.nSteps + cs) * a.ntPad + nt) * 32 + lane;
        size_t const tapStride = size_t(a.nSteps) * a.ntPad * 32;  // vectors between consecutive taps
        for (int t = 0; t < a.KK; ++t) {
          Pack<T, V> v;
#pragma unroll
          for (int e = 0; e < V; ++e) {
            T w = T(0.f);
            if (co < a.Cout_g && c0 + e < a.Cin_g) w = a.weight[wAt(row, c0 + e, t)];
            if constexpr (std::is_same<T, float>::value) {
              if (a.fragTF32) w = __uint_as_float(tf32Bits(w));
            }
            v.v[e] = w;
          }
          dst[t * tapStride] = v;
        }
      }
      return;
    }
    // wpack[co][t][c] (c padded to Kpad with zeros) from weight[co][c][t] (or weight[co][t][c])
    unsigned const total = unsigned(a.Cout) * a.KK * a.Kpad;
    if (i < total) {
      unsigned const c = i % unsigned(a.Kpad);
      unsigned const r = i / unsigned(a.Kpad);
      unsigned const t = r % unsigned(a.KK);
      unsigned const co = r / unsigned(a.KK);
      a.wpack[i] = c < unsigned(a.Cin_g) ? a.weight[wAt(int(co), int(c), int(t))] : T(0.f);
    }
    return;
  }
  b -= a.packBlocks;
  if (b < a.zeroBlocks) {
#pragma unroll
    for (int k = 0; k < kZeroVecs; ++k) {
      int const i = (b * kZeroVecs + k) * kPrepThreads + threadIdx.x;
      if (i < a.zeroVecs) reinterpret_cast<float4*>(a.zeroOut)[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
}

// Split-K finalize: out = sum of the split partials in split order + bias. 32-bit indices (dcnv2CheckSupported keeps
// outputs below 2^31 elements); four outputs per thread with 16-byte partial loads when H*W is a multiple of 4 and the
// output is aligned (ncu: the scalar version with 64-bit index division took 2.4-4.6 us on the split-K layers).
// BATCH > 1: that many partials loaded before any is added (predicated, not a runtime loop), so a 15-split sum waits
// for one L2 round trip, not four; the adds keep the split order (same bits). It costs registers, hence fewer resident
// blocks: only for many splits, whose outputs are few (H100: 1,512,16,16->256 fp16 11.9 -> 11.1 us, but
// 1,128,64,64->128, 2 splits and 512 blocks, 13.6 -> 14.6 with 16). BATCH 1: a plain loop (32 registers).
// nhwc: output and partials channels-last (the channel of element i is i % Cout; vec4 then needs Cout % 4 == 0).
template <typename T, int BATCH>
__global__ void dcnFinalizeKernel(float const* __restrict__ acc, T const* __restrict__ bias, T* __restrict__ out,
    int total, int Cout, int HoWo, int splits, int vec4, int nhwc) {
  using Tr = Traits<T>;
  gridDependencyWait();
  // unsigned: total < 2^31 and stride <= 2^21, so i + stride never wraps
  unsigned const stride = gridDim.x * blockDim.x;
  if (vec4) {
    unsigned const total4 = unsigned(total) / 4u, HoWo4 = unsigned(HoWo) / 4u;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total4; i += stride) {
      float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
      auto part = [&](int k) { return __ldcs(reinterpret_cast<float4 const*>(acc + size_t(k) * total) + i); };
      if constexpr (BATCH > 1) {
        for (int k0 = 0; k0 < splits; k0 += BATCH) {
          float4 v[BATCH];
#pragma unroll
          for (int k = 0; k < BATCH; ++k)
            if (k0 + k < splits) v[k] = part(k0 + k);
#pragma unroll
          for (int k = 0; k < BATCH; ++k)
            if (k0 + k < splits) {  // fixed order: same bits every run
              s.x += v[k].x; s.y += v[k].y; s.z += v[k].z; s.w += v[k].w;
            }
        }
      } else {
#pragma unroll 4
        for (int k = 0; k < splits; ++k) {  // fixed order: same bits every run
          float4 const v = part(k);
          s.x += v.x; s.y += v.y; s.z += v.z; s.w += v.w;
        }
      }
      float b[4] = {0.f, 0.f, 0.f, 0.f};
      if (bias) {
        unsigned const c = nhwc ? 4u * i % unsigned(Cout) : (i / HoWo4) % unsigned(Cout);
#pragma unroll
        for (int k = 0; k < 4; ++k) b[k] = Tr::toF(bias[nhwc ? c + k : c]);
      }
      Pack<T, 4> o;
      o.v[0] = Tr::fromF(s.x + b[0]); o.v[1] = Tr::fromF(s.y + b[1]); o.v[2] = Tr::fromF(s.z + b[2]);
      o.v[3] = Tr::fromF(s.w + b[3]);
      reinterpret_cast<Pack<T, 4>*>(out)[i] = o;
    }
    return;
  }
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < unsigned(total); i += stride) {
    float sum = 0.f;
    for (int k = 0; k < splits; ++k) sum += acc[size_t(k) * total + i];  // fixed order: same bits every run
    unsigned const c = nhwc ? i % unsigned(Cout) : (i / unsigned(HoWo)) % unsigned(Cout);
    out[i] = Tr::fromF(sum + (bias ? Tr::toF(bias[c]) : 0.f));
  }
}

// ---- the im2col tactic (DCNv2Algo::kIm2colGemm, v15; needs cuBLAS) ----
// The layer as torchvision and TensorRT's own plugin compute it: the prep kernel's NHWC copy (no weight pack), one
// kernel that samples every (pixel, tap, channel) once into a column matrix col[pixel][c * KK + tap] (the weight's
// own K order, so the GEMM reads the weight as it lies; tap * Cin_g + c for a channels-last weight), then a cuBLAS
// GEMM per conv group over the images of a chunk (strided batched). The bias is written into the output first and the GEMM adds to it (beta = 1). Faster
// than the fused kernel where the weight is large or the tile grid leaves SMs idle (docs/kernel.md, v15);
// TensorRT times both and keeps the faster one per layer.
template <typename T> struct ColArgs {
  T const* __restrict__ inNHWC;
  T const* __restrict__ offset;
  T const* __restrict__ mask;
  T const* __restrict__ bias;
  T* __restrict__ col;
  T* __restrict__ out;
  Geometry g;
  int n0;            // first image of this chunk
  long threads;      // images of the chunk * HoWo * C / VEC sampling threads
  int colBlocks;     // blocks of sampling threads; the blocks after them fill the output with the bias
};

// Threads per block: fp16 128 (its blocks fill the SMs more evenly: H100, 1,256,48,48->256 21.4 -> 19.9 us, the
// 8-image batch 206.6 -> 190.2), fp32 256 (128 was up to 1 us slower on the small layers). Holding the run packed in
// 36 registers instead of 72 floats was slower for fp16 (more instructions per tap).
template <typename T> __host__ __device__ constexpr int colThreads() { return std::is_same<T, __half>::value ? 128 : 256; }
// Blocks per SM the compiler must fit: fp16 4 (128 registers instead of 137, no spill: 4 blocks per SM instead of 3;
// H100, v25, 14 layers x NCHW / channels-last input: 2-10 % faster on 23 of 28, within 1.5 % on 4, 3 % slower on
// 1,2048,12,12->256 NCHW; e.g. 1,256,48,48->256 19.9 -> 18.6 us with the input channels-last, the 8-image batch 201 ->
// 182; same bits. 5 blocks (96 registers) spilled and lost on the weight-heavy layers); fp32 0, no minimum (ptxas's
// own choice, 72 registers: 3 blocks of 256 threads; the same code as without the bound).
template <typename T> __host__ __device__ constexpr int colMinBlocks() { return std::is_same<T, __half>::value ? 4 : 0; }

// A thread samples one pixel's VEC channels at all KK taps (4 corner vectors per tap, blended in fp32) and writes
// their KK * VEC column entries (c * KK + tap order: one contiguous 16 * KK-byte run per thread); the runs of a
// warp's 32 threads are contiguous too, so they go out through shared memory as whole 512-byte rows.
template <typename T, int KK>
__global__ void __launch_bounds__(colThreads<T>(), colMinBlocks<T>()) dcnIm2colKernel(ColArgs<T> a) {
  using Tr = Traits<T>;
  constexpr int VEC = Traits<T>::kVec;
  constexpr int RUN = VEC * KK;                    // elements a thread writes
  constexpr int CHUNKS = RUN * int(sizeof(T)) / 16;  // 16-byte chunks per thread (KK of them)
  constexpr int THREADS = colThreads<T>();
  __shared__ __align__(16) uint4 stage[THREADS / 32][32 * CHUNKS];
  Geometry const& g = a.g;
  if (int(blockIdx.x) >= a.colBlocks) {  // bias fill
    gridDependencyWait();
    unsigned const first = unsigned(a.n0) * g.Cout * g.HoWo;  // the chunk's outputs; all < 2^31 (CheckSupported)
    unsigned const total = unsigned(a.threads / (g.C / VEC) / g.HoWo) * g.Cout * g.HoWo;
    unsigned const stride = (gridDim.x - a.colBlocks) * blockDim.x;
    for (unsigned i = (blockIdx.x - a.colBlocks) * blockDim.x + threadIdx.x; i < total; i += stride)
      a.out[first + i] = a.bias[g.outNHWC ? i % unsigned(g.Cout) : (i / unsigned(g.HoWo)) % unsigned(g.Cout)];
    return;
  }
  long const tI = long(blockIdx.x) * THREADS + threadIdx.x;
  bool const live = tI < a.threads;
  int const CV = g.C / VEC;
  long const m = live ? tI / CV : 0;
  int const cv = live ? int(tI % CV) : 0;
  int const n = a.n0 + int(m / g.HoWo), p = int(m % g.HoWo);
  int const ho = p / g.Wo, wo = p % g.Wo;
  int const c0 = cv * VEC;
  int const d = g.dg == 1 ? 0 : c0 / g.Cdg;
  // offsets and masks of all taps first: they do not depend on the prep kernel, so they load while it drains
  T const* offPix = a.offset + (size_t(n) * 2 * g.dg * KK + size_t(d) * 2 * KK) * g.HoWo + p;
  T const* maskPix = a.mask + (size_t(n) * g.dg * KK + size_t(d) * KK) * g.HoWo + p;
  float oy[KK], ox[KK], mk[KK];
#pragma unroll
  for (int t = 0; t < KK; ++t) {
    oy[t] = Tr::toF(offPix[size_t(2 * t) * g.HoWo]);
    ox[t] = Tr::toF(offPix[size_t(2 * t + 1) * g.HoWo]);
    mk[t] = Tr::toF(maskPix[size_t(t) * g.HoWo]);
  }
  gridDependencyWait();
  T const* img = a.inNHWC + size_t(n) * g.H * g.W * g.C + c0;
  float run[RUN];  // blended values, fp32 until they are packed
  // one tap at a time: measured faster than issuing the corner loads of 3 taps before blending, branch-free (fp16
  // 1,64,192,192->64 62.5 vs 76.2 us, the 8-image batch 225 vs 270, TF32 44 vs 49 on 1,64,128,128->64; H100)
#pragma unroll
  for (int t = 0; t < KK; ++t) {
    int const ki = t / g.kw, kj = t % g.kw;
    float const y = float(ho * g.sh - g.ph + ki * g.dh) + oy[t];
    float const x = float(wo * g.sw - g.pw + kj * g.dw) + ox[t];
    float w[4] = {0.f, 0.f, 0.f, 0.f};
    int at[4] = {0, 0, 0, 0};
    if (y > -1.f && y < float(g.H) && x > -1.f && x < float(g.W)) {  // torchvision's rule
      int const y0 = int(floorf(y)), x0 = int(floorf(x));
      float const ly = y - float(y0), lx = x - float(x0), hy = 1.f - ly, hx = 1.f - lx;
      bool const vy0 = y0 >= 0, vy1 = y0 + 1 < g.H, vx0 = x0 >= 0, vx1 = x0 + 1 < g.W;
      int const at00 = (y0 * g.W + x0) * g.C;
      if (vy0 && vx0) { at[0] = at00; w[0] = hy * hx * mk[t]; }
      if (vy0 && vx1) { at[1] = at00 + g.C; w[1] = hy * lx * mk[t]; }
      if (vy1 && vx0) { at[2] = at00 + g.W * g.C; w[2] = ly * hx * mk[t]; }
      if (vy1 && vx1) { at[3] = at00 + (g.W + 1) * g.C; w[3] = ly * lx * mk[t]; }
    }
    Pack<T, VEC> r[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = ldgPack<T, VEC>(img + at[k]);
#pragma unroll
    for (int e = 0; e < VEC; ++e) {
      float s = w[0] * Tr::toF(r[0].v[e]);
      s = fmaf(w[1], Tr::toF(r[1].v[e]), s);
      s = fmaf(w[2], Tr::toF(r[2].v[e]), s);
      s = fmaf(w[3], Tr::toF(r[3].v[e]), s);
      run[e * KK + t] = s;
    }
  }
  if (g.wKRSC) {
    // the weight channels-last (v24): col[pixel][group's K in its order: tap * Cin_g + channel], so the GEMM still
    // reads the weight as it lies; a thread's KK vectors go straight out (per tap, a warp's are contiguous)
    if (!live) return;
    T* dst = a.col + size_t(m) * g.C * KK + size_t(c0 / g.Cin_g) * g.Cin_g * KK + c0 % g.Cin_g;
#pragma unroll
    for (int t = 0; t < KK; ++t) {
      Pack<T, VEC> o;
#pragma unroll
      for (int e = 0; e < VEC; ++e) o.v[e] = Tr::fromF(run[e * KK + t]);
      *reinterpret_cast<Pack<T, VEC>*>(dst + size_t(t) * g.Cin_g) = o;
    }
    return;
  }
  // the warp's runs are one contiguous piece of col: stage them, then store 512-byte rows
  int const warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  uint4* st = stage[warp];
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    unsigned q[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (std::is_same<T, __half>::value) {
        __half2 const h = __floats2half2_rn(run[8 * j + 2 * k], run[8 * j + 2 * k + 1]);
        q[k] = *reinterpret_cast<unsigned const*>(&h);
      } else {
        q[k] = __float_as_uint(run[4 * j + k]);
      }
    }
    st[lane * CHUNKS + j] = make_uint4(q[0], q[1], q[2], q[3]);
  }
  __syncwarp();
  long const warpFirst = tI - lane;  // its run starts at warpFirst * RUN elements
  long const warpLive = a.threads - warpFirst < 32 ? a.threads - warpFirst : 32;
  uint4* dst = reinterpret_cast<uint4*>(a.col + size_t(warpFirst) * RUN);
#pragma unroll
  for (int j = 0; j < CHUNKS; ++j) {
    int const q = j * 32 + lane;
    if (q < warpLive * CHUNKS) dst[q] = st[q];
  }
}

size_t alignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

template <typename T> int bkOf() { return Traits<T>::kBK; }

// Elements of the fragment-ordered weight of dcnRegKernel (n-tiles padded for the largest NT, so the size does
// not depend on the variant the GPU later picks).
template <typename T> int fragSteps(DCNv2Params const& p) {
  return (p.inChannels / p.groups + 4 * (16 / int(sizeof(T))) - 1) / (4 * (16 / int(sizeof(T))));
}
inline int fragNTPad(DCNv2Params const& p) {
  return (p.outChannels / p.groups + 8 * kFragNTPad - 1) / (8 * kFragNTPad) * kFragNTPad;
}
template <typename T> size_t fragPackElems(DCNv2Params const& p) {
  return size_t(p.groups) * p.kernelH * p.kernelW * fragSteps<T>(p) * fragNTPad(p) * 32 * (16 / sizeof(T));
}

// K steps per tap and elements of the swizzled weight of dcnWgKernel (n-blocks padded to 128 channels, so the size
// does not depend on the variant or GPU the launch later picks).
template <typename T> int wgSteps(DCNv2Params const& p) {
  return (p.inChannels / p.groups + 8 * (16 / int(sizeof(T))) - 1) / (8 * (16 / int(sizeof(T))));
}
template <typename T> size_t wgPackElems(DCNv2Params const& p) {
  int const tile = p.outChannels / p.groups > 128 ? 256 : 128;  // (256-channel tiles, v28)
  size_t const coutPad = size_t((p.outChannels / p.groups + tile - 1) / tile) * tile;
  return size_t(p.groups) * coutPad * p.kernelH * p.kernelW * wgSteps<T>(p) * 8 * (16 / sizeof(T));
}

struct Layout {
  size_t inBytes, wBytes, accBytes, total;
};

// packW = false: the weight is read as it lies (the warpgroup kernel with the weight channels-last), no room for a
// packed copy.
template <typename T> Layout layoutOf(DCNv2Params const& p, int splits, bool packW) {
  int const Cin_g = p.inChannels / p.groups;
  int const BK = bkOf<T>();
  int const Kpad = (Cin_g + BK - 1) / BK * BK;
  Layout l;
  l.inBytes = p.inputNHWC ? 0 : alignUp(size_t(p.batch) * p.inChannels * p.inHeight * p.inWidth * sizeof(T), kAlign);
  size_t const rowBytes = size_t(p.outChannels) * p.kernelH * p.kernelW * Kpad * sizeof(T);
  size_t const packBytes = std::max({rowBytes, fragPackElems<T>(p) * sizeof(T), wgPackElems<T>(p) * sizeof(T)});
  l.wBytes = packW ? alignUp(packBytes, kAlign) : 0;
  // split-K: one fp32 partial output per split, summed in a fixed order by the finalize pass
  l.accBytes = splits > 1 ? alignUp(size_t(splits) * p.batch * p.outChannels * p.outHeight * p.outWidth * sizeof(float), kAlign) : 0;
  l.total = l.inBytes + l.wBytes + l.accBytes;
  return l;
}

int gForcedSplits = 0;    // tuning override for the benchmark (0 = heuristic)
// benchmark switch: 0 = default, 1 = shared-memory tile kernel (dcnMainKernel), 2 = register kernel with 64-channel
// blocks only, 3 = register kernel (the pre-v8 default; no warpgroup kernel), 4 + i = warpgroup kernel in
// configuration kWgConfigs[i] for i < 4 (4 = the v8 one-warpgroup configuration), 8 = 256-channel tiles (cfg 4) on
// every layer with more than 128 output channels per group (by default only where a block's K range is long)
int gVariant = 0;
bool gDisablePDL = false;  // benchmark switch: plain stream-ordered launches (PDL measured ~1 us faster, v6)
bool gNoSumInOut = false;  // benchmark switch: two K splits summed by the finalize pass (fp32 before v27, fp16 v42)
bool gNoHalfCopy = false;  // benchmark switch: TF32 gathers from the fp32 copy as before v30
bool gNoHmma = false;      // benchmark switch: TF32 layers keep v32's K loop (no fp16 MMA, v34)

template <bool kHalfW = false> size_t infoBytes(DCNv2Params const& p) {
  return size_t(p.kernelH) * p.kernelW * p.deformableGroups * kBM * SampleTable<kHalfW>::kRecordBytes;
}
// The warpgroup kernel's table: fp16 keeps its weights as 4 halves.
// (+ 64 bytes after the weights: HMMA's per-warp largest record scales)
template <typename T> size_t wgInfoBytes(DCNv2Params const& p) {
  return infoBytes<std::is_same<T, __half>::value>(p) + 64;
}

// Device properties of the current device on each call, so a process driving several GPUs gets each right, but
// cached per device: they never change, and the plan (made on every enqueue) asks for them a few dozen times (H100,
// bench/host_dcn.py: 0.3-1.5 us less host time per enqueue; docs/kernel.md, "Host time per call"). A failed query is
// not cached (the fallback is returned and asked again next time).
constexpr int kCachedDevices = 64;  // devices per process whose properties and kernel attributes are cached
int deviceAttr(cudaDeviceAttr attr, int fallback) {
  constexpr cudaDeviceAttr kCached[] = {cudaDevAttrMultiProcessorCount, cudaDevAttrComputeCapabilityMajor,
      cudaDevAttrComputeCapabilityMinor, cudaDevAttrMaxSharedMemoryPerBlockOptin,
      cudaDevAttrMaxSharedMemoryPerMultiprocessor};
  constexpr int kSlots = int(sizeof(kCached) / sizeof(kCached[0]));
  static std::atomic<int> cache[kCachedDevices][kSlots];  // value + 1; 0: not asked yet (zero-initialized)
  int dev = 0, v = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return fallback;
  int slot = 0;
  while (slot < kSlots && kCached[slot] != attr) ++slot;
  bool const cached = dev >= 0 && dev < kCachedDevices && slot < kSlots;
  if (cached) {
    int const known = cache[dev][slot].load(std::memory_order_relaxed);
    if (known > 0) return known - 1;
  }
  if (cudaDeviceGetAttribute(&v, attr, dev) != cudaSuccess || v < 0) return fallback;
  if (cached) cache[dev][slot].store(v + 1, std::memory_order_relaxed);
  return v;
}
// Compute capability as 10 * major + minor (0 when no device answers).
int computeCapability() {
  return 10 * deviceAttr(cudaDevAttrComputeCapabilityMajor, 0) + deviceAttr(cudaDevAttrComputeCapabilityMinor, 0);
}
int ccMajor() { return computeCapability() / 10; }

// The warpgroup kernel exists only in sm_90a code, which runs on compute capability 9.0 alone; the build says
// whether it carries sm_90a code (CENTERNET_DCN_SM90A: CMake sets it when CMAKE_CUDA_ARCHITECTURES has 90a).
bool wgmmaAvailable() {
#ifdef CENTERNET_DCN_SM90A
  return computeCapability() == 90;
#else
  return false;
#endif
}

bool pdlSupported() { return ccMajor() >= 9 && !gDisablePDL; }

size_t maxSmemOptin() { return size_t(deviceAttr(cudaDevAttrMaxSharedMemoryPerBlockOptin, 48 * 1024)); }

// A kernel's attributes set only where they differ from what this process last gave that kernel on this device: the
// enqueue asks for the same values call after call, and each cudaFuncSetAttribute is a call into the driver (the
// shared-memory limit: 1.3-3.9 us of host time on H100 hosts, bench/runtime_calls.cu; docs/kernel.md, "Host time per
// call"). Since CUDA 12 the runtime keeps a kernel's attributes per device, for every context on it (checked:
// gpu_check.py's second-context run). Each launcher instantiation launches one kernel and keeps that kernel's slots
// (value + 1 per device, 0: never set); the shared-memory limit only rises (a launch may use less than the limit,
// never more), set and noted under one lock, so the limit is never below what a slot says. `force`: set whatever the
// slots say; `skipped`: set where a set was left out.
struct KernelAttrSlots {
  std::atomic<int> smem[kCachedDevices];
  std::atomic<int> carveout[kCachedDevices];
};
std::mutex gKernelAttrLock;
cudaError_t setKernelAttr(void const* kern, cudaFuncAttribute attr, int value, KernelAttrSlots& slots, bool force,
    bool& skipped) {
  bool const limit = attr == cudaFuncAttributeMaxDynamicSharedMemorySize;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kCachedDevices)
    return cudaFuncSetAttribute(kern, attr, value);  // (untracked)
  std::atomic<int>& slot = (limit ? slots.smem : slots.carveout)[dev];
  int const known = slot.load(std::memory_order_acquire) - 1;
  if (!force && (limit ? known >= value : known == value)) {
    skipped = true;
    return cudaSuccess;
  }
  std::lock_guard<std::mutex> lock(gKernelAttrLock);
  int const target = limit && !force ? std::max(value, slot.load(std::memory_order_relaxed) - 1) : value;
  cudaError_t const e = cudaFuncSetAttribute(kern, attr, target);
  slot.store(e == cudaSuccess ? target + 1 : 0, std::memory_order_release);
  return e;
}

// pdl = false: a plain stream-ordered launch, for the first kernel of a call (its reads before gridDependencyWait,
// the offsets and masks, must not overlap the kernel that wrote them).
// carveout >= 0 (v56): this launch's shared-memory carveout, in percent (a launch attribute, which a CUDA graph keeps
// per kernel node; the function attribute is one value per kernel for every layer). Where the runtime predates the
// attribute, or the driver rejects it, the kernel is launched without it.
template <typename... KArgs, typename... Args>
cudaError_t launchKernelAt(int carveout, bool pdl, void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem,
    cudaStream_t stream, Args const&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (pdl && pdlSupported()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
#if CUDART_VERSION >= 12080
  if (carveout >= 0) {
    attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
    attr[n++].val.sharedMemCarveout = unsigned(carveout);
  }
#endif
  cfg.attrs = attr;
  cfg.numAttrs = n;
  cudaError_t const e = cudaLaunchKernelEx(&cfg, kern, args...);
  if (e == cudaSuccess || carveout < 0) return e;
  (void)cudaGetLastError();  // (a launch error is not sticky)
  return launchKernelAt(-1, pdl, kern, grid, block, smem, stream, args...);
}
template <typename... KArgs, typename... Args>
cudaError_t launchKernel(bool pdl, void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
    Args const&... args) {
  return launchKernelAt(-1, pdl, kern, grid, block, smem, stream, args...);
}
template <typename... KArgs, typename... Args>
cudaError_t launchPDL(void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
    Args const&... args) {
  return launchKernel(true, kern, grid, block, smem, stream, args...);
}
// launchKernel after the kernel's shared-memory limit (where smem is over the default 48 KB) and, carveout >= 0, its
// carveout are set (setKernelAttr, `slots`: the caller's, one kernel's). A launch that fails where a set was left out
// is made once more with both set: the slots may outlive the attributes (a device reset).
// launchCarveout >= 0: the launch's own carveout as well (launchKernelAt), where it differs from the function's.
template <typename... KArgs, typename... Args>
cudaError_t launchWithAttrsAt(KernelAttrSlots& slots, int carveout, int launchCarveout, bool pdl,
    void (*kern)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args const&... args) {
  void const* const k = reinterpret_cast<void const*>(kern);
  for (bool force = false;; force = true) {
    bool skipped = false;
    cudaError_t e = cudaSuccess;
    if (smem > 48 * 1024)
      e = setKernelAttr(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem), slots, force, skipped);
    if (e == cudaSuccess && carveout >= 0)
      e = setKernelAttr(k, cudaFuncAttributePreferredSharedMemoryCarveout, carveout, slots, force, skipped);
    if (e == cudaSuccess) e = launchKernelAt(launchCarveout, pdl, kern, grid, block, smem, stream, args...);
    if (e == cudaSuccess || force || !skipped) return e;
  }
}
template <typename... KArgs, typename... Args>
cudaError_t launchWithAttrs(KernelAttrSlots& slots, int carveout, bool pdl, void (*kern)(KArgs...), dim3 grid,
    dim3 block, size_t smem, cudaStream_t stream, Args const&... args) {
  return launchWithAttrsAt(slots, carveout, -1, pdl, kern, grid, block, smem, stream, args...);
}

template <typename T, int MODE, int VEC, int BN>
cudaError_t launchMain(MainArgs<T> const& args, dim3 grid, size_t smemBytes, cudaStream_t stream) {
  static_assert(tileBytes<T, BN>() <= kMaxTileBytes, "kMaxTileBytes must cover every variant");
  static KernelAttrSlots slots;
  return launchWithAttrs(slots, -1, true, dcnMainKernel<T, MODE, VEC, BN>, grid, dim3(kThreads),
      smemBytes + tileBytes<T, BN>(), stream, args);
}

template <typename T, int MODE, int NT, int MINB>
cudaError_t launchReg(MainArgs<T> const& args, dim3 grid, size_t smemBytes, cudaStream_t stream) {
  static KernelAttrSlots slots;
  return launchWithAttrs(slots, -1, true, dcnRegKernel<T, MODE, NT, MINB>, grid, dim3(kRegThreads),
      smemBytes + regCsBytes<NT>(), stream, args);
}

// Warpgroup-kernel configurations: warpgroups per block (KG), look-ahead steps (AHEAD), resident blocks per SM the
// register cap is set for (MINB). H200, fp16 (docs/kernel.md): 64-channel tile grids of at least one block per SM run
// best as 2 x 2 warpgroups per SM with one step of look-ahead (cfg 1; two steps would need more than the 128
// registers); smaller grids (the split-K layers) and 128-channel tiles as 1 x 2 warpgroups with two (cfg 2;
// 128-channel tiles spill at 128 registers). cfg 0 is the v8 layout (one warpgroup per block): benchmark variant 4,
// and the fallback where a large sampling table (deformable groups x taps) leaves too little shared memory for the
// others. Also measured and dropped: 4 x 1 and 3 x 1 warpgroups (1 block per SM: two waves on 1,64,128,128, and no
// faster elsewhere).
struct WgConfig {
  int kg, ahead, minb, wide, ns = 0;  // ns: the warpgroups split the tile's output channels (dcnWgKernel's NS, v44)
};
// cfg 3 (v11 TF32; v41 fp16, and its MMA for fp32 layers): cfg 2's warps and residency with one 256-byte step of
// look-ahead instead of two 128-byte ones; since v44 its two warpgroups split the output channels, not the steps
// cfg 4 (v28): 256-channel tiles (Cout / groups > 128), the only configuration they take: 128 accumulators per
// thread leave room for one step of look-ahead at one block per SM.
constexpr WgConfig kWgConfigs[] = {{1, 2, 2, 1}, {2, 1, 2, 1}, {2, 2, 1, 1}, {2, 1, 1, 2, 1}, {2, 1, 1, 1}};
constexpr int kWgConfigCount = int(sizeof(kWgConfigs) / sizeof(kWgConfigs[0]));
// Dynamic shared memory of the stages: the B stages' mbarriers where the weight arrives by bulk copy, 1 KB of slack to
// align the stages to the 1024-byte swizzle atom, then one set of stages per warpgroup (NS: one for the block; the
// sampling table follows).
size_t wgTileBytes(int bn, WgConfig c, bool direct) {
  return 1024 + wgBarBytes(c.ahead, direct) + size_t(c.ns ? 1 : c.kg) * wgGroupBytes(bn, c.ahead, c.wide);
}
// A warpgroup block's dynamic shared memory: its stages and the sampling table (an fp32 layer on the fp16 kernel's plan
// keeps T = float's table). The plan, the HMMA plan's fit, launchWg (the caller's table bytes plus wgTileBytes) and the
// prep kernel's carveout all count it so.
template <typename T> size_t wgBlockBytes(DCNv2Params const& p, int bn, WgConfig c, bool direct) {
  return wgTileBytes(bn, c, direct) + wgInfoBytes<T>(p);
}

#ifdef CENTERNET_DCN_SM90A
// The warpgroup kernel's carveout, in percent of an SM's shared memory: `minb` resident blocks of `blockBytes` each (and
// the 1 KB the hardware reserves for each) and `beside` bytes of prep blocks (v56); -1 where the device does not say.
// launchWg and wgPrepCarveout both take it from here: the prep kernel's blocks share an SM with the main kernel's only
// where both launches ask for the same carveout.
int wgCarveout(int minb, size_t blockBytes, size_t beside = 0) {
  int const perSM = deviceAttr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0);
  size_t const bytes = size_t(minb) * (blockBytes + 1024) + beside;
  return perSM > 0 ? int(std::min<size_t>(100, (bytes * 100 + perSM - 1) / perSM)) : -1;
}
template <typename T, int BN, int CFG, bool DIRECT, bool H16 = false, bool HMMA = false>
cudaError_t launchWg(MainArgs<T> const& args, WeightMap<DIRECT> const& wmap, dim3 grid, size_t smemBytes, bool pdl,
    cudaStream_t stream, size_t beside) {
  constexpr WgConfig c = kWgConfigs[CFG];
  static KernelAttrSlots slots;
  smemBytes += wgTileBytes(BN, c, DIRECT);
  // Shared memory only for the resident blocks (MINB, the register limit): the rest of the unified L1 stays cache
  // for the gathers (by default the driver may carve out all of it). beside > 0 (v56): this launch's carveout also
  // holds that many bytes of prep blocks (wgPrepCarveout).
  int const pct = wgCarveout(c.minb, smemBytes);
  int const launchPct = beside > 0 ? wgCarveout(c.minb, smemBytes, beside) : -1;
  constexpr bool kNS = c.ns != 0;
  void (*kernel)(MainArgs<T>, WeightMap<DIRECT>);
  if constexpr (kNS && BN == 128 && HMMA)  // (v49) the fp16-MMA N-split kernel with 128-channel tiles: 160 registers
    kernel = dcnWgKernelCapped<T, BN, c.kg, c.ahead, c.minb, c.wide, DIRECT, H16, HMMA, kNS>;
  else
    kernel = dcnWgKernel<T, BN, c.kg, c.ahead, c.minb, c.wide, DIRECT, H16, HMMA, kNS>;
  return launchWithAttrsAt(slots, pct, launchPct, pdl, kernel, grid, dim3(kWgThreads * c.kg), smemBytes, stream, args,
      wmap);
}

// h16: the gathers read the prep kernel's fp16 copy (TF32 in the configurations where planOf sets Plan::halfRun)
template <typename T, int BN, bool DIRECT>
cudaError_t launchWgConfig(int cfg, MainArgs<T> const& args, WeightMap<DIRECT> const& wmap, dim3 grid,
    size_t smemBytes, bool pdl, cudaStream_t stream, bool h16, bool hmma = false, size_t beside = 0) {
  if (hmma) {
    if constexpr (std::is_same<T, float>::value && !DIRECT && BN != 256) {
      if constexpr (BN == 64)
        if (cfg == 1) return launchWg<T, BN, 1, DIRECT, true, true>(args, wmap, grid, smemBytes, pdl, stream, beside);
      if (cfg == 2) return launchWg<T, BN, 2, DIRECT, true, true>(args, wmap, grid, smemBytes, pdl, stream, beside);
      if (cfg == 3) return launchWg<T, BN, 3, DIRECT, true, true>(args, wmap, grid, smemBytes, pdl, stream, beside);
    }
    return cudaErrorInvalidValue;  // planOf never asks for it
  }
  if (h16) {
    if constexpr (std::is_same<T, float>::value) {
      if constexpr (BN == 64)
        if (cfg == 1) return launchWg<T, BN, 1, DIRECT, true>(args, wmap, grid, smemBytes, pdl, stream, beside);
      if constexpr (BN != 256)
        if (cfg == 3) return launchWg<T, BN, 3, DIRECT, true>(args, wmap, grid, smemBytes, pdl, stream, beside);
    }
    return cudaErrorInvalidValue;  // planOf never asks for it
  }
  switch (cfg) {
    case 0:
      if constexpr (BN != 256) return launchWg<T, BN, 0>(args, wmap, grid, smemBytes, pdl, stream, beside);
      else return cudaErrorInvalidValue;
    case 1:
      if constexpr (BN == 64) return launchWg<T, BN, 1>(args, wmap, grid, smemBytes, pdl, stream, beside);
      else return cudaErrorInvalidValue;  // wgConfigOf never picks it
    case 3:
      if constexpr (BN != 256)  // (fp16 too since v41)
        return launchWg<T, BN, 3>(args, wmap, grid, smemBytes, pdl, stream, beside);
      else return cudaErrorInvalidValue;  // planOf never picks it
    case 4:
      if constexpr (BN == 256) return launchWg<T, BN, 4>(args, wmap, grid, smemBytes, pdl, stream, beside);
      else return cudaErrorInvalidValue;  // planOf picks it for 256-channel tiles only

    default:
      if constexpr (BN != 256) return launchWg<T, BN, 2>(args, wmap, grid, smemBytes, pdl, stream, beside);
      else return cudaErrorInvalidValue;
  }
}

// The tensor map of a channels-last weight for the warpgroup kernel's bulk-copy configurations (v24): the weight as
// [group][Cout_g][tap][Cin_g], boxes of one 128-byte row of channels x 1 tap x bn output channels, 128-byte swizzle
// (the B stage's layout), zeros outside (rows past Cout_g, channels past Cin_g: what the pack would write). The
// encoder is the driver's, found through the runtime (the library links no libcuda).
using TensorMapEncoder = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, cuuint64_t const*,
    cuuint64_t const*, cuuint32_t const*, cuuint32_t const*, CUtensorMapInterleave, CUtensorMapSwizzle,
    CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
TensorMapEncoder tensorMapEncoder() {
  static TensorMapEncoder const encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
    cudaError_t const e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
        &found);
#else
    cudaError_t const e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &found);
#endif
    return e == cudaSuccess && found == cudaDriverEntryPointSuccess ? reinterpret_cast<TensorMapEncoder>(fn) : nullptr;
  }();
  return encode;
}

template <typename T> cudaError_t weightTensorMap(Geometry const& g, int bn, T const* weight, CUtensorMap* map) {
  TensorMapEncoder const encode = tensorMapEncoder();
  if (encode == nullptr) return cudaErrorNotSupported;  // a driver older than CUDA 12 (it could not run sm_90a)
  constexpr cuuint32_t kE = sizeof(T);
  cuuint64_t const dims[4] = {cuuint64_t(g.Cin_g), cuuint64_t(g.KK), cuuint64_t(g.Cout_g), cuuint64_t(g.groups)};
  cuuint64_t const strides[3] = {cuuint64_t(g.Cin_g) * kE, cuuint64_t(g.KK) * g.Cin_g * kE,
                                 cuuint64_t(g.Cout_g) * g.KK * g.Cin_g * kE};  // bytes, dims 1..3
  cuuint32_t const box[4] = {cuuint32_t(kWgRowBytes / kE), 1, cuuint32_t(bn), 1};
  cuuint32_t const unit[4] = {1, 1, 1, 1};
  CUresult const r = encode(map, std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                                : CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
      4, const_cast<T*>(weight), dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}
#endif

// Configuration for a tile width and tile-grid size (blocks before split-K); benchmark variants 4 + i force
// configuration i (cfg 1 only exists for 64-channel tiles).
// cfg 3 only where wideOk (channels a multiple of the 256-byte step; TF32 until v41, fp16 and its MMA for fp32 layers
// since, H100: 2-6 % on five of the eight benchmark layers, docs/kernel.md "v41"); by default on every layer that would
// take cfg 2: the 64-channel ones since v11 (H100: 1,128,64,64->64 16.7 -> 15.8 us, 1,256,32,32->64 13.3 -> 12.5),
// the 128-channel ones since v26 (H100, 10 layers x 4 layouts side by side: 0.6-7 % faster on all 40, e.g.
// 1,128,64,64->128 19.2 -> 18.7, 1,256,48,48->256 42.4 -> 40.0; v11 had found them slower, before the weight stages
// came by bulk copy). Not where a 64-channel tile grid fills the GPU (cfg 1).
int wgConfigOf(int bn, long blocks, int smCount, bool wideOk) {
  int const cfg = gVariant >= 4 && gVariant < 4 + kWgConfigCount - 1 ? gVariant - 4  // (cfg 4: 256-channel tiles)
                  : bn == 64 && blocks >= smCount                 ? 1
                  : wideOk                                        ? 3
                                                                  : 2;
  return (cfg == 1 && bn != 64) || (cfg == 3 && !wideOk) ? 2 : cfg;
}

// Everything the launch decides from the parameters and the device: geometry, kernel variant, grid, K splits.
// The workspace size comes from the same plan, so a split-K layer always has room for its per-split partials.
struct Plan {
  Geometry g;
  dim3 grid;
  bool vec, tf32, useReg, useWg, large;
  bool directW;  // the warpgroup kernel reads a channels-last weight as it lies (no pack)
  int regNT, bn, wgCfg;
  int halfRun;    // TF32 from an fp16 copy of the input: 0 = no, else its permuted channel runs (cfg 3: 64, cfg 1: 32)
  bool hmma;      // (v34) fp32 on the fp16 kernel's plan: fp16 copy in natural order (halfRun 8), fp16 weight pack
  int perSM;      // resident blocks per SM of the chosen kernel
  int maxSplits;  // the most K splits the heuristic gives any shape of this layer
};

void setSplits(Plan& pl, int splits) {
  Geometry& g = pl.g;
  splits = std::max(1, std::min(splits, g.nChunks));
  g.chunksPerSplit = (g.nChunks + splits - 1) / splits;
  g.splits = (g.nChunks + g.chunksPerSplit - 1) / g.chunksPerSplit;
  pl.grid.z = g.splits;
}

// Exactly two K splits: both add into the output (fp32 v27, fp16 v42), which the prep kernel zeroes in 16-byte vectors
// (forwardT also needs the output 16-byte aligned). fp16 adds pairs of halves as aligned 4-byte words, NCHW pixel pairs
// (addHalfPairs: an even plane width) or channels-last 4-channel vectors (output channels per group a multiple of 4),
// elsewhere it keeps the finalize pass (2-byte atomics cost more than it, docs/kernel.md "v42"); both conditions for
// either layout, so that a channels-last output keeps the NCHW call's bits (gpu_check.py, the plugin harness).
template <typename T> bool sumsInOutput(Plan const& pl) {
  Geometry const& g = pl.g;
  bool const words = sizeof(T) == 4 || (g.Wo % 2 == 0 && g.Cout_g % 4 == 0);
  return g.splits == 2 && !gNoSumInOut && words && (size_t(g.N) * g.Cout * g.HoWo * sizeof(T)) % 16 == 0;
}

// inputAligned: the input is 16-byte aligned, as the prep kernel's 16-byte transpose, and so the fp16 copy, need
// (workspace sizing and the plan text assume it; forwardT passes what it gets).
template <typename T> Plan planOf(DCNv2Params const& p, bool inputAligned = true) {
  Plan pl;
  pl.hmma = false;
  Geometry& g = pl.g;
  g.N = p.batch; g.C = p.inChannels; g.H = p.inHeight; g.W = p.inWidth; g.Cout = p.outChannels;
  g.Ho = p.outHeight; g.Wo = p.outWidth; g.kh = p.kernelH; g.kw = p.kernelW; g.sh = p.strideH; g.sw = p.strideW;
  g.ph = p.padH; g.pw = p.padW; g.dh = p.dilationH; g.dw = p.dilationW; g.groups = p.groups;
  g.dg = p.deformableGroups;
  g.Cin_g = g.C / g.groups;
  g.Cout_g = g.Cout / g.groups;
  g.Cdg = g.C / g.dg;
  g.KK = g.kh * g.kw;
  g.HoWo = g.Ho * g.Wo;
  g.M = g.N * g.HoWo;
  g.outNHWC = p.outputNHWC;
  g.wKRSC = p.weightNHWC;
  g.sumInOut = 0;  // (forwardT decides, from the output it gets)
  int const BK = bkOf<T>();
  g.chunksPerTap = (g.Cin_g + BK - 1) / BK;
  g.Kpad = g.chunksPerTap * BK;
  g.nChunks = g.KK * g.chunksPerTap;
  constexpr int VEC = Traits<T>::kVec;
  bool const vec = pl.vec = (g.Cin_g % VEC == 0) && (g.Cdg % VEC == 0);
  bool const tf32 = pl.tf32 = p.allowTF32 && ccMajor() >= 8;  // TF32 tensor cores exist from sm_80 on
  bool const mma = std::is_same<T, __half>::value || tf32;
  // 128-channel tiles need more shared memory than pre-Ampere cards give a block.
  bool const fitsLarge = kMaxTileBytes + infoBytes(p) <= maxSmemOptin();
  // Register-fragment kernel for the tensor-core paths with 16-byte vectors (sm_80+); 128 output channels per
  // block when the group has more than 64.
  bool const useReg = pl.useReg = vec && mma && ccMajor() >= 8 && gVariant != 1;
  int const regNT = pl.regNT = (g.Cout_g > 64 && gVariant != 2) ? 16 : 8;  // variant 2 (benchmark): 64-channel blocks
  // Warpgroup kernel (sm_90a) for the same paths, 128 output channels per block when the group has more than 64
  // (256 where it has more than 128 and a block's K range is long, below).
  int const smCount = deviceAttr(cudaDevAttrMultiProcessorCount, 132);
  auto wgBlocksOf = [&](int bnTile) {
    return long(g.N) * ((g.Ho + kTH - 1) / kTH) * ((g.Wo + kTW - 1) / kTW) * g.groups *
           ((g.Cout_g + bnTile - 1) / bnTile);
  };
  // 256-channel tiles (v28, cfg 4): each gathered sample feeds twice the output channels, at the price of a 64 KB C
  // tile (epilogue, split-K partials) and twice the splits. H100, side by side on 9 layers with Cout 256 (fp16 and
  // TF32, NCHW and channels-last): faster where a block of the 128-channel plan has a long K range (1,256,48,48->256
  // TF32 40.5 -> 26.2 us, fp16 24.0 -> 18.6; 1,2048,24,24->256 TF32 -19 %), slower where it is short (1,512,16,16->256
  // fp16 +9 %, TF32 +4 %). So: where that plan's blocks (one per SM, its split heuristic) would each take at least
  // 640 (TF32) / 2048 (fp16) channel-taps of K; benchmark variant 8 forces them on every Cout / groups > 128 layer.
  auto longK128 = [&] {
    long const splits = std::max(1L, std::min(long(smCount) / wgBlocksOf(128),
                                              long(g.KK) * ((g.Cin_g + 63) / 64) / 4));  // (its maxSplits)
    return long(g.KK) * g.Cin_g / splits >= (std::is_same<T, __half>::value ? 2048 : 640);
  };
  bool wide256 = g.Cout_g > 128 && (gVariant == 8 || (gVariant == 0 && longK128()));
  int wgBN = wide256 ? 256 : g.Cout_g > 64 ? 128 : 64;
  // (a channels-last weight: 72 bytes of mbarriers more where it takes the warpgroup kernel)
  auto wgBlockSmem = [&](int cfg) { return wgBlockBytes<T>(p, wgBN, kWgConfigs[cfg], p.weightNHWC); };
  int constexpr kWideC = 2 * 8 * Traits<T>::kVec;  // channels of a 256-byte step
  // (fp16 since v41: 256-byte steps of 128 halves; H100, docs/kernel.md "v41")
  bool const wideOk = g.Cin_g % kWideC == 0 && (g.dg == 1 || g.Cdg % kWideC == 0);
  if (wide256 && wgBlockSmem(4) > maxSmemOptin()) {  // a large sampling table: 128-channel tiles as before
    wide256 = false;
    wgBN = 128;
  }
  int wgCfg = wide256 ? 4 : wgConfigOf(wgBN, wgBlocksOf(wgBN), smCount, wideOk);
  if (wgCfg == 3 && wgBlockSmem(3) > maxSmemOptin()) wgCfg = 2;  // the wide stages do not fit: one step at a time
  if (wgCfg != 4 && wgBlockSmem(wgCfg) > maxSmemOptin()) wgCfg = 0;  // the smallest stages
  pl.wgCfg = wgCfg;
  bool const useWg = pl.useWg = useReg && (gVariant == 0 || gVariant >= 4) && wgmmaAvailable() &&
                                wgBlockSmem(wgCfg) <= maxSmemOptin();
  // (the shared-memory tile kernel's 128-channel tiles: fp16 only; its TF32 build runs only as benchmark variant 1)
  bool const tileLarge = vec && std::is_same<T, __half>::value && g.Cout_g > 64 && fitsLarge;
  int const bn = pl.bn = useWg ? wgBN : useReg ? regNT * 8 : tileLarge ? kBNLarge : kBNSmall;
  pl.directW = useWg && p.weightNHWC;
  // TF32 from an fp16 copy (v30, dcnWgKernel's H16): where the warpgroup kernel gathers from the prep kernel's copy
  // (not an input read in place) made by the 16-byte transpose (H*W and C multiples of 4, the input 16-byte aligned:
  // transposeArgs' vecTrans), in the configurations it is built for, with channel runs (cfg 3: 64 channels, cfg 1: 32)
  // that the groups and deformable groups do not cut. H100, side by side with v29 (docs/kernel.md "v30"): 1-8 %
  // faster on the TF32 benchmark layers (an unguarded copy: 5-11 %).
  pl.halfRun = 0;
  if (std::is_same<T, float>::value && useWg && tf32 && !p.inputNHWC && !gNoHalfCopy && (g.H * g.W) % 4 == 0 &&
      g.C % 4 == 0 && inputAligned) {
    int const run = wgCfg == 3 ? 64 : wgCfg == 1 ? 32 : 0;
    if (run > 0 && g.Cin_g % run == 0 && (g.dg == 1 || g.Cdg % run == 0)) pl.halfRun = run;
  }
  g.nSteps = useWg ? wgSteps<T>(p) : fragSteps<T>(p);
  g.ntPad = fragNTPad(p);
  if (useReg) g.nChunks = g.KK * g.nSteps / (useWg ? kWgConfigs[wgCfg].wide : 1);
  g.tilesN = (g.Cout_g + bn - 1) / bn;
  g.tilesX = (g.Wo + kTW - 1) / kTW;
  g.tilesY = (g.Ho + kTH - 1) / kTH;
  pl.grid = dim3(g.N * g.tilesY * g.tilesX, g.groups * g.tilesN, 1);
  pl.large = bn == kBNLarge;
  dim3 const& grid = pl.grid;

  // Split K over blocks when the tile grid alone cannot fill the GPU (small images, many channels).
  // about two resident blocks per SM (measured on H200: more splits cost partial-sum traffic, fewer leave SMs idle)
  // (warpgroup kernel: its register cap's blocks per SM, fewer where a large sampling table limits them)
  auto wgPerSM = [&] {
    int const fit = int(size_t(deviceAttr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0)) / (wgBlockSmem(wgCfg) + 1024));
    return std::max(1, std::min(kWgConfigs[wgCfg].minb, fit));
  };
  int const perSM = pl.perSM = useWg  ? wgPerSM()
                               : useReg ? (regNT == 8 ? kRegMinBlocks8 : kRegMinBlocks16)
                                        : 2;
  // at least two K steps per warpgroup (warpgroup kernel) / per K group of warps (register kernel); fp16's 256-byte
  // steps (v41): one (two held the 32 x 32 layers to 4 splits, 8-12 % slower than the 6 they run best at; H100)
  int const wgStepsMin = std::is_same<T, __half>::value && kWgConfigs[wgCfg].wide == 2 ? 1 : 2;
  // (v44's cfg 3, whose warpgroups share every step, keeps v42's limit, so the plans' split counts are v42's)
  pl.maxSplits = std::max(1, g.nChunks / (useWg ? wgStepsMin * kWgConfigs[wgCfg].kg : useReg ? 4 : 3));
  int splits = gForcedSplits;
  if (splits <= 0) {
    long const blocks = long(grid.x) * grid.y;
    // at most one wave: blocks x splits rounded up past the resident blocks put the rest in a second wave that
    // nearly doubles the call (H100: 1,2048,16,16->256 fp16, 8 tiles x 17 splits = 136 > 132 blocks: 32.5 us; 16
    // splits: 22.1)
    splits = std::min(int(long(perSM) * smCount / blocks), pl.maxSplits);
  }
  splits = std::max(1, std::min(splits, g.nChunks));
  setSplits(pl, splits);
  // HMMA (v34): an fp32 layer that takes the fp16 copy runs the fp16 kernel's plan and K loop instead (fp16 A from the
  // copy, the weight packed as fp16, fp16 wgmma; dcnWgKernel's HMMA), where that plan is a configuration it is built
  // for. H100, side by side with v32 (docs/kernel.md "v34"): 3-20 % faster on seven of the eight benchmark layers
  // (the 8-image batch 154.7 -> 124.5 us), 2 % slower on 1,256,32,32->64; the same error against float64.
  if constexpr (std::is_same<T, float>::value) {
    if (!gNoHmma && pl.halfRun && !p.weightNHWC) {
      Plan h = planOf<__half>(p);
      // (its sampling table keeps fp32-sized weight slots, larger than the fp16 kernel's: it must fit as many blocks)
      auto fits = [&] {
        size_t const smem = wgBlockBytes<float>(p, h.bn, kWgConfigs[h.wgCfg], false);
        size_t const perSM = size_t(deviceAttr(cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0)) / (smem + 1024);
        return smem <= maxSmemOptin() && perSM >= size_t(h.perSM);
      };
      if (h.useWg && h.vec && (h.wgCfg == 1 || h.wgCfg == 2 || h.wgCfg == 3) && h.bn != 256 && !h.directW && fits()) {
        h.tf32 = true;
        h.halfRun = 8;
        h.hmma = true;
        h.g.sumInOut = 0;
        return h;
      }
    }
  }
  return pl;
}

// The fused kernel's workspace for a shape. It must grow with the shape: TensorRT sizes it at the profile's smallest
// and largest shapes and hands that to every shape in between, and the plugin cannot learn the size it got. The
// split-K partials are what does not grow by themselves (a smaller plane splits more), so they get room for one wave
// of partial tiles on up to kWorkspaceSMs SMs or the layer's most splits, whichever is less, whatever the shape's
// own split count; forwardT splits less where that is short (a GPU with more SMs).
constexpr long kWorkspaceSMs = 160;
// (pl: planOf<T>(p), made for a 16-byte aligned input)
template <typename T> size_t fusedWorkspaceOf(DCNv2Params const& p, Plan const& pl) {
  Layout const l = layoutOf<T>(p, pl.g.splits, !pl.directW);
  size_t const outBytes = size_t(p.batch) * p.outChannels * p.outHeight * p.outWidth * sizeof(float);
  size_t const wave = size_t(kWorkspaceSMs) * pl.perSM * kBM * pl.bn * sizeof(float);  // one wave of partial tiles
  size_t const acc = pl.maxSplits > 1 ? alignUp(std::min(wave, size_t(pl.maxSplits) * outBytes), kAlign) : 0;
  return l.inBytes + l.wBytes + std::max(l.accBytes, acc);  // (a forced split, benchmark only, may need more)
}
template <typename T> size_t fusedWorkspace(DCNv2Params const& p) { return fusedWorkspaceOf<T>(p, planOf<T>(p)); }

// The prep kernel's transpose part, the same for both algorithms: NCHW -> NHWC into inNHWC, its path and grid
// (regTrans: the register-transpose instantiation); inNHWC == nullptr: the input is NHWC already
// (DCNv2Params::inputNHWC), read in place with no transpose blocks. The caller adds the weight pack (or none:
// packBlocks 0) and launches with launchPrep.
template <typename T> PrepArgs<T> transposeArgs(Geometry const& g, T const* input, T* inNHWC, bool& regTrans) {
  PrepArgs<T> pa = {};
  pa.in = input; pa.inNHWC = inNHWC ? inNHWC : const_cast<T*>(input);
  pa.N = g.N; pa.C = g.C; pa.HW = g.H * g.W; pa.Cout = g.Cout; pa.Cin_g = g.Cin_g; pa.KK = g.KK; pa.Kpad = g.Kpad;
  constexpr int kVE = 16 / int(sizeof(T));
  pa.vecTrans = pa.HW % kVE == 0 && g.C % kVE == 0 && reinterpret_cast<uintptr_t>(input) % 16 == 0;
  // fp16 register transpose where its tiles fill the GPU at least twice (the 8-image batch on an H100: 117.6-118.4 ->
  // 112.2 us); on five of the seven batch-1 layers its 4x larger tiles left SMs idle: up to 0.9 us slower.
  auto setTransTiles = [&](int tileC, int tileHW) {  // the transpose grid for tiles of tileC x tileHW
    pa.transBlocksC = (g.C + tileC - 1) / tileC;
    pa.transBlocksHW = (pa.HW + tileHW - 1) / tileHW;
    pa.transBlocks = g.N * pa.transBlocksC * pa.transBlocksHW;
  };
  setTransTiles(kTransC16, kTransS16);
  regTrans = std::is_same<T, __half>::value && pa.vecTrans &&
             pa.transBlocks >= 2L * deviceAttr(cudaDevAttrMultiProcessorCount, 132);
  if (!regTrans) setTransTiles(pa.vecTrans ? 128 / int(sizeof(T)) : 32, pa.vecTrans ? 64 : 32);
  if (inNHWC == nullptr) pa.transBlocks = 0;
  return pa;
}

// krsc: the weight channels-last (DCNv2Params::weightNHWC), for the pack blocks. The wgmma pack (frag 2) is staged
// through shared memory where its blocks outnumber the transpose's (the 512-channel layers): there the prep kernel
// ends ~1 us sooner (TF32 1,512,16,16->256 6 % faster, H100); staged everywhere it was 1-7 % slower on other layers
// (docs/kernel.md "v51"), so those calls keep the unstaged kernel.
template <typename T> bool prepStaged(PrepArgs<T> const& pa, bool regTrans, bool krsc) {
  return pa.frag == 2 && !regTrans && !krsc && pa.packBlocks > 0 && pa.packBlocks >= pa.transBlocks;
}
// carveout >= 0: the launch's carveout (wgPrepCarveout).
template <typename T>
cudaError_t launchPrep(PrepArgs<T> const& pa, bool regTrans, bool krsc, cudaStream_t stream, int carveout = -1) {
  auto prep = krsc ? dcnPrepKernel<T, false, true> : dcnPrepKernel<T>;
  if constexpr (std::is_same<T, __half>::value)
    if (regTrans) prep = krsc ? dcnPrepKernel<T, true, true> : dcnPrepKernel<T, true>;
  bool const staged = prepStaged(pa, regTrans, krsc);
  if (staged) prep = dcnPrepKernel<T, false, false, true>;
  int const blocks = pa.transBlocks + pa.packBlocks + pa.zeroBlocks;
  if (blocks == 0) return cudaSuccess;  // im2col tactic on an NHWC input: nothing to do
  if (carveout >= 0)
    return launchKernelAt(carveout, false, prep, dim3(blocks), dim3(kPrepThreads), staged ? kPackStageBytes : 0,
        stream, pa);
  prep<<<blocks, kPrepThreads, staged ? kPackStageBytes : 0, stream>>>(pa);
  return cudaGetLastError();
}

// The im2col tactic's plan: images per chunk (the column matrix of a chunk stays within kColBudget, or one image)
// and the workspace (NHWC copy, one chunk's columns, cuBLAS's own).
constexpr size_t kBlasWorkspace = size_t(32) << 20;  // cuBLAS's recommendation for Hopper (its split-K GEMMs need it:
                                                     // 4 MB made 1,2048,16,16->256 fp32 1.6x slower, H100)
constexpr size_t kColBudget = size_t(32) << 20;
struct ColPlan {
  int images;  // per chunk (0: the workspace given holds no image's columns)
  size_t inBytes, colBytes, total;
};
// given = 0: the plan for sizing the workspace; else the plan for a workspace of `given` bytes (as many images per
// chunk as its columns' share holds).
template <typename T> ColPlan colPlanOf(DCNv2Params const& p, size_t given = 0) {
  ColPlan c;
  size_t const perImage = size_t(p.outHeight) * p.outWidth * p.inChannels * p.kernelH * p.kernelW * sizeof(T);
  c.inBytes = p.inputNHWC ? 0 : alignUp(size_t(p.batch) * p.inChannels * p.inHeight * p.inWidth * sizeof(T), kAlign);
  // grows with the shape (see fusedWorkspace): all images, capped at the budget, but at least one image
  c.colBytes = given == 0 ? alignUp(std::min(size_t(p.batch) * perImage, std::max(perImage, kColBudget)), kAlign)
               : given >= c.inBytes + kBlasWorkspace ? given - c.inBytes - kBlasWorkspace
                                                     : 0;
  c.images = int(std::min<size_t>(size_t(p.batch), c.colBytes / perImage));
  c.total = c.inBytes + c.colBytes + kBlasWorkspace;
  return c;
}

// Why the im2col tactic cannot run these params (nullptr: it can). 3 x 3 kernels with 16-byte channel vectors, as
// every CenterNet DCN layer has; the fused kernel covers the rest.
template <typename T> char const* colUnsupported(DCNv2Params const& p) {
#ifndef CENTERNET_DCN_CUBLAS
  (void)p;
  return "DCNv2: the im2col tactic needs cuBLAS headers (cublas_v2.h) at build time; this build has none";
#else
  constexpr int VEC = Traits<T>::kVec;
  if (p.kernelH * p.kernelW != 9) return "DCNv2: the im2col tactic supports 3x3 kernels only";
  if ((p.inChannels / p.groups) % VEC != 0 || (p.inChannels / p.deformableGroups) % VEC != 0)
    return "DCNv2: the im2col tactic needs channels per group a multiple of 8 (fp16) / 4 (fp32)";
  return nullptr;
#endif
}

}  // namespace

#ifdef CENTERNET_DCN_CUBLAS
// cuBLAS loaded at run time: the entry points the tactic calls and one handle.
struct DCNv2Blas {
  cublasHandle_t handle = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) setStream = nullptr;
  decltype(&cublasSetWorkspace_v2) setWorkspace = nullptr;
  // the C entry point (C++ also sees an overload taking the compute type as a cudaDataType_t)
  cublasStatus_t (*gemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, void const*,
      void const*, cudaDataType_t, int, long long, void const*, cudaDataType_t, int, long long, void const*, void*,
      cudaDataType_t, int, long long, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
};

DCNv2Blas* dcnv2BlasCreate(char const** why) {
  static thread_local std::string reason;  // *why points here until this thread's next call
  auto fail = [&](char const* r, DCNv2Blas* b) -> DCNv2Blas* {
    if (why) *why = r;
    dcnv2BlasDestroy(b);
    return nullptr;
  };
  try {
    // the cuBLAS of the CUDA major this library was built with (the ABI its headers describe). Never closed: a
    // library unloaded while the process runs on is a risk for nothing (it stays mapped for the next handle).
    std::string const name = "libcublas.so." + std::to_string(CUDART_VERSION / 1000);
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      reason = "DCNv2: " + name + " not found on the library path (install cuBLAS of CUDA " +
               std::to_string(CUDART_VERSION / 1000) + " or add its folder to LD_LIBRARY_PATH); the im2col tactic "
               "is unavailable";
      return fail(reason.c_str(), nullptr);
    }
    auto* b = new DCNv2Blas;
    auto create = reinterpret_cast<decltype(&cublasCreate_v2)>(dlsym(lib, "cublasCreate_v2"));
    b->destroy = reinterpret_cast<decltype(b->destroy)>(dlsym(lib, "cublasDestroy_v2"));
    b->setStream = reinterpret_cast<decltype(b->setStream)>(dlsym(lib, "cublasSetStream_v2"));
    b->setWorkspace = reinterpret_cast<decltype(b->setWorkspace)>(dlsym(lib, "cublasSetWorkspace_v2"));
    b->gemm = reinterpret_cast<decltype(b->gemm)>(dlsym(lib, "cublasGemmStridedBatchedEx"));
    if (!create || !b->destroy || !b->setStream || !b->setWorkspace || !b->gemm) {
      reason = "DCNv2: " + name + " lacks cublasGemmStridedBatchedEx or cublasSetWorkspace (cuBLAS >= 11 needed)";
      return fail(reason.c_str(), b);
    }
    if (create(&b->handle) != CUBLAS_STATUS_SUCCESS) {
      b->handle = nullptr;
      return fail("DCNv2: cublasCreate failed (no CUDA device, or out of memory)", b);
    }
    return b;
  } catch (...) {  // std::bad_alloc: this is also called from the C ABI, where nothing may throw
    return fail("DCNv2: out of host memory while loading cuBLAS", nullptr);
  }
}

void dcnv2BlasDestroy(DCNv2Blas* b) {
  if (b == nullptr) return;
  if (b->handle) b->destroy(b->handle);
  delete b;
}
#else
struct DCNv2Blas {};
DCNv2Blas* dcnv2BlasCreate(char const** why) {
  if (why) *why = "DCNv2: built without cuBLAS headers (cublas_v2.h); the im2col tactic is unavailable";
  return nullptr;
}
void dcnv2BlasDestroy(DCNv2Blas* b) { delete b; }
#endif

namespace {

template <typename T>
cudaError_t forwardColT(DCNv2Params const& p, Geometry const& g, T const* input, T const* offset, T const* mask,
    T const* weight, T const* bias, T* output, void* workspace, size_t workspaceSize, cudaStream_t stream,
    DCNv2Blas* blas) {
#ifndef CENTERNET_DCN_CUBLAS
  (void)p; (void)g; (void)input; (void)offset; (void)mask; (void)weight; (void)bias; (void)output; (void)workspace;
  (void)workspaceSize; (void)stream; (void)blas;
  return cudaErrorNotSupported;
#else
  ColPlan const cp = colPlanOf<T>(p, workspaceSize);
  if (blas == nullptr || cp.images < 1) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  void* blasWs = ws + cp.inBytes;  // 256-byte aligned, as cuBLAS wants
  T* col = reinterpret_cast<T*>(ws + cp.inBytes + kBlasWorkspace);

  bool regTrans = false;
  // no pack: the GEMM reads the weight as it lies
  PrepArgs<T> pa = transposeArgs<T>(g, input, p.inputNHWC ? nullptr : reinterpret_cast<T*>(ws), regTrans);
  cudaError_t e = launchPrep(pa, regTrans, false, stream);
  if (e != cudaSuccess) return e;

  // SetWorkspace after SetStream, which resets it; the workspace keeps cuBLAS from allocating (graph capture)
  if (blas->setStream(blas->handle, stream) != CUBLAS_STATUS_SUCCESS ||
      blas->setWorkspace(blas->handle, blasWs, kBlasWorkspace) != CUBLAS_STATUS_SUCCESS)
    return cudaErrorUnknown;
  bool const half = std::is_same<T, __half>::value;
  cudaDataType_t const dt = half ? CUDA_R_16F : CUDA_R_32F;
  // fp32: TF32 tensor cores exactly where the fused kernel uses them (allowTF32), else plain fp32 arithmetic
  cublasComputeType_t const ct = !half && p.allowTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  float const alpha = 1.f, beta = bias ? 1.f : 0.f;
  int const K = g.Cin_g * 9, lda = g.C * 9;
  for (int n0 = 0; n0 < g.N; n0 += cp.images) {
    int const nc = std::min(cp.images, g.N - n0);
    ColArgs<T> ca;
    ca.inNHWC = pa.inNHWC; ca.offset = offset; ca.mask = mask; ca.bias = bias; ca.col = col; ca.out = output; ca.g = g;
    ca.n0 = n0;
    ca.threads = long(nc) * g.HoWo * (g.C / Traits<T>::kVec);
    constexpr int kThreadsCol = colThreads<T>();
    ca.colBlocks = int((ca.threads + kThreadsCol - 1) / kThreadsCol);
    int const fillBlocks = bias ? std::min(1024, int((long(nc) * g.Cout * g.HoWo + kThreadsCol - 1) / kThreadsCol)) : 0;
    // after the prep kernel (or the previous chunk's GEMM) with PDL; first in the call (NHWC input) plainly
    bool const afterOurs = pa.transBlocks > 0 || n0 > 0;
    e = launchKernel(afterOurs, dcnIm2colKernel<T, 9>, dim3(ca.colBlocks + fillBlocks), dim3(kThreadsCol), 0, stream,
        ca);
    if (e != cudaSuccess) return e;
    for (int gi = 0; gi < g.groups; ++gi) {
      T const* const w = weight + size_t(gi) * g.Cout_g * K;
      T const* const cols = col + size_t(gi) * K;
      long long const imageOut = (long long)(g.Cout) * g.HoWo;
      // out[n][o][p] (+)= sum_k col[n][p][k] * weight[o][k]: C (HoWo x Cout_g, column-major) = col^T W; channels-last
      // out[n][p][o]: C (Cout_g x HoWo, column-major, ld Cout) = W^T col
      cublasStatus_t const st = g.outNHWC
          ? blas->gemm(blas->handle, CUBLAS_OP_T, CUBLAS_OP_N, g.Cout_g, g.HoWo, K, &alpha, w, dt, K, 0, cols, dt,
                lda, (long long)(g.HoWo) * lda, &beta, output + size_t(n0) * imageOut + size_t(gi) * g.Cout_g, dt,
                g.Cout, imageOut, nc, ct, CUBLAS_GEMM_DEFAULT)
          : blas->gemm(blas->handle, CUBLAS_OP_T, CUBLAS_OP_N, g.HoWo, g.Cout_g, K, &alpha, cols, dt, lda,
                (long long)(g.HoWo) * lda, w, dt, K, 0, &beta,
                output + size_t(n0) * imageOut + size_t(gi) * g.Cout_g * g.HoWo, dt, g.HoWo, imageOut, nc, ct,
                CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS) return cudaErrorUnknown;
    }
  }
  return cudaSuccess;
#endif
}

// (v56) The prep kernel's carveout where the warpgroup kernel follows: the main kernel's own, so that a main block can
// start on an SM that still runs prep blocks (measured: blocks of the two kernels shared an SM only under one
// carveout). H100, TF32 1,256,32,32->128: the main blocks started at 1.2-1.6 us instead of 1.6-2.0, the call 3 %
// faster (docs/kernel.md "v56"). Where the pack is staged (36 KB a prep block more), the main kernel's launch takes
// room for one prep block too (`beside`). Not for 256-channel tiles (1,512,32,32->256 TF32 was 4 % slower) and not
// without the warpgroup kernel (-1: no carveout, as before).
template <typename T>
int wgPrepCarveout(DCNv2Params const& p, Plan const& pl, PrepArgs<T> const& pa, bool regTrans, bool krsc,
    size_t& beside) {
  beside = 0;
#ifdef CENTERNET_DCN_SM90A
  if (!pl.useWg || pl.bn == 256) return -1;
  WgConfig const c = kWgConfigs[pl.wgCfg];
  if (prepStaged(pa, regTrans, krsc)) beside = kPrepTileBytes + kPackStageBytes + 1024;
  return wgCarveout(c.minb, wgBlockBytes<T>(p, pl.bn, c, pl.directW), beside);  // (launchWg's smemBytes)
#else
  (void)p; (void)pl; (void)pa; (void)regTrans; (void)krsc;
  return -1;
#endif
}

template <typename T>
cudaError_t forwardT(DCNv2Params const& p, T const* input, T const* offset, T const* mask, T const* weight,
    T const* bias, T* output, void* workspace, size_t workspaceSize, cudaStream_t stream, DCNv2Algo algo,
    DCNv2Blas* blas) {
  if (workspace == nullptr || !input || !offset || !mask || !weight || !output) return cudaErrorInvalidValue;
  // read in place with the 16-byte vector loads our own NHWC copy gets
  if (p.inputNHWC && reinterpret_cast<uintptr_t>(input) % 16 != 0) return cudaErrorMisalignedAddress;
  // (the warpgroup kernel's 16-byte copies and tensor map; every path asks it, so no layout works on one GPU only)
  if (p.weightNHWC && reinterpret_cast<uintptr_t>(weight) % 16 != 0) return cudaErrorMisalignedAddress;
  bool const inputAligned = reinterpret_cast<uintptr_t>(input) % 16 == 0;
  Plan pl = planOf<T>(p, inputAligned);
  if (workspaceSize == kDCNv2WorkspaceAsPlanned)  // dcnv2WorkspaceSize's size (it plans for an aligned input)
    workspaceSize = algo == DCNv2Algo::kIm2colGemm ? colPlanOf<T>(p).total
                    : inputAligned                 ? fusedWorkspaceOf<T>(p, pl)
                                                   : fusedWorkspace<T>(p);
  if (algo == DCNv2Algo::kIm2colGemm)
    return colUnsupported<T>(p) ? cudaErrorInvalidValue
                                : forwardColT<T>(p, pl.g, input, offset, mask, weight, bias, output, workspace,
                                      workspaceSize, stream, blas);
  // A workspace sized on another GPU (other SM count) may hold fewer partials: split less, never fail.
  while (pl.g.splits > 1 && layoutOf<T>(p, pl.g.splits, !pl.directW).total > workspaceSize)
    setSplits(pl, pl.g.splits - 1);
  Layout const l = layoutOf<T>(p, pl.g.splits, !pl.directW);
  if (workspaceSize < l.total) return cudaErrorInvalidValue;
  int const total = pl.g.N * pl.g.Cout * pl.g.HoWo;
  // two splits: both add into the output (zeroed by the prep kernel), no partials and no finalize pass (fp32 v27, fp16
  // v42: its launch gap and pass were ~2 us of these calls); same bits every run (storeTile)
  pl.g.sumInOut = sumsInOutput<T>(pl) && reinterpret_cast<uintptr_t>(output) % 16 == 0;
  Geometry const& g = pl.g;
  dim3 const grid = pl.grid;
  bool const vec = pl.vec, tf32 = pl.tf32, useReg = pl.useReg;
  int const regNT = pl.regNT;
  constexpr int VEC = Traits<T>::kVec;
  char* ws = static_cast<char*>(workspace);
  T* wpack = reinterpret_cast<T*>(ws + l.inBytes);
  float* acc = reinterpret_cast<float*>(ws + l.inBytes + l.wBytes);


  bool regTrans = false;
  PrepArgs<T> pa = transposeArgs<T>(g, input, p.inputNHWC ? nullptr : reinterpret_cast<T*>(ws), regTrans);
  pa.weight = weight; pa.wpack = wpack;
  pa.frag = pl.useWg ? 2 : useReg ? 1 : 0;
  pa.fragTF32 = useReg && !std::is_same<T, __half>::value;
  pa.groups = g.groups; pa.Cout_g = g.Cout_g; pa.nSteps = g.nSteps; pa.ntPad = g.ntPad;
  pa.tilesN = g.tilesN; pa.bn = pl.bn;
  pa.packElems = fragPackElems<T>(p);
  size_t const packTotal = pl.useWg ? size_t(g.groups) * g.tilesN * pl.bn * g.nSteps * 8 * (pl.hmma ? 2 : 1)
                           : useReg ? pa.packElems / ((16 / sizeof(T)) * g.KK)
                                    : size_t(g.Cout) * g.KK * g.Kpad;
  pa.packBlocks = pl.directW ? 0 : int((packTotal + kPrepThreads - 1) / kPrepThreads);
  pa.weight16 = reinterpret_cast<uintptr_t>(weight) % 16 == 0;
  pa.halfRun = pl.halfRun;
  pa.hmma = pl.hmma;
  if (g.sumInOut) {
    pa.zeroOut = output;
    pa.zeroVecs = int(size_t(total) * sizeof(T) / 16);
    pa.zeroBlocks = (pa.zeroVecs + kZeroVecs * kPrepThreads - 1) / (kZeroVecs * kPrepThreads);
  }
  bool const krsc = p.weightNHWC && pa.packBlocks > 0;
  size_t beside = 0;
  int const prepCarveout = wgPrepCarveout<T>(p, pl, pa, regTrans, krsc, beside);
  cudaError_t e = launchPrep(pa, regTrans, krsc, stream, prepCarveout);
  if (e != cudaSuccess) return e;
  // no prep kernel (input and weight channels-last, no output to zero): the main kernel is the call's first,
  // launched in plain stream order (its sampling table reads the offsets and masks before gridDependencyWait)
  bool const afterPrep = pa.transBlocks + pa.packBlocks + pa.zeroBlocks > 0;

  MainArgs<T> ma;
  ma.inNHWC = pa.inNHWC; ma.offset = offset; ma.mask = mask; ma.wpack = pl.directW ? weight : wpack; ma.bias = bias;
  ma.out = output; ma.acc = acc; ma.g = g;
  ma.inNCHW = input; ma.weight = weight;
  size_t const smem = pl.useWg ? wgInfoBytes<T>(p) : infoBytes(p);  // launchMain adds the variant's tile bytes
  bool const large = pl.large;
  if (pl.useWg) {
#ifdef CENTERNET_DCN_SM90A
    bool const h16 = pl.halfRun != 0, hmma = pl.hmma;
    if (pl.directW) {
      WeightMap<true> wm;  // (only the bulk-copy configurations read it; encoding it is host work; no staged pack)
      e = weightTensorMap<T>(g, pl.bn, weight, &wm.map);
      if (e == cudaSuccess)
        e = pl.bn == 64    ? launchWgConfig<T, 64>(pl.wgCfg, ma, wm, grid, smem, afterPrep, stream, h16)
            : pl.bn == 128 ? launchWgConfig<T, 128>(pl.wgCfg, ma, wm, grid, smem, afterPrep, stream, h16)
                           : launchWgConfig<T, 256>(pl.wgCfg, ma, wm, grid, smem, afterPrep, stream, h16);
    } else {
      WeightMap<false> const none{};
      e = pl.bn == 64    ? launchWgConfig<T, 64>(pl.wgCfg, ma, none, grid, smem, afterPrep, stream, h16, hmma, beside)
          : pl.bn == 128 ? launchWgConfig<T, 128>(pl.wgCfg, ma, none, grid, smem, afterPrep, stream, h16, hmma, beside)
                         : launchWgConfig<T, 256>(pl.wgCfg, ma, none, grid, smem, afterPrep, stream, h16, hmma, beside);
    }
#endif
  } else if (useReg) {
    constexpr int kMode = std::is_same<T, __half>::value ? kModeHalf : kModeTF32;
    e = regNT == 8 ? launchReg<T, kMode, 8, kRegMinBlocks8>(ma, grid, smem, stream)
                   : launchReg<T, kMode, 16, kRegMinBlocks16>(ma, grid, smem, stream);
  } else if constexpr (std::is_same<T, __half>::value) {
    e = !vec  ? launchMain<T, kModeHalf, 1, kBNSmall>(ma, grid, smem, stream)
        : large ? launchMain<T, kModeHalf, VEC, kBNLarge>(ma, grid, smem, stream)
                : launchMain<T, kModeHalf, VEC, kBNSmall>(ma, grid, smem, stream);
  } else {
    if (tf32)
      e = vec ? launchMain<T, kModeTF32, VEC, kBNSmall>(ma, grid, smem, stream)
              : launchMain<T, kModeTF32, 1, kBNSmall>(ma, grid, smem, stream);
    else
      e = vec ? launchMain<T, kModeFFMA, VEC, kBNSmall>(ma, grid, smem, stream)
              : launchMain<T, kModeFFMA, 1, kBNSmall>(ma, grid, smem, stream);
  }
  if (e != cudaSuccess) return e;

  if (endsWithFinalize(g)) {
    int const vec4 =
        (g.outNHWC ? g.Cout : g.HoWo) % 4 == 0 && reinterpret_cast<uintptr_t>(output) % (4 * sizeof(T)) == 0;
    int const blocks = std::min((vec4 ? total / 4 : total) / 256 + 1, 8192);
    e = launchPDL(g.splits > 4 ? dcnFinalizeKernel<T, 16> : dcnFinalizeKernel<T, 1>, dim3(blocks), dim3(256), 0,
        stream, acc, bias, output, total, g.Cout, g.HoWo, g.splits, vec4, g.outNHWC);
  }
  return e;
}

constexpr size_t kMaxSmem = 200 * 1024;

}  // namespace

char const* dcnv2CheckSupported(DCNv2Params const& p, DCNv2DataType type) {
  if (type != DCNv2DataType::kFLOAT && type != DCNv2DataType::kHALF) return "DCNv2: data type must be fp32 or fp16";
  if (p.batch < 1 || p.inChannels < 1 || p.inHeight < 1 || p.inWidth < 1 || p.outChannels < 1)
    return "DCNv2: batch, channels and input height/width must be positive";
  if (p.kernelH < 1 || p.kernelW < 1) return "DCNv2: kernel size must be positive";
  if (p.strideH < 1 || p.strideW < 1) return "DCNv2: stride must be >= 1";
  if (p.dilationH < 1 || p.dilationW < 1) return "DCNv2: dilation must be >= 1";
  if (p.padH < 0 || p.padW < 0) return "DCNv2: padding must be >= 0";
  if (p.groups < 1 || p.deformableGroups < 1) return "DCNv2: groups and deformable_group must be >= 1";
  if (p.inChannels % p.groups != 0 || p.outChannels % p.groups != 0)
    return "DCNv2: input and output channels must be divisible by groups";
  if (p.inChannels % p.deformableGroups != 0) return "DCNv2: input channels must be divisible by deformable_group";
  if (p.outHeight != dcnv2OutSize(p.inHeight, p.kernelH, p.strideH, p.padH, p.dilationH) ||
      p.outWidth != dcnv2OutSize(p.inWidth, p.kernelW, p.strideW, p.padW, p.dilationW) || p.outHeight < 1 ||
      p.outWidth < 1)
    return "DCNv2: output height/width do not match (in + 2*pad - dilation*(k-1) - 1) / stride + 1";
  if (kMaxTileBytes + infoBytes(p) > kMaxSmem)
    return "DCNv2: kernel_h * kernel_w * deformable_group too large (shared-memory sampling table exceeds 200 KB)";
  double const inElems = double(p.batch) * p.inChannels * p.inHeight * p.inWidth;
  double const outElems = double(p.batch) * p.outChannels * p.outHeight * p.outWidth;
  double const offElems = double(p.batch) * 2 * p.deformableGroups * p.kernelH * p.kernelW * p.outHeight * p.outWidth;
  // packed weights (either layout, padded) are indexed with 32-bit math
  double const packElems = 2.0 * std::max(double(p.outChannels) + 8 * kFragNTPad * p.groups, 128.0) *
                           p.kernelH * p.kernelW * (double(p.inChannels) / p.groups + 64);
  if (inElems >= 2147483647.0 || outElems >= 2147483647.0 || offElems >= 2147483647.0 || packElems >= 2147483647.0)
    return "DCNv2: tensors with 2^31 or more elements are not supported";
  return nullptr;
}

char const* dcnv2AlgoUnsupported(DCNv2Params const& p, DCNv2DataType type, DCNv2Algo algo) {
  if (char const* why = dcnv2CheckSupported(p, type)) return why;
  if (algo == DCNv2Algo::kFused) return nullptr;
  if (algo != DCNv2Algo::kIm2colGemm) return "DCNv2: unknown algorithm";
  return type == DCNv2DataType::kHALF ? colUnsupported<__half>(p) : colUnsupported<float>(p);
}

size_t dcnv2WorkspaceSize(DCNv2Params const& p, DCNv2DataType type, DCNv2Algo algo) {
  if (dcnv2AlgoUnsupported(p, type, algo) != nullptr) return 0;
  if (algo == DCNv2Algo::kIm2colGemm)
    return type == DCNv2DataType::kHALF ? colPlanOf<__half>(p).total : colPlanOf<float>(p).total;
  return type == DCNv2DataType::kHALF ? fusedWorkspace<__half>(p) : fusedWorkspace<float>(p);
}

cudaError_t dcnv2Forward(DCNv2Params const& p, DCNv2DataType type, void const* input, void const* offset,
    void const* mask, void const* weight, void const* bias, void* output, void* workspace, size_t workspaceSize,
    cudaStream_t stream, DCNv2Algo algo, DCNv2Blas* blas) {
  if (dcnv2AlgoUnsupported(p, type, algo) != nullptr) return cudaErrorInvalidValue;
  if (type == DCNv2DataType::kHALF)
    return forwardT<__half>(p, static_cast<__half const*>(input), static_cast<__half const*>(offset),
        static_cast<__half const*>(mask), static_cast<__half const*>(weight), static_cast<__half const*>(bias),
        static_cast<__half*>(output), workspace, workspaceSize, stream, algo, blas);
  return forwardT<float>(p, static_cast<float const*>(input), static_cast<float const*>(offset),
      static_cast<float const*>(mask), static_cast<float const*>(weight), static_cast<float const*>(bias),
      static_cast<float*>(output), workspace, workspaceSize, stream, algo, blas);
}

void dcnv2SetForcedSplits(int splits) { gForcedSplits = splits; }
void dcnv2SetDisablePDL(bool disable) { gDisablePDL = disable; }
void dcnv2SetNoSumInOutput(bool off) { gNoSumInOut = off; }
void dcnv2SetKernelVariant(int variant) { gVariant = variant; }
void dcnv2SetNoHalfCopy(bool off) { gNoHalfCopy = off; }
void dcnv2SetNoHmma(bool off) { gNoHmma = off; }

// The fused path's launch plan for these params on this device, in words (benchmark and check output), for 16-byte
// aligned tensors: forwardT plans a misaligned input with the fp32 copy (no Plan::halfRun, Plan::hmma), and a
// misaligned fp32 output with the finalize pass instead of two splits added in it.
std::string dcnv2PlanText(DCNv2Params const& p, DCNv2DataType type) {
  if (dcnv2CheckSupported(p, type) != nullptr) return "unsupported";
  Plan const pl = type == DCNv2DataType::kHALF ? planOf<__half>(p) : planOf<float>(p);
  std::string const kernel = pl.useWg ? "warpgroup cfg " + std::to_string(pl.wgCfg) : pl.useReg ? "register" : "tile";
  return kernel + ", " + std::to_string(pl.bn) + "-channel tiles, " + std::to_string(pl.perSM) + " per SM, " +
         std::to_string(long(pl.grid.x) * pl.grid.y) + " tiles x " + std::to_string(pl.g.nChunks) + " K steps, " +
         std::to_string(pl.g.splits) + " split(s)" +
         ((type == DCNv2DataType::kHALF ? sumsInOutput<__half>(pl) : sumsInOutput<float>(pl)) ? " added in the output"
                                                                                              : "") +
         (pl.hmma ? ", fp16 MMA from an fp16 copy" : pl.halfRun ? ", gathers from an fp16 copy" : "");
}

}  // namespace centernet_trt

namespace {
centernet_trt::DCNv2Algo gAbiAlgo = centernet_trt::DCNv2Algo::kFused;  // the C ABI's algorithm (set_algo)
centernet_trt::DCNv2Blas* gAbiBlas = nullptr;                          // loaded on first use, kept for the process

centernet_trt::DCNv2Params makeParams(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int inputNHWC, int outputNHWC,
    int weightNHWC) {
  return centernet_trt::DCNv2Params{batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, kernelH,
      kernelW, strideH, strideW, padH, padW, dilationH, dilationW, groups, deformableGroups, allowTF32 != 0,
      inputNHWC != 0, outputNHWC != 0, weightNHWC != 0};
}
}  // namespace

#define CENTERNET_DCN_FLAT_ARGS                                                                                     \
  batch, inChannels, inHeight, inWidth, outChannels, outHeight, outWidth, kernelH, kernelW, strideH, strideW, padH, \
      padW, dilationH, dilationW, groups, deformableGroups, allowTF32, inputNHWC, outputNHWC, weightNHWC

extern "C" {
int centernet_dcnv2_forward(int batch, int inChannels, int inHeight, int inWidth, int outChannels, int outHeight,
    int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW, int dilationH,
    int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC, int outputNHWC,
    int weightNHWC, void const* input,
    void const* offset, void const* mask, void const* weight, void const* bias, void* output, void* workspace,
    size_t workspaceSize, void* stream) {
  return int(centernet_trt::dcnv2Forward(makeParams(CENTERNET_DCN_FLAT_ARGS),
      static_cast<centernet_trt::DCNv2DataType>(dtype), input, offset, mask, weight, bias, output, workspace,
      workspaceSize, static_cast<cudaStream_t>(stream), gAbiAlgo, gAbiBlas));
}

size_t centernet_dcnv2_workspace_as_planned(void) { return centernet_trt::kDCNv2WorkspaceAsPlanned; }

size_t centernet_dcnv2_workspace_size(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC) {
  return centernet_trt::dcnv2WorkspaceSize(
      makeParams(CENTERNET_DCN_FLAT_ARGS), static_cast<centernet_trt::DCNv2DataType>(dtype), gAbiAlgo);
}

char const* centernet_dcnv2_check_supported(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC) {
  return centernet_trt::dcnv2AlgoUnsupported(
      makeParams(CENTERNET_DCN_FLAT_ARGS), static_cast<centernet_trt::DCNv2DataType>(dtype), gAbiAlgo);
}

void centernet_dcnv2_set_splits(int splits) { centernet_trt::dcnv2SetForcedSplits(splits); }
void centernet_dcnv2_set_pdl(int enable) { centernet_trt::dcnv2SetDisablePDL(enable == 0); }
void centernet_dcnv2_set_sum_in_output(int enable) { centernet_trt::dcnv2SetNoSumInOutput(enable == 0); }
void centernet_dcnv2_set_variant(int variant) { centernet_trt::dcnv2SetKernelVariant(variant); }
void centernet_dcnv2_set_half_copy(int enable) { centernet_trt::dcnv2SetNoHalfCopy(enable == 0); }
void centernet_dcnv2_set_hmma(int enable) { centernet_trt::dcnv2SetNoHmma(enable == 0); }

char const* centernet_dcnv2_plan(int batch, int inChannels, int inHeight, int inWidth, int outChannels,
    int outHeight, int outWidth, int kernelH, int kernelW, int strideH, int strideW, int padH, int padW,
    int dilationH, int dilationW, int groups, int deformableGroups, int allowTF32, int dtype, int inputNHWC,
    int outputNHWC, int weightNHWC) {
  thread_local std::string text;  // valid until this thread's next call
  text = centernet_trt::dcnv2PlanText(
      makeParams(CENTERNET_DCN_FLAT_ARGS), static_cast<centernet_trt::DCNv2DataType>(dtype));
  return text.c_str();
}

char const* centernet_dcnv2_set_algo(int algo) {
  if (algo != 0 && algo != 1) return "DCNv2: algorithm must be 0 (fused) or 1 (im2col + cuBLAS)";
  if (algo == 1 && gAbiBlas == nullptr) {
    char const* why = nullptr;
    gAbiBlas = centernet_trt::dcnv2BlasCreate(&why);
    if (gAbiBlas == nullptr) return why;
  }
  gAbiAlgo = static_cast<centernet_trt::DCNv2Algo>(algo);
  return nullptr;
}
}
