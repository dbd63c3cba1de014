// Floors of a DCNv2 call on this GPU that the FLOP / DRAM-byte floor does not show: what a call costs with no work
// in it (timed the way bench/bench_dcn.py times a call: a CUDA graph of `calls` calls, each replay timed with CUDA
// events, median over replays / calls), and the rate at which an SM's load path delivers cached 16-byte loads, which
// bounds the bilinear gathers (4 corner reads per output pixel, tap and input channel).
//
// A DCNv2 forward on NCHW tensors needs, in order: the offsets/mask and the input read (the input transposed to
// channel-last first, or the gathers are scattered 2-byte loads), the gathers (their addresses depend on the
// offsets), the products, and, where the K dimension is split over blocks to fill the GPU, a reduction after every
// split is done. This program measures the pieces of that chain with empty or trivial kernels:
//   - k dependent empty kernels per call, plain stream order and with programmatic dependent launch (PDL);
//   - one cooperative kernel with s grid-wide barriers (the single-launch alternative to k kernels);
//   - one kernel whose threads each make r dependent global loads that miss in L2 (memory round trips);
//   - L1-resident 16-byte loads over the whole GPU (bytes per second through the SMs' load path), L2-resident ones
//     past L1, and random 128-byte lines as the split-K layers' gathers read them;
//   - per benchmark layer, the least any call of that layer does: one kernel that reads every input byte once and
//     writes every output byte once (no gathers, no products), fastest of a sweep of grid shapes, with and without PDL.
//     With the benchmark's measured rates (--rates, as bench/bench_dcn.py --rates-out writes them) it prints each
//     layer's FLOP / byte floor next to it: where even this call takes more than 3x the floor, no implementation can be
//     within 3x of the floor on this card.
// Usage (GPU): nvcc -O3 -std=c++17 -arch=native -o build/gpu_floors bench/gpu_floors.cu &&
//              build/gpu_floors [calls [reps]] [--rates FP16_TFLOPS,TF32_TFLOPS,FP32_TFLOPS,COPY_GBPS]
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace cg = cooperative_groups;

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));      \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

__global__ void emptyKernel(int* sink) {
  if (sink && threadIdx.x == 0 && blockIdx.x == 0) *sink = 1;  // never taken: sink is null
}

__global__ void emptyPdlKernel(int* sink) {
  asm volatile("griddepcontrol.wait;" ::: "memory");  // what a PDL secondary kernel does before its reads
  asm volatile("griddepcontrol.launch_dependents;");
  if (sink && threadIdx.x == 0 && blockIdx.x == 0) *sink = 1;
}

__global__ void coopKernel(int syncs, int* sink) {
  cg::grid_group grid = cg::this_grid();
  for (int s = 0; s < syncs; ++s) grid.sync();
  if (sink && threadIdx.x == 0 && blockIdx.x == 0) *sink = 1;
}

// r dependent loads per thread through a random cycle over a buffer far larger than L2.
__global__ void chaseKernel(unsigned const* next, int r, unsigned* out) {
  unsigned i = (blockIdx.x * blockDim.x + threadIdx.x) * 7919u;
  for (int k = 0; k < r; ++k) i = __ldcg(next + (i & ((1u << 26) - 1)));
  if (i == 0xFFFFFFFFu) *out = i;  // keeps the chain alive
}

// Every block re-reads its own 32 KiB (L1-resident after the first pass) with 16-byte loads.
constexpr int kL1Bytes = 32 * 1024;
__global__ void l1ReadKernel(uint4 const* buf, int iters, unsigned* out) {
  uint4 const* mine = buf + size_t(blockIdx.x) * (kL1Bytes / 16);
  unsigned acc = 0;
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int k = 0; k < kL1Bytes / 16 / 256; ++k) {
      uint4 const v = __ldg(mine + ((k * 256 + threadIdx.x + it * 32) & (kL1Bytes / 16 - 1)));
      acc ^= v.x + v.y + v.z + v.w;
    }
  }
  if (acc == 0x12345678u) *out = acc;
}

