#!/usr/bin/env bash
# One device run: build the DCNv2 kernel as a shared library, check it, benchmark it, trace its kernels, run it inside
# whole networks (with a patched tree), measure the card's launch / latency / L1 floors. Logs go to
# $OUT (or build/).
# Usage (repo root): bash bench/gpu_run.sh [--sweep]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-build/dcn_kernel}"
LIB_DIR=build/dcn_kernel
mkdir -p "$LIB_DIR" "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$OUT/card.txt"
nvcc --version | tail -n 2
nvcc -std=c++17 -O3 -Xptxas -v -DCENTERNET_DCN_SM90A -gencode arch=compute_90a,code=sm_90a -gencode arch=compute_90,code=sm_90 \
  -shared -Xcompiler -fPIC -o "$LIB_DIR/libdcnv2_kernel.so" plugin/dcnv2Kernel.cu 2>"$OUT/ptxas.log" \
  || { cat "$OUT/ptxas.log"; exit 1; }
grep -E "registers|spill" "$OUT/ptxas.log" | sort | uniq -c | head -n 20
status=0
# memory checker on a few small cases (out-of-bounds gathers would show here); informational if unavailable
if command -v compute-sanitizer >/dev/null; then
  timeout 150 compute-sanitizer --tool memcheck --print-limit 20 python3 bench/gpu_check.py --quick \
    >"$OUT/sanitizer.log" 2>&1 || status=1
  tail -n 4 "$OUT/sanitizer.log"
fi
python3 bench/gpu_check.py 2>&1 | tee "$OUT/check.log" || status=1
rm -f "$OUT/rates.txt"
python3 bench/bench_dcn.py --rates-out "$OUT/rates.txt" "$@" 2>&1 | tee "$OUT/bench.log" || status=1
python3 bench/trace_dcn.py 2>&1 | grep -v -i "warn" | tee "$OUT/trace.log" || status=1
# the kernel inside whole networks, where a patched tree exists (`make patch`; CENTERNET_TREE overrides the place)
if [ -f "${CENTERNET_TREE:-build/CenterNet}/src/lib/models/networks/dcn/__init__.py" ]; then
  python3 bench/model_dcn.py 2>&1 | grep -v -i "warn" | tee "$OUT/model.log" || status=1
else
  echo "bench/model_dcn.py skipped: no patched CenterNet tree (run \`make patch\` first)" | tee "$OUT/model.log"
fi
# what a call costs with no work in it, the SMs' cached-load rate, and the least a call of each layer does, against
# the floors computed from the benchmark's own measured rates (docs/kernel.md, "Where the time goes")
rates=$(cat "$OUT/rates.txt" 2>/dev/null || true)
nvcc -O3 -std=c++17 -arch=sm_90 -o "$LIB_DIR/gpu_floors" bench/gpu_floors.cu \
  && "$LIB_DIR/gpu_floors" ${rates:+--rates "$rates"} 2>&1 | tee "$OUT/floors.log" || status=1
exit $status
