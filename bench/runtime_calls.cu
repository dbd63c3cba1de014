// Host time of the CUDA runtime calls a DCNv2 enqueue makes (docs/kernel.md, "Host time per call"): the device
// queries of the launch plan, the kernel attribute sets, a launch. Microseconds per call, the mean of many calls.
//   nvcc -O2 -o build/runtime_calls bench/runtime_calls.cu && build/runtime_calls
#include <chrono>
#include <cstdio>

#include <cuda_runtime.h>

__global__ void emptyKernel(int* p) {
  if (p) p[threadIdx.x] = 1;
}

template <typename F> double usPerCall(F f, int calls) {
  auto const t = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) f();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count() / calls;
}

int main() {
  if (cudaError_t const e = cudaFree(nullptr); e != cudaSuccess) {
    std::fprintf(stderr, "error: no CUDA device (%s): this program times CUDA runtime calls on a GPU\n",
        cudaGetErrorString(e));
    return 2;
  }
  int dev = 0, v = 0;
  cudaDeviceProp prop{};
  cudaGetDevice(&dev);
  cudaGetDeviceProperties(&prop, dev);
  cudaStream_t stream = nullptr;
  cudaStreamCreate(&stream);
  std::printf("card: %s; us per call\n| runtime call | us |\n|---|---|\n", prop.name);
  std::printf("| cudaGetDevice | %.3f |\n", usPerCall([&] { cudaGetDevice(&dev); }, 200000));
  std::printf("| cudaDeviceGetAttribute (SM count) | %.3f |\n",
      usPerCall([&] { cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev); }, 200000));
  std::printf("| cudaDeviceGetAttribute (opt-in shared memory per block) | %.3f |\n",
      usPerCall([&] { cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev); }, 200000));
  std::printf("| cudaFuncSetAttribute (dynamic shared-memory limit, 100000 bytes) | %.3f |\n",
      usPerCall([&] { cudaFuncSetAttribute(emptyKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100000); },
          20000));
  std::printf("| cudaFuncSetAttribute (carveout, 50 %%) | %.3f |\n",
      usPerCall([&] { cudaFuncSetAttribute(emptyKernel, cudaFuncAttributePreferredSharedMemoryCarveout, 50); },
          20000));
  std::printf("| kernel launch (empty kernel, one block) | %.3f |\n",
      usPerCall([&] { emptyKernel<<<1, 32, 0, stream>>>(nullptr); }, 2000));
  cudaError_t const e = cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
  return e == cudaSuccess ? 0 : 1;
}