// L2-resident 16-byte loads that skip L1 (ld.global.cg) over a buffer that fits in L2: the L2's own read rate.
constexpr size_t kL2Bytes = size_t(16) << 20;
__global__ void l2ReadKernel(uint4 const* buf, int iters, unsigned* out) {
  size_t const n = kL2Bytes / 16, stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned acc = 0;
  for (int it = 0; it < iters; ++it) {
    uint4 v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = __ldcg(buf + (i + size_t(k) * stride) % n);
#pragma unroll
    for (int k = 0; k < 8; ++k) acc ^= v[k].x + v[k].y + v[k].z + v[k].w;
    i += 8 * stride;
  }
  if (acc == 0x12345678u) *out = acc;
}

// The bilinear gathers of the split-K layers' K loop (1,256,32,32: an fp16 NHWC copy of 512 KiB, 256 channels per
// position), as the warpgroup kernel makes them: one block of 8 warps per SM, each 8 lanes reading one 128-byte line
// of a random position (L1-cacheable, __ldg), 16 lines in flight per thread; the launch gives the block dynamic shared
// memory it never uses, so that the L1 keeps what the main kernel's ~210 KiB of stages and table leave it.
constexpr int kGatherBytes = 512 * 1024;
__global__ void gatherKernel(uint4 const* buf, int iters, unsigned* out) {
  unsigned const lane8 = threadIdx.x & 7u;
  unsigned h = (blockIdx.x * blockDim.x + threadIdx.x) / 8u * 2654435761u + 12345u;  // the same for a line's 8 lanes
  unsigned acc = 0;
  for (int it = 0; it < iters; ++it) {
    uint4 v[16];
#pragma unroll
    for (int k = 0; k < 16; ++k) {
      h = h * 1664525u + 1013904223u;
      v[k] = __ldg(buf + ((h >> 9) % unsigned(kGatherBytes / 128)) * 8u + lane8);
    }
#pragma unroll
    for (int k = 0; k < 16; ++k) acc ^= v[k].x + v[k].y + v[k].z + v[k].w;
  }
  if (acc == 0x12345678u) *out = acc;
}

// The least a DCNv2 call does: read its inputs (input, offsets, mask, weight, bias; here one contiguous buffer, which
// only makes it easier) and write its output, each thread's stores after its own loads (an output depends on the
// inputs). PDL: the kernel launches while the previous call drains and waits for it before reading.
template <bool PDL>
__global__ void minimalCallKernel(uint4 const* in, unsigned nIn, uint4* out, unsigned nOut) {
  if (PDL) {
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
  }
  unsigned const stride = gridDim.x * blockDim.x;
  unsigned const t = blockIdx.x * blockDim.x + threadIdx.x;
  uint4 acc = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll 4
  for (unsigned i = t; i < nIn; i += stride) {
    uint4 const v = __ldg(in + i);
    acc.x ^= v.x, acc.y ^= v.y, acc.z ^= v.z, acc.w ^= v.w;
  }
  for (unsigned i = t; i < nOut; i += stride) out[i] = make_uint4(acc.x ^ i, acc.y, acc.z, acc.w);
}

int* const kNoSink = nullptr;  // the kernels' "write something" branch is never taken

float graphUs(std::function<void(cudaStream_t)> const& call, int calls, int reps) {
  cudaStream_t s;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (int i = 0; i < 3; ++i) call(s);
  CHECK(cudaStreamSynchronize(s));
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < calls; ++i) call(s);
  CHECK(cudaStreamEndCapture(s, &g));
  CHECK(cudaGraphInstantiate(&ge, g, 0));
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < reps + 5; ++i) {
    CHECK(cudaEventRecord(a, s));
    CHECK(cudaGraphLaunch(ge, s));
    CHECK(cudaEventRecord(b, s));
    CHECK(cudaEventSynchronize(b));
    float ms = 0.f;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    if (i >= 5) t.push_back(ms * 1e3f / calls);
  }
  std::sort(t.begin(), t.end());
  CHECK(cudaGraphExecDestroy(ge));
  CHECK(cudaGraphDestroy(g));
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  CHECK(cudaStreamDestroy(s));
  return t[t.size() / 2];
}

// Launches kern<<<blocks, threads, 0, s>>>(args...) with one launch attribute: PDL (the kernel may start while the
// previous one drains), cooperative (all blocks co-resident, grid barriers allowed), or none.
enum class Launch { kPlain, kPdl, kCooperative };
template <typename... Args>
void launch(void (*kern)(Args...), int blocks, int threads, cudaStream_t s, Launch how, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(threads);
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  if (how == Launch::kPdl) {
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
  } else {
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = how == Launch::kPlain ? 0 : 1;
  CHECK(cudaLaunchKernelEx(&cfg, kern, args...));
}

// The benchmark's layers (bench/bench_dcn.py SHAPES): N, C, H, W, Cout; 3x3, stride 1, pad 1.
constexpr int kLayers[][5] = {{1, 64, 128, 128, 64}, {1, 128, 64, 64, 64}, {1, 256, 32, 32, 64}, {1, 128, 64, 64, 128},
    {1, 256, 32, 32, 128}, {1, 512, 16, 16, 256}, {1, 256, 32, 32, 256}, {8, 64, 128, 128, 64}};

// As bench/bench_dcn.py measures them: matrix FLOP/s per precision, copy bytes (read + written) per second.
struct Rates {
  double fp16 = 0, tf32 = 0, fp32 = 0, copy = 0;
  bool given() const { return copy > 0; }
};

// Per layer and element size: the fastest minimal call over grid shapes and launch kinds, and the layer's floor (the
// benchmark's formula) where the rates are given.
void minimalCalls(cudaDeviceProp const& prop, Rates const& r, int calls, int reps) {
  std::printf("\nThe least a call does (one kernel reading each input byte once and writing each output byte once,"
              " fastest of %d-%d blocks x 128-1024 threads, plain and PDL), against the layer's floor = max(FLOPs /"
              " matrix rate, bytes / copy rate)%s:\n", prop.multiProcessorCount / 2, 8 * prop.multiProcessorCount,
              r.given() ? "" : " (no --rates given: floors not printed)");
  std::printf("| N,C,H,W -> Cout | prec | bytes moved | minimal call, us | grid | floor, us | 3x floor, us |"
              " minimal call / floor |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (auto const& L : kLayers) {
    double const n = L[0], c = L[1], h = L[2], w = L[3], cout = L[4];
    double const inElems = n * c * h * w + n * 18 * h * w + n * 9 * h * w + cout * c * 9 + cout;
    double const outElems = n * cout * h * w;
    double const flops = 2.0 * n * h * w * cout * c * 9;
    for (int esz : {2, 4}) {
      unsigned const nIn = unsigned((inElems * esz + 15) / 16), nOut = unsigned((outElems * esz + 15) / 16);
      uint4 *in = nullptr, *out = nullptr;
      CHECK(cudaMalloc(&in, size_t(nIn) * 16));
      CHECK(cudaMalloc(&out, size_t(nOut) * 16));
      CHECK(cudaMemset(in, 1, size_t(nIn) * 16));
      float best = 1e30f;
      int bestBlocks = 0, bestThreads = 0;
      bool bestPdl = false;
      for (int blocks = prop.multiProcessorCount / 2; blocks <= 8 * prop.multiProcessorCount; blocks *= 2)
        for (int threads = 128; threads <= 1024; threads *= 2)
          for (bool pdl : {false, true}) {
            uint4 const* src = in;
            float const t = graphUs([&](cudaStream_t s) {
              if (pdl)
                launch(minimalCallKernel<true>, blocks, threads, s, Launch::kPdl, src, nIn, out, nOut);
              else
                launch(minimalCallKernel<false>, blocks, threads, s, Launch::kPlain, src, nIn, out, nOut);
            }, calls, reps);
            if (t < best) best = t, bestBlocks = blocks, bestThreads = threads, bestPdl = pdl;
          }
      CHECK(cudaFree(in));
      CHECK(cudaFree(out));
      struct Mode {
        char const* name;
        double rate;
      };
      Mode const modes2[] = {{"fp16", r.fp16}}, modes4[] = {{"tf32", r.tf32}, {"fp32", r.fp32}};
      auto const* modes = esz == 2 ? modes2 : modes4;
      int const nModes = esz == 2 ? 1 : 2;
      for (int m = 0; m < nModes; ++m) {
        std::printf("| %d,%d,%d,%d -> %d | %s | %.2f MB | %.2f | %d x %d%s |", L[0], L[1], L[2], L[3], L[4],
            modes[m].name, (nIn + nOut) * 16.0 / 1e6, best, bestBlocks, bestThreads, bestPdl ? ", PDL" : "");
        if (r.given()) {
          double const floorUs = std::max(flops / modes[m].rate, (inElems + outElems) * esz / r.copy) * 1e6;
          std::printf(" %.2f | %.2f | %.1f%s |\n", floorUs, 3 * floorUs, best / floorUs,
              best > 3 * floorUs ? " (above 3x)" : "");
        } else {
          std::printf(" - | - | - |\n");
        }
      }
    }
  }
}

// Read rate of one launch over a buffer of `alloc` bytes (set to 1s) that reads `bytesRead` bytes in all, TB/s:
// `launch(buf, stream)` makes the launch (timed the way graphUs times a call: one launch per replay).
template <typename Launch> double readRate(size_t alloc, double bytesRead, int reps, Launch launch) {
  uint4* buf = nullptr;
  CHECK(cudaMalloc(&buf, alloc));
  CHECK(cudaMemset(buf, 1, alloc));
  float const t = graphUs([&](cudaStream_t s) {
    launch(buf, s);
    CHECK(cudaGetLastError());
  }, 1, reps);
  CHECK(cudaFree(buf));
  return bytesRead / (t * 1e-6) / 1e12;
}

int main(int argc, char** argv) {
  std::vector<char*> pos;
  Rates rates;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--rates" && i + 1 < argc) {
      double f16 = 0, t32 = 0, f32 = 0, bw = 0;
      if (std::sscanf(argv[++i], "%lf,%lf,%lf,%lf", &f16, &t32, &f32, &bw) != 4 || f16 <= 0 || t32 <= 0 || f32 <= 0 ||
          bw <= 0) {
        std::fprintf(stderr, "--rates wants FP16_TFLOPS,TF32_TFLOPS,FP32_TFLOPS,COPY_GBPS (four positive numbers, as "
                             "bench/bench_dcn.py --rates-out writes them), got '%s'\n", argv[i]);
        return 2;
      }
      rates = Rates{f16 * 1e12, t32 * 1e12, f32 * 1e12, bw * 1e9};
    } else {
      pos.push_back(argv[i]);
    }
  }
  int const calls = pos.size() > 0 ? std::atoi(pos[0]) : 20;
  int const reps = pos.size() > 1 ? std::atoi(pos[1]) : 50;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int const blocks = 2 * prop.multiProcessorCount;  // like the DCN kernels: about two blocks per SM
  std::printf("card: %s (%d SMs); median us per call, CUDA graph of %d calls, %d replays; %d blocks x 256 threads\n",
      prop.name, prop.multiProcessorCount, calls, reps, blocks);
  std::printf("| per call | us |\n|---|---|\n");
  for (int k = 1; k <= 3; ++k) {
    float const t = graphUs([&](cudaStream_t s) {
      for (int i = 0; i < k; ++i) launch(emptyKernel, blocks, 256, s, Launch::kPlain, kNoSink);
    }, calls, reps);
    std::printf("| %d dependent empty kernel%s | %.2f |\n", k, k > 1 ? "s" : "", t);
  }
  for (int k = 2; k <= 3; ++k) {
    float const t = graphUs([&](cudaStream_t s) {
      launch(emptyKernel, blocks, 256, s, Launch::kPlain, kNoSink);
      for (int i = 1; i < k; ++i) launch(emptyPdlKernel, blocks, 256, s, Launch::kPdl, kNoSink);
    }, calls, reps);
    std::printf("| %d dependent empty kernels, PDL | %.2f |\n", k, t);
  }
  int coopBlocks = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&coopBlocks, coopKernel, 256, 0));
  coopBlocks = std::min(coopBlocks, 2) * prop.multiProcessorCount;
  for (int syncs = 0; syncs <= 2; ++syncs) {
    float const t = graphUs([&](cudaStream_t s) {
      launch(coopKernel, coopBlocks, 256, s, Launch::kCooperative, syncs, kNoSink);
    }, calls, reps);
    std::printf("| 1 cooperative kernel, %d grid barrier%s | %.2f |\n", syncs, syncs == 1 ? "" : "s", t);
  }
  // random single cycle over 2^26 entries (256 MiB), so every load misses L2
  size_t const n = size_t(1) << 26;
  std::vector<unsigned> perm(n), next(n);
  for (size_t i = 0; i < n; ++i) perm[i] = unsigned(i);
  unsigned long long rng = 88172645463325252ull;
  for (size_t i = n - 1; i > 0; --i) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    std::swap(perm[i], perm[rng % (i + 1)]);
  }
  for (size_t i = 0; i < n; ++i) next[perm[i]] = perm[(i + 1) % n];
  unsigned *dNext = nullptr, *dOut = nullptr;
  CHECK(cudaMalloc(&dNext, n * sizeof(unsigned)));
  CHECK(cudaMalloc(&dOut, sizeof(unsigned)));
  CHECK(cudaMemcpy(dNext, next.data(), n * sizeof(unsigned), cudaMemcpyHostToDevice));
  for (int r : {1, 2, 4}) {
    float const t = graphUs([&](cudaStream_t s) {
      chaseKernel<<<blocks, 256, 0, s>>>(dNext, r, dOut);
      CHECK(cudaGetLastError());
    }, calls, reps);
    std::printf("| 1 kernel, %d dependent DRAM load%s per thread | %.2f |\n", r, r > 1 ? "s" : "", t);
  }
  {
    int const l1Blocks = 4 * prop.multiProcessorCount, iters = 256;
    double const rate = readRate(size_t(l1Blocks) * kL1Bytes, double(l1Blocks) * kL1Bytes * iters, reps,
        [&](uint4 const* buf, cudaStream_t s) { l1ReadKernel<<<l1Blocks, 256, 0, s>>>(buf, iters, dOut); });
    std::printf("| L1-resident 16-byte loads, whole GPU | %.1f TB/s (%.0f bytes per SM per ns) |\n", rate,
        rate * 1e3 / prop.multiProcessorCount);
  }
  {
    int const l2Blocks = 4 * prop.multiProcessorCount, iters = 64;
    double const rate = readRate(kL2Bytes, double(l2Blocks) * 256 * iters * 8 * 16, reps,
        [&](uint4 const* buf, cudaStream_t s) { l2ReadKernel<<<l2Blocks, 256, 0, s>>>(buf, iters, dOut); });
    std::printf("| L2-resident 16-byte loads past L1 (ld.global.cg), whole GPU | %.1f TB/s |\n", rate);
  }
  for (int held : {210 * 1024, 0}) {
    int const gBlocks = prop.multiProcessorCount, iters = 64;
    CHECK(cudaFuncSetAttribute(gatherKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, held));
    CHECK(cudaFuncSetAttribute(gatherKernel, cudaFuncAttributePreferredSharedMemoryCarveout,
        held ? int(std::min<size_t>(100, (size_t(held) + 1024) * 100 / prop.sharedMemPerMultiprocessor + 1)) : 0));
    double const rate = readRate(kGatherBytes, double(gBlocks) * 256 * iters * 16 * 16, reps,
        [&](uint4 const* buf, cudaStream_t s) { gatherKernel<<<gBlocks, 256, held, s>>>(buf, iters, dOut); });
    std::printf("| gathers: random 128-byte lines of a 512 KiB buffer, one block of 8 warps per SM, %s | %.1f TB/s |\n",
        held ? "210 KiB of shared memory held (the split-K layers' K loop)" : "no shared memory (L1 all cache)", rate);
  }
  CHECK(cudaFree(dNext));
  CHECK(cudaFree(dOut));
  minimalCalls(prop, rates, calls, reps);
  return 0;
}
