// Drives libdcnv2_plugin.so through its real IPluginV3 interface, the way TensorRT does, without TensorRT:
// dlopen -> getCreators -> createPlugin(fields) -> capabilities -> output types/shapes (a stand-in IExprBuilder)
// -> supportsFormatCombination -> configurePlugin -> getWorkspaceSize -> onShapeChange -> enqueue on real GPU buffers
// (checked against a float64 CPU reference) -> getFieldsToSerialize -> recreate -> clone -> enqueue again.
// Bad fields and inconsistent shapes must be rejected with a logged message and no crash.
//
// usage: dcnv2_plugin_harness [path/to/libdcnv2_plugin.so] [--interface-only]
// Without a CUDA device it runs the interface checks only and says so. Exit status 0 = every check passed.
#include "NvInferRuntime.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace nvinfer1;

#ifndef DCNV2_PLUGIN_LIBRARY
#define DCNV2_PLUGIN_LIBRARY "libdcnv2_plugin.so"
#endif

namespace
{
// ------------------------------------------------ bookkeeping -------------------------------------------------------
int gPassed = 0;
int gFailed = 0;
int gSkipped = 0;

bool check(bool ok, std::string const& what)
{
    if (ok)
    {
        ++gPassed;
    }
    else
    {
        ++gFailed;
        std::printf("  FAIL: %s\n", what.c_str());
    }
    return ok;
}

#define CUDA_OK(call)                                                                                                  \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            std::printf("  FAIL: CUDA %s at %s:%d: %s\n", #call, __FILE__, __LINE__, cudaGetErrorString(e_));          \
            ++gFailed;                                                                                                 \
            return false;                                                                                              \
        }                                                                                                              \
    } while (0)

// ------------------------------------------------ logger ------------------------------------------------------------
class CaptureLogger : public ILogger
{
public:
    void log(Severity severity, char const* msg) noexcept override
    {
        mMessages.emplace_back(msg ? msg : "");
        if (severity <= Severity::kWARNING && mEcho)
        {
            std::printf("    [plugin log] %s\n", msg ? msg : "");
        }
    }
    size_t mark() const
    {
        return mMessages.size();
    }
    //! True if a message logged after `since` contains every needle.
    bool loggedSince(size_t since, std::vector<std::string> const& needles) const
    {
        for (size_t i = since; i < mMessages.size(); ++i)
        {
            bool all = true;
            for (auto const& n : needles)
            {
                all = all && mMessages[i].find(n) != std::string::npos;
            }
            if (all)
            {
                return true;
            }
        }
        return false;
    }
    std::vector<std::string> mMessages;
    bool mEcho{true};
};

class Finder : public ILoggerFinder
{
public:
    explicit Finder(ILogger* logger)
        : mLogger(logger)
    {
    }
    ILogger* findLogger() override
    {
        return mLogger;
    }

private:
    ILogger* mLogger;
};

CaptureLogger gLogger;

// ------------------------------------------------ a stand-in IExprBuilder -------------------------------------------
// IDimensionExpr/IExprBuilder are thin shells around apiv::VDimensionExpr/VExprBuilder (NvInferImpl.h); TensorRT
// supplies the implementations. These carry a concrete value plus a "constant" flag, so a test can hand the plugin
// dynamic (non-constant) N/H/W and still read the value its formula produced.
class FakeExpr : public IDimensionExpr
{
public:
    FakeExpr(int64_t value, bool constant)
        : mBody(value, constant)
    {
        mImpl = &mBody;
    }
    ~FakeExpr() noexcept override = default;
    int64_t value() const
    {
        return mBody.mValue;
    }

private:
    struct Body : public apiv::VDimensionExpr
    {
        Body(int64_t v, bool c)
            : mValue(v)
            , mConstant(c)
        {
        }
        bool isConstant() const override
        {
            return mConstant;
        }
        int64_t getConstantValue() const override
        {
            return mConstant ? mValue : INT64_MIN;
        }
        bool isSizeTensor() const override
        {
            return false;
        }
        int64_t mValue;
        bool mConstant;
    };
    Body mBody;
};

class FakeExprBuilder : public IExprBuilder
{
public:
    FakeExprBuilder()
        : mBody(this)
    {
        mImpl = &mBody;
    }
    ~FakeExprBuilder() noexcept override = default;

    FakeExpr const* make(int64_t value, bool constant)
    {
        mPool.push_back(std::make_unique<FakeExpr>(value, constant));
        return mPool.back().get();
    }
    int mOperations{0};

private:
    struct Body : public apiv::VExprBuilder
    {
        explicit Body(FakeExprBuilder* owner)
            : mOwner(owner)
        {
        }
        IDimensionExpr const* constant(int64_t value) override
        {
            return mOwner->make(value, true);
        }
        IDimensionExpr const* operation(
            DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override
        {
            auto const* a = dynamic_cast<FakeExpr const*>(&first);
            auto const* b = dynamic_cast<FakeExpr const*>(&second);
            if (a == nullptr || b == nullptr)
            {
                return nullptr;
            }
            ++mOwner->mOperations;
            int64_t const x = a->value();
            int64_t const y = b->value();
            int64_t r = 0;
            switch (op)
            {
            case DimensionOperation::kSUM: r = x + y; break;
            case DimensionOperation::kPROD: r = x * y; break;
            case DimensionOperation::kMAX: r = std::max(x, y); break;
            case DimensionOperation::kMIN: r = std::min(x, y); break;
            case DimensionOperation::kSUB: r = x - y; break;
            case DimensionOperation::kEQUAL: r = x == y; break;
            case DimensionOperation::kLESS: r = x < y; break;
            case DimensionOperation::kFLOOR_DIV:
                if (y == 0)
                {
                    return nullptr;
                }
                r = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
                break;
            case DimensionOperation::kCEIL_DIV:
                if (y == 0)
                {
                    return nullptr;
                }
                r = x / y + ((x % y != 0) && ((x < 0) == (y < 0)));
                break;
            default: return nullptr;
            }
            return mOwner->make(r, a->isConstant() && b->isConstant());
        }
        IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
        {
            return nullptr; // DCNv2 has no size tensors
        }
        FakeExprBuilder* mOwner;
    };
    Body mBody;
    std::vector<std::unique_ptr<FakeExpr>> mPool;
};

// ------------------------------------------------ plugin fields -----------------------------------------------------
struct FieldSpec
{
    std::string name;
    PluginFieldType type{PluginFieldType::kINT32};
    std::vector<int32_t> ints;
    std::vector<float> floats;
};

//! Owns the storage a PluginFieldCollection points into.
struct Fields
{
    explicit Fields(std::vector<FieldSpec> specs)
        : mSpecs(std::move(specs))
    {
        for (auto const& s : mSpecs)
        {
            bool const isFloat = s.type == PluginFieldType::kFLOAT32;
            mFields.emplace_back(s.name.c_str(), isFloat ? static_cast<void const*>(s.floats.data()) : s.ints.data(),
                s.type, static_cast<int32_t>(isFloat ? s.floats.size() : s.ints.size()));
        }
        mFC.nbFields = static_cast<int32_t>(mFields.size());
        mFC.fields = mFields.data();
    }
    //! Deep copy of a collection returned by the plugin (its storage may change later).
    static std::unique_ptr<Fields> copyOf(PluginFieldCollection const& fc)
    {
        std::vector<FieldSpec> specs;
        for (int32_t i = 0; i < fc.nbFields; ++i)
        {
            PluginField const& f = fc.fields[i];
            FieldSpec s{f.name ? f.name : "", f.type, {}, {}};
            if (f.type == PluginFieldType::kINT32)
            {
                auto const* p = static_cast<int32_t const*>(f.data);
                s.ints.assign(p, p + f.length);
            }
            specs.push_back(s);
        }
        return std::make_unique<Fields>(specs);
    }
    std::vector<FieldSpec> mSpecs;
    std::vector<PluginField> mFields;
    PluginFieldCollection mFC{};
};

// ------------------------------------------------ test cases --------------------------------------------------------
struct Shape
{
    int64_t n, h, w;
};

struct Case
{
    std::string name;
    int64_t c, cout, kh, kw;
    int32_t stride[2], pad[2], dil[2];
    int32_t groups, dg;
    DataType type;
    bool strict;                  //!< CENTERNET_DCNV2_STRICT_FP32=1 when the plugin is created
    bool scalarFields;            //!< stride/padding/dilation given as one int each (needs equal H and W values)
    bool dynamic;                 //!< N/H/W are -1 at build time; min/max profile from `shapes`
    std::vector<Shape> shapes;    //!< shapes run through onShapeChange + enqueue
    bool mayBeUnsupported{false}; //!< the kernel may reject it at configurePlugin (then a clear message is required)
};

int64_t outSize(int64_t in, int64_t k, int32_t s, int32_t p, int32_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

Dims dims4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    Dims r{};
    r.nbDims = 4;
    r.d[0] = a;
    r.d[1] = b;
    r.d[2] = c;
    r.d[3] = d;
    return r;
}

Dims dims1(int64_t a)
{
    Dims r{};
    r.nbDims = 1;
    r.d[0] = a;
    return r;
}

//! Input dims in plugin order (input, offset, mask, weight, bias) followed by the output dims.
std::vector<Dims> tensorDims(Case const& c, Shape const& s)
{
    int64_t const ho = outSize(s.h, c.kh, c.stride[0], c.pad[0], c.dil[0]);
    int64_t const wo = outSize(s.w, c.kw, c.stride[1], c.pad[1], c.dil[1]);
    int64_t const taps = c.dg * c.kh * c.kw;
    return {dims4(s.n, c.c, s.h, s.w), dims4(s.n, 2 * taps, ho, wo), dims4(s.n, taps, ho, wo),
        dims4(c.cout, c.c / c.groups, c.kh, c.kw), dims1(c.cout), dims4(s.n, c.cout, ho, wo)};
}

std::vector<FieldSpec> fieldsFor(Case const& c)
{
    auto pair = [&](char const* name, int32_t const* v)
    {
        return c.scalarFields ? FieldSpec{name, PluginFieldType::kINT32, {v[0]}, {}}
                              : FieldSpec{name, PluginFieldType::kINT32, {v[0], v[1]}, {}};
    };
    return {pair("stride", c.stride), pair("padding", c.pad), pair("dilation", c.dil),
        FieldSpec{"groups", PluginFieldType::kINT32, {c.groups}, {}},
        FieldSpec{"deformable_group", PluginFieldType::kINT32, {c.dg}, {}}};
}

size_t volume(Dims const& d)
{
    size_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        v *= static_cast<size_t>(d.d[i]);
    }
    return v;
}

size_t typeSize(DataType t)
{
    return t == DataType::kHALF ? 2 : 4;
}

// ------------------------------------------------ host data + float64 reference -------------------------------------
//! Values as the device sees them: `exact` holds each element after rounding to the tensor type.
struct HostTensor
{
    std::vector<double> exact;
    std::vector<uint8_t> bytes;
};

HostTensor makeTensor(size_t n, DataType type, std::mt19937& rng, std::uniform_real_distribution<float> dist,
    float zeroFraction = 0.f, float farFraction = 0.f)
{
    HostTensor t;
    t.exact.resize(n);
    t.bytes.resize(n * typeSize(type));
    std::uniform_real_distribution<float> coin(0.f, 1.f);
    for (size_t i = 0; i < n; ++i)
    {
        float v = dist(rng);
        float const r = coin(rng);
        if (r < zeroFraction)
        {
            v = std::round(v); // exact grid positions: the bilinear weights' corner cases
        }
        else if (r < zeroFraction + farFraction)
        {
            v *= 12.f; // far outside the image: must sample zeros
        }
        if (type == DataType::kHALF)
        {
            __half const h = __float2half_rn(v);
            t.exact[i] = __half2float(h);
            std::memcpy(t.bytes.data() + 2 * i, &h, 2);
        }
        else
        {
            t.exact[i] = v;
            std::memcpy(t.bytes.data() + 4 * i, &v, 4);
        }
    }
    return t;
}

//! Same sampling as torchvision.ops.deform_conv2d / upstream DCNv2: bilinear, zero outside the image.
double bilinear(double const* plane, int64_t H, int64_t W, double y, double x)
{
    if (y <= -1 || y >= H || x <= -1 || x >= W)
    {
        return 0.0;
    }
    int64_t const y0 = static_cast<int64_t>(std::floor(y));
    int64_t const x0 = static_cast<int64_t>(std::floor(x));
    int64_t const y1 = y0 + 1;
    int64_t const x1 = x0 + 1;
    double const ly = y - y0, lx = x - x0, hy = 1 - ly, hx = 1 - lx;
    auto at = [&](int64_t yy, int64_t xx)
    {
        return (yy >= 0 && yy < H && xx >= 0 && xx < W) ? plane[yy * W + xx] : 0.0;
    };
    return hy * hx * at(y0, x0) + hy * lx * at(y0, x1) + ly * hx * at(y1, x0) + ly * lx * at(y1, x1);
}

std::vector<double> reference(Case const& c, Shape const& s, std::vector<HostTensor> const& t)
{
    int64_t const H = s.h, W = s.w;
    int64_t const Ho = outSize(H, c.kh, c.stride[0], c.pad[0], c.dil[0]);
    int64_t const Wo = outSize(W, c.kw, c.stride[1], c.pad[1], c.dil[1]);
    int64_t const cinG = c.c / c.groups, coutG = c.cout / c.groups, cPerDg = c.c / c.dg, KK = c.kh * c.kw;
    std::vector<double> out(static_cast<size_t>(s.n * c.cout * Ho * Wo));
    std::vector<double> col(static_cast<size_t>(c.c * KK));
    for (int64_t n = 0; n < s.n; ++n)
    {
        for (int64_t ho = 0; ho < Ho; ++ho)
        {
            for (int64_t wo = 0; wo < Wo; ++wo)
            {
                // Modulated samples for every (input channel, tap) at this output position, then the dot products.
                for (int64_t ci = 0; ci < c.c; ++ci)
                {
                    int64_t const g = ci / cPerDg;
                    for (int64_t i = 0; i < c.kh; ++i)
                    {
                        for (int64_t j = 0; j < c.kw; ++j)
                        {
                            int64_t const tap = i * c.kw + j;
                            auto sampleAt = [&](int64_t channel)
                            {
                                return ((n * (2 * c.dg * KK) + channel) * Ho + ho) * Wo + wo;
                            };
                            double const dy = t[1].exact[sampleAt(g * 2 * KK + 2 * tap)];
                            double const dx = t[1].exact[sampleAt(g * 2 * KK + 2 * tap + 1)];
                            double const m = t[2].exact[((n * (c.dg * KK) + g * KK + tap) * Ho + ho) * Wo + wo];
                            double const y = ho * c.stride[0] - c.pad[0] + i * c.dil[0] + dy;
                            double const x = wo * c.stride[1] - c.pad[1] + j * c.dil[1] + dx;
                            col[ci * KK + tap] = m * bilinear(&t[0].exact[(n * c.c + ci) * H * W], H, W, y, x);
                        }
                    }
                }
                for (int64_t co = 0; co < c.cout; ++co)
                {
                    int64_t const g = co / coutG;
                    double acc = t[4].exact[co];
                    double const* w = &t[3].exact[co * cinG * KK];
                    double const* v = &col[g * cinG * KK];
                    for (int64_t k = 0; k < cinG * KK; ++k)
                    {
                        acc += w[k] * v[k];
                    }
                    out[((n * c.cout + co) * Ho + ho) * Wo + wo] = acc;
                }
            }
        }
    }
    return out;
}

std::vector<double> toDouble(std::vector<uint8_t> const& bytes, DataType type)
{
    size_t const n = bytes.size() / typeSize(type);
    std::vector<double> r(n);
    for (size_t i = 0; i < n; ++i)
    {
        if (type == DataType::kHALF)
        {
            __half h;
            std::memcpy(&h, bytes.data() + 2 * i, 2);
            r[i] = __half2float(h);
        }
        else
        {
            float f;
            std::memcpy(&f, bytes.data() + 4 * i, 4);
            r[i] = f;
        }
    }
    return r;
}

// ------------------------------------------------ device buffers ----------------------------------------------------
constexpr size_t kGUARD_BYTES = 4096;
constexpr uint8_t kGUARD = 0xA5;
constexpr uint8_t kPOISON = 0xFF; // all-ones bytes are NaN in fp32 and fp16

struct DeviceBuffers
{
    void* ptr[6]{};
    size_t bytes[6]{};
    ~DeviceBuffers()
    {
        for (void* p : ptr)
        {
            if (p != nullptr)
            {
                cudaFree(p);
            }
        }
    }
};

// ------------------------------------------------ plugin access ------------------------------------------------------
struct Caps
{
    IPluginV3OneCore* core{};
    IPluginV3OneBuild* build{};
    IPluginV3OneRuntime* runtime{};
};

Caps capabilities(IPluginV3* plugin, bool needBuild)
{
    Caps c;
    auto* core = plugin->getCapabilityInterface(PluginCapabilityType::kCORE);
    auto* build = plugin->getCapabilityInterface(PluginCapabilityType::kBUILD);
    auto* runtime = plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME);
    check(core != nullptr && std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0,
        "kCORE capability is IPluginV3OneCore");
    check(runtime != nullptr && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0,
        "kRUNTIME capability is IPluginV3OneRuntime");
    if (needBuild)
    {
        check(build != nullptr && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0,
            "kBUILD capability is IPluginV3OneBuild");
    }
    c.core = static_cast<IPluginV3OneCore*>(core);
    c.build = static_cast<IPluginV3OneBuild*>(build);
    c.runtime = static_cast<IPluginV3OneRuntime*>(runtime);
    return c;
}

std::vector<DynamicPluginTensorDesc> dynamicDescs(Case const& c, DataType type)
{
    Shape lo = c.shapes.front(), hi = c.shapes.front();
    for (auto const& s : c.shapes)
    {
        lo = {std::min(lo.n, s.n), std::min(lo.h, s.h), std::min(lo.w, s.w)};
        hi = {std::max(hi.n, s.n), std::max(hi.h, s.h), std::max(hi.w, s.w)};
    }
    auto const dLo = tensorDims(c, lo);
    auto const dHi = tensorDims(c, hi);
    auto const dOpt = tensorDims(c, c.shapes.front());
    std::vector<DynamicPluginTensorDesc> descs(6);
    for (size_t i = 0; i < 6; ++i)
    {
        descs[i].desc.dims = dOpt[i];
        if (c.dynamic)
        {
            for (int32_t k = 0; k < dOpt[i].nbDims; ++k)
            {
                if (dLo[i].d[k] != dHi[i].d[k])
                {
                    descs[i].desc.dims.d[k] = -1; // a runtime dimension, as TensorRT passes it
                }
            }
        }
        descs[i].desc.type = type;
        descs[i].desc.format = TensorFormat::kLINEAR;
        descs[i].desc.scale = 1.f;
        descs[i].min = dLo[i];
        descs[i].max = dHi[i];
        descs[i].opt = dOpt[i];
    }
    return descs;
}

std::vector<PluginTensorDesc> concreteDescs(Case const& c, Shape const& s, DataType type)
{
    auto const d = tensorDims(c, s);
    std::vector<PluginTensorDesc> descs(6);
    for (size_t i = 0; i < 6; ++i)
    {
        descs[i].dims = d[i];
        descs[i].type = type;
        descs[i].format = TensorFormat::kLINEAR;
        descs[i].scale = 1.f;
    }
    return descs;
}

char const* typeName(DataType t)
{
    return t == DataType::kHALF ? "fp16" : "fp32";
}

// ------------------------------------------------ one enqueue on real buffers ----------------------------------------
struct RunResult
{
    std::vector<uint8_t> output;
    bool ok{false};
};

//! Uploads `host`, poisons the output (plus a guard band after it), enqueues, and reads the output back.
//! A tensor's bytes rearranged between NCHW and channels-last ([N][H][W][C]: kHWC, and kHWC8 where C % 8 == 0);
//! toNHWC false: back from channels-last.
std::vector<uint8_t> relayout(std::vector<uint8_t> const& in, Dims const& d, size_t elem, bool toNHWC)
{
    std::vector<uint8_t> out(in.size());
    int64_t const n = d.d[0], ch = d.d[1], hw = d.d[2] * d.d[3];
    for (int64_t b = 0; b < n; ++b)
        for (int64_t k = 0; k < ch; ++k)
            for (int64_t p = 0; p < hw; ++p)
            {
                size_t const nchw = ((b * ch + k) * hw + p) * elem, nhwc = ((b * hw + p) * ch + k) * elem;
                std::memcpy(&out[toNHWC ? nhwc : nchw], &in[toNHWC ? nchw : nhwc], elem);
            }
    return out;
}

//! inputFormat / outputFormat / weightFormat: the input's, the output's and the weight's formats (their bytes are
//! rearranged to match, so result.output is NCHW either way; offset, mask and bias stay linear).
bool runOnce(IPluginV3OneRuntime* runtime, Case const& c, Shape const& s, std::vector<HostTensor> const& host,
    void* workspace, cudaStream_t stream, RunResult& result, bool captureGraph = false,
    TensorFormat inputFormat = TensorFormat::kLINEAR, TensorFormat outputFormat = TensorFormat::kLINEAR,
    TensorFormat weightFormat = TensorFormat::kLINEAR)
{
    auto descs = concreteDescs(c, s, c.type);
    descs[0].format = inputFormat;
    descs[3].format = weightFormat;
    descs[5].format = outputFormat;
    DeviceBuffers buf;
    for (int i = 0; i < 6; ++i)
    {
        buf.bytes[i] = volume(descs[i].dims) * typeSize(c.type);
        CUDA_OK(cudaMalloc(&buf.ptr[i], buf.bytes[i] + (i == 5 ? kGUARD_BYTES : 0)));
        if (i < 5)
        {
            bool const channelsLast = (i == 0 && inputFormat != TensorFormat::kLINEAR)
                || (i == 3 && weightFormat != TensorFormat::kLINEAR);
            std::vector<uint8_t> const bytes
                = channelsLast ? relayout(host[i].bytes, descs[i].dims, typeSize(c.type), true) : host[i].bytes;
            CUDA_OK(cudaMemcpy(buf.ptr[i], bytes.data(), buf.bytes[i], cudaMemcpyHostToDevice));
        }
    }
    CUDA_OK(cudaMemset(buf.ptr[5], kPOISON, buf.bytes[5]));
    CUDA_OK(cudaMemset(static_cast<uint8_t*>(buf.ptr[5]) + buf.bytes[5], kGUARD, kGUARD_BYTES));
    CUDA_OK(cudaDeviceSynchronize());

    void const* inputs[5] = {buf.ptr[0], buf.ptr[1], buf.ptr[2], buf.ptr[3], buf.ptr[4]};
    void* outputs[1] = {buf.ptr[5]};
    if (!check(runtime->onShapeChange(descs.data(), 5, descs.data() + 5, 1) == 0,
            c.name + ": onShapeChange accepts N=" + std::to_string(s.n) + " H=" + std::to_string(s.h)
                + " W=" + std::to_string(s.w)))
    {
        return false;
    }
    if (captureGraph)
    {
        // Global-mode capture: any work on another stream, a cudaMalloc or a sync inside enqueue breaks the capture.
        cudaGraph_t graph{};
        cudaGraphExec_t exec{};
        CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
        int32_t const rc = runtime->enqueue(descs.data(), descs.data() + 5, inputs, outputs, workspace, stream);
        cudaError_t const endStatus = cudaStreamEndCapture(stream, &graph);
        check(rc == 0 && endStatus == cudaSuccess,
            c.name + ": enqueue captures into a CUDA graph (all work on the enqueue stream, no allocation or sync); "
                + "rc=" + std::to_string(rc) + " capture=" + cudaGetErrorString(endStatus));
        if (rc != 0 || endStatus != cudaSuccess)
        {
            cudaGetLastError();
            return false;
        }
        CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
        CUDA_OK(cudaGraphLaunch(exec, stream));
        CUDA_OK(cudaStreamSynchronize(stream));
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(graph);
    }
    else
    {
        int32_t const rc = runtime->enqueue(descs.data(), descs.data() + 5, inputs, outputs, workspace, stream);
        if (!check(rc == 0, c.name + ": enqueue returns 0"))
        {
            return false;
        }
        CUDA_OK(cudaStreamSynchronize(stream));
    }
    CUDA_OK(cudaGetLastError());
    std::vector<uint8_t> all(buf.bytes[5] + kGUARD_BYTES);
    CUDA_OK(cudaMemcpy(all.data(), buf.ptr[5], all.size(), cudaMemcpyDeviceToHost));
    check(std::all_of(all.begin() + static_cast<std::ptrdiff_t>(buf.bytes[5]), all.end(),
              [](uint8_t b)
              {
                  return b == kGUARD;
              }),
        c.name + ": nothing written past the output tensor");
    result.output.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(buf.bytes[5]));
    if (outputFormat != TensorFormat::kLINEAR)
    {
        result.output = relayout(result.output, descs[5].dims, typeSize(c.type), false);
    }
    result.ok = true;
    return true;
}

double tolerance(Case const& c)
{
    if (c.type == DataType::kHALF)
    {
        return 1e-2;
    }
    return c.strict ? 1e-5 : 1e-3; // TF32 tensor cores by default
}

//! max |out - ref| / max |ref|; NaN (e.g. an element left poisoned) counts as infinite error.
double relError(std::vector<double> const& out, std::vector<double> const& ref)
{
    double maxRef = 0, maxErr = 0;
    for (size_t i = 0; i < ref.size(); ++i)
    {
        maxRef = std::max(maxRef, std::fabs(ref[i]));
        double const e = std::fabs(out[i] - ref[i]);
        if (!(e <= maxErr))
        {
            maxErr = std::isnan(e) ? INFINITY : e;
        }
    }
    return maxErr / std::max(maxRef, 1e-12);
}

std::string describeDiff(std::vector<uint8_t> const& a, std::vector<uint8_t> const& b, DataType type)
{
    if (a == b)
    {
        return "bitwise identical";
    }
    auto const x = toDouble(a, type);
    auto const y = toDouble(b, type);
    return "differ: rel " + std::to_string(relError(x, y));
}

// ------------------------------------------------ the checks ---------------------------------------------------------
IPluginV3* createPlugin(IPluginCreatorV3One* creator, Case const& c, TensorRTPhase phase = TensorRTPhase::kBUILD)
{
    if (c.strict)
    {
        setenv("CENTERNET_DCNV2_STRICT_FP32", "1", 1);
    }
    else
    {
        unsetenv("CENTERNET_DCNV2_STRICT_FP32");
    }
    Fields fields(fieldsFor(c));
    IPluginV3* plugin = creator->createPlugin(c.name.c_str(), &fields.mFC, phase);
    unsetenv("CENTERNET_DCNV2_STRICT_FP32");
    return plugin;
}

//! The channels-last format the plugin takes for a tensor of this type and channel count (kLINEAR: none).
TensorFormat channelsLastFormat(DataType type, int64_t channels)
{
    if (type == DataType::kHALF)
    {
        return channels % 8 == 0 ? TensorFormat::kHWC8 : TensorFormat::kLINEAR;
    }
    return TensorFormat::kHWC;
}

//! channels / outChannels / weightChannels: the input's, the output's and the weight's (Cin / groups) channels.
void checkFormats(IPluginV3OneBuild* build, std::string const& name, int64_t channels, int64_t outChannels,
    int64_t weightChannels)
{
    // Every type the headers know: kFP4 appeared in TensorRT 10.8's headers, kE8M0 in 10.12's.
    DataType const types[] = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8, DataType::kINT32, DataType::kBOOL,
        DataType::kUINT8, DataType::kFP8, DataType::kBF16, DataType::kINT64, DataType::kINT4,
#if NV_TENSORRT_MAJOR > 10 || NV_TENSORRT_MINOR >= 8
        DataType::kFP4,
#endif
#if NV_TENSORRT_MAJOR > 10 || NV_TENSORRT_MINOR >= 12
        DataType::kE8M0,
#endif
    };
    TensorFormat const formats[]
        = {TensorFormat::kLINEAR, TensorFormat::kCHW2, TensorFormat::kHWC8, TensorFormat::kCHW4, TensorFormat::kCHW16,
            TensorFormat::kCHW32, TensorFormat::kDHWC8, TensorFormat::kCDHW32, TensorFormat::kHWC,
            TensorFormat::kDLA_LINEAR, TensorFormat::kDLA_HWC4, TensorFormat::kHWC16, TensorFormat::kDHWC};
    int queries = 0, wrong = 0, accepted = 0;
    std::vector<DynamicPluginTensorDesc> io(6);
    io[0].desc.dims.nbDims = 4;
    io[0].desc.dims.d[0] = 1;
    io[0].desc.dims.d[1] = channels; // kHWC8 depends on C (a multiple of 8: no channel padding)
    io[0].desc.dims.d[2] = io[0].desc.dims.d[3] = 16;
    io[5].desc.dims = io[0].desc.dims;
    io[5].desc.dims.d[1] = outChannels;
    io[3].desc.dims = io[0].desc.dims; // [Cout, Cin / groups, kh, kw]
    io[3].desc.dims.d[0] = outChannels;
    io[3].desc.dims.d[1] = weightChannels;
    io[3].desc.dims.d[2] = io[3].desc.dims.d[3] = 3;
    // TensorRT asks position by position, with earlier positions already set to a supported choice.
    for (DataType chosen : {DataType::kFLOAT, DataType::kHALF})
    {
        for (int32_t pos = 0; pos < 6; ++pos)
        {
            for (int k = 0; k < pos; ++k)
            {
                io[k].desc.type = chosen;
                io[k].desc.format = TensorFormat::kLINEAR;
            }
            for (DataType t : types)
            {
                for (TensorFormat f : formats)
                {
                    io[pos].desc.type = t;
                    io[pos].desc.format = f;
                    bool const typeOk = pos == 0 ? (t == DataType::kFLOAT || t == DataType::kHALF) : t == chosen;
                    bool const formatOk = f == TensorFormat::kLINEAR
                        || (pos == 0 && f == channelsLastFormat(t, channels))
                        || (pos == 3 && f == channelsLastFormat(t, weightChannels))
                        || (pos == 5 && f == channelsLastFormat(t, outChannels));
                    bool const expected = typeOk && formatOk;
                    bool const got = build->supportsFormatCombination(pos, io.data(), 5, 1);
                    ++queries;
                    accepted += got;
                    if (got != expected)
                    {
                        ++wrong;
                        if (wrong <= 5)
                        {
                            std::printf("    format mismatch: pos %d type %d format %d -> %d\n", pos,
                                static_cast<int>(t), static_cast<int>(f), got);
                        }
                    }
                }
            }
        }
    }
    check(wrong == 0, name + ": supportsFormatCombination accepts exactly all-fp32 or all-fp16 linear, the input, "
                                    "the weight and the output also kHWC8 (fp16, channels % 8 == 0) or kHWC (fp32) ("
                          + std::to_string(queries) + " queries, " + std::to_string(accepted) + " accepted, "
                          + std::to_string(wrong) + " wrong)");
    // channels not a multiple of 8 (kHWC8 would pad them) or not known yet: fp16 stays linear
    for (int32_t pos : {0, 3, 5})
    {
        for (int64_t ch : {int64_t{6}, int64_t{-1}})
        {
            for (auto& d : io)
            {
                d.desc.type = DataType::kHALF;
                d.desc.format = TensorFormat::kLINEAR;
            }
            int64_t const keep = io[pos].desc.dims.d[1];
            io[pos].desc.dims.d[1] = ch;
            io[pos].desc.format = TensorFormat::kHWC8;
            check(!build->supportsFormatCombination(pos, io.data(), 5, 1),
                name + ": supportsFormatCombination refuses a kHWC8 "
                    + (pos == 0 ? "input" : pos == 3 ? "weight" : "output")
                    + " with " + std::to_string(ch) + " channels");
            io[pos].desc.dims.d[1] = keep;
        }
    }
    check(!build->supportsFormatCombination(6, io.data(), 5, 1)
              && !build->supportsFormatCombination(-1, io.data(), 5, 1)
              && !build->supportsFormatCombination(0, io.data(), 4, 1),
        name + ": supportsFormatCombination rejects out-of-range positions and wrong tensor counts");
}

bool checkBuildInterface(Caps const& caps, Case const& c)
{
    // names
    check(std::strcmp(caps.core->getPluginName(), "DCNv2") == 0 && std::strcmp(caps.core->getPluginVersion(), "1") == 0
              && std::strcmp(caps.core->getPluginNamespace(), "") == 0,
        c.name + ": plugin reports DCNv2/1/\"\"");
    check(caps.build->getNbOutputs() == 1, c.name + ": getNbOutputs() == 1");

    // output types
    DataType in[5];
    std::fill(in, in + 5, c.type);
    DataType out = DataType::kINT8;
    check(caps.build->getOutputDataTypes(&out, 1, in, 5) == 0 && out == c.type,
        c.name + ": getOutputDataTypes gives the input type");

    // output shapes through the expression builder; N/H/W non-constant when dynamic
    auto const d = tensorDims(c, c.shapes.front());
    FakeExprBuilder eb;
    DimsExprs inputs[5];
    for (int i = 0; i < 5; ++i)
    {
        inputs[i].nbDims = d[i].nbDims;
        for (int k = 0; k < d[i].nbDims; ++k)
        {
            bool const runtimeDim = c.dynamic && i < 3 && k != 1;
            inputs[i].d[k] = eb.make(d[i].d[k], !runtimeDim);
        }
    }
    DimsExprs outputs[1]{};
    int32_t const rc = caps.build->getOutputShapes(inputs, 5, nullptr, 0, outputs, 1, eb);
    bool shapeOk = rc == 0 && outputs[0].nbDims == 4;
    for (int k = 0; shapeOk && k < 4; ++k)
    {
        auto const* e = dynamic_cast<FakeExpr const*>(outputs[0].d[k]);
        bool const wantConstant = !(c.dynamic && k != 1);
        shapeOk = e != nullptr && e->value() == d[5].d[k] && e->isConstant() == wantConstant;
    }
    check(shapeOk, c.name + ": getOutputShapes gives [N,Cout,Ho,Wo] = " + std::to_string(d[5].d[0]) + ","
                       + std::to_string(d[5].d[1]) + "," + std::to_string(d[5].d[2]) + "," + std::to_string(d[5].d[3])
                       + (c.dynamic ? " with N/H/W as expressions" : " as constants"));
    return shapeOk;
}

//! Whether the im2col tactic should be offered for this case: a 3x3 kernel with 16-byte channel vectors, and cuBLAS
//! loadable here (the plugin loads the same soname).
bool im2colExpected(Case const& c)
{
    int64_t const vec = c.type == DataType::kHALF ? 8 : 4;
    static bool const blas = []
    {
        std::string const name = "libcublas.so." + std::to_string(CUDART_VERSION / 1000);
        void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (h == nullptr)
        {
            h = dlopen("libcublas.so", RTLD_NOW | RTLD_LOCAL);
        }
        std::printf("  (%s %s here)\n", name.c_str(), h ? "loads" : "does not load");
        return h != nullptr; // kept open: the plugin's dlopen then shares it
    }();
    return c.kh * c.kw == 9 && (c.c / c.groups) % vec == 0 && (c.c / c.dg) % vec == 0 && blas;
}

//! The custom tactic (im2col + cuBLAS): offered exactly where it can run; through setTactic it matches the float64
//! reference, is bitwise reproducible (rerun, CUDA-graph replay, attachToContext copy with its own cuBLAS handle);
//! unknown tactics and wrong tactic buffers are refused without crashing.
void checkIm2colTactic(Case const& c, Shape const& s, std::vector<HostTensor> const& host,
    std::vector<double> const& ref, IPluginV3* built, IPluginV3* restored, Caps const& caps, void* workspace,
    cudaStream_t stream)
{
    int32_t const nb = caps.build->getNbTactics();
    bool const expected = im2colExpected(c);
    check(nb == (expected ? 1 : 0),
        c.name + ": getNbTactics() == " + std::to_string(expected ? 1 : 0) + " (got " + std::to_string(nb) + ")");
    int32_t wrong[2] = {0, 0};
    check(caps.build->getValidTactics(wrong, nb + 1) != 0, c.name + ": getValidTactics refuses a wrong count");
    check(caps.runtime->setTactic(7) != 0, c.name + ": setTactic refuses an unknown tactic");
    if (nb != 1)
    {
        return;
    }
    int32_t tactic = 0;
    check(caps.build->getValidTactics(&tactic, 1) == 0 && tactic == 1, c.name + ": getValidTactics gives tactic 1");
    std::unique_ptr<IPluginV3> tp(built->clone());
    Caps const tc = capabilities(tp.get(), false);
    if (!check(tc.runtime->setTactic(1) == 0, c.name + ": setTactic(1)"))
    {
        return;
    }
    RunResult first;
    if (!runOnce(tc.runtime, c, s, host, workspace, stream, first))
    {
        return;
    }
    double const err = relError(toDouble(first.output, c.type), ref);
    check(err <= tolerance(c), c.name + ": im2col tactic matches the float64 reference (rel err " + std::to_string(err)
                                   + " <= " + std::to_string(tolerance(c)) + ")");
    std::printf("  im2col tactic: rel err %.3g (tol %.0e)\n", err, tolerance(c));
    std::unique_ptr<IPluginV3> attached(tc.runtime->attachToContext(nullptr));
    std::vector<std::pair<std::string, RunResult>> runs;
    auto again = [&](IPluginV3OneRuntime* rt, std::string const& what, bool graph)
    {
        RunResult out;
        if (runOnce(rt, c, s, host, workspace, stream, out, graph))
        {
            runs.emplace_back(what, std::move(out));
        }
    };
    again(tc.runtime, "rerun", false);
    again(tc.runtime, "CUDA-graph replay", true);
    if (check(attached != nullptr, c.name + ": attachToContext() of the im2col-tactic plugin"))
    {
        again(capabilities(attached.get(), false).runtime, "attachToContext() copy", false);
    }
    // as a deserialized engine runs it: recreated from the serialized fields (never configured), setTactic(1)
    std::unique_ptr<IPluginV3> rp(restored->clone());
    Caps const rc = capabilities(rp.get(), false);
    if (check(rc.runtime->setTactic(1) == 0, c.name + ": setTactic(1) on the plugin recreated for runtime"))
    {
        again(rc.runtime, "recreated for runtime + setTactic(1)", false);
    }
    std::string differing;
    for (auto const& [what, out] : runs)
    {
        if (out.output != first.output)
        {
            differing += (differing.empty() ? "" : "; ") + what + " " + describeDiff(out.output, first.output, c.type);
        }
    }
    check(differing.empty() && runs.size() == 4,
        c.name + ": im2col tactic bitwise identical over " + std::to_string(runs.size() + 1) + " runs"
            + (differing.empty() ? std::string() : " -- " + differing));
}

//! Channels-last tensors (kHWC8 in fp16 where the channels are a multiple of 8, kHWC in fp32), as TensorRT hands them
//! over when its neighbouring layers run channels-last: the input alone, input and output, the weight alone, all
//! three. configurePlugin takes them; the workspace shrinks with the input (no NHWC copy) and never grows with the
//! weight (on Hopper the warpgroup kernel reads it without a packed copy); the output is bitwise identical to the
//! linear run's (TF32 with the weight or the input channels-last: within the TF32 tolerance of it, since the pack
//! rounds the weight to TF32 and the direct read does not, and the linear run's gathers may read the kernel's fp16
//! copy of the input (v30) where a channels-last input is read in place as fp32), and an enqueue with a format never
//! offered is refused, not run.
void checkChannelsLast(Case const& c, Shape const& s, std::vector<HostTensor> const& host, RunResult const& linear,
    std::vector<DynamicPluginTensorDesc> const& linearDescs, size_t linearWorkspace, Caps const& caps, void* workspace,
    cudaStream_t stream)
{
    TensorFormat const formats[3] = {channelsLastFormat(c.type, c.c), channelsLastFormat(c.type, c.cout),
        channelsLastFormat(c.type, c.c / c.groups)}; // input, output, weight
    char const* const tensorNames[3] = {"input", "output", "weight"};
    bool const combos[4][3] = {{true, false, false}, {true, true, false}, {false, false, true}, {true, true, true}};
    for (auto const& channelsLast : combos)
    {
        std::string what;
        TensorFormat f[3];
        bool possible = true;
        for (int i = 0; i < 3; ++i)
        {
            f[i] = channelsLast[i] ? formats[i] : TensorFormat::kLINEAR;
            possible = possible && (!channelsLast[i] || f[i] != TensorFormat::kLINEAR);
            if (channelsLast[i])
            {
                what += std::string(what.empty() ? "" : " + ") + (f[i] == TensorFormat::kHWC8 ? "kHWC8 " : "kHWC ")
                    + tensorNames[i];
            }
        }
        if (!possible)
        {
            continue;
        }
        what = c.name + ": " + what;
        auto descs = linearDescs;
        descs[0].desc.format = f[0];
        descs[5].desc.format = f[1];
        descs[3].desc.format = f[2];
        if (!check(caps.build->configurePlugin(descs.data(), 5, descs.data() + 5, 1) == 0, what + ": configurePlugin"))
        {
            continue;
        }
        size_t const ws = caps.build->getWorkspaceSize(descs.data(), 5, descs.data() + 5, 1);
        check(channelsLast[0] ? ws < linearWorkspace : ws <= linearWorkspace,
            what + ": " + (channelsLast[0] ? "less" : "no more") + " workspace than linear (" + std::to_string(ws)
                + " vs " + std::to_string(linearWorkspace) + ")");
        RunResult r;
        if (runOnce(caps.runtime, c, s, host, workspace, stream, r, false, f[0], f[1], f[2]))
        {
            if ((channelsLast[0] || channelsLast[2]) && c.type == DataType::kFLOAT && !c.strict)
            {
                double const e = relError(toDouble(r.output, c.type), toDouble(linear.output, c.type));
                check(e <= tolerance(c),
                    what + ": output within the TF32 tolerance of the linear run's (rel " + std::to_string(e) + ")");
            }
            else
            {
                check(r.output == linear.output, what + ": output bitwise identical to the linear run's ("
                        + describeDiff(r.output, linear.output, c.type) + ")");
            }
        }
    }
    // formats supportsFormatCombination never offers: refused at enqueue, nothing launched
    auto bad = concreteDescs(c, s, c.type);
    bad[5].format = TensorFormat::kCHW32;
    void const* ptrs[5] = {workspace, workspace, workspace, workspace, workspace};
    void* outs[1] = {workspace};
    size_t const logMark = gLogger.mark();
    check(caps.runtime->enqueue(bad.data(), bad.data() + 5, ptrs, outs, workspace, stream) != 0
            && gLogger.loggedSince(logMark, {"format"}),
        c.name + ": enqueue refuses a kCHW32 output with a message naming the format");
    caps.build->configurePlugin(linearDescs.data(), 5, linearDescs.data() + 5, 1); // back to the linear profile
}

//! Full life cycle for one case. Returns false if the case could not run at all.
bool runCase(IPluginCreatorV3One* creator, Case const& c, bool gpu)
{
    std::printf("case %s: %s N,C,H,W=", c.name.c_str(), typeName(c.type));
    for (auto const& s : c.shapes)
    {
        std::printf("(%ld,%ld,%ld,%ld)", static_cast<long>(s.n), static_cast<long>(c.c), static_cast<long>(s.h),
            static_cast<long>(s.w));
    }
    std::printf(" -> Cout %ld, k%ldx%ld s%d,%d p%d,%d d%d,%d groups %d dg %d%s%s\n", static_cast<long>(c.cout),
        static_cast<long>(c.kh), static_cast<long>(c.kw), c.stride[0], c.stride[1], c.pad[0], c.pad[1], c.dil[0],
        c.dil[1], c.groups, c.dg, c.dynamic ? " dynamic" : "", c.strict ? " strict-fp32" : "");
    std::unique_ptr<IPluginV3> plugin(createPlugin(creator, c));
    if (!check(plugin != nullptr, c.name + ": createPlugin from fields"))
    {
        return false;
    }
    Caps caps = capabilities(plugin.get(), true);
    if (caps.core == nullptr || caps.build == nullptr || caps.runtime == nullptr)
    {
        return false;
    }
    if (c.strict)
    {
        check(std::string(caps.build->getMetadataString()).find("fp32_math=strict") != std::string::npos,
            c.name + ": CENTERNET_DCNV2_STRICT_FP32=1 selects the strict fp32 path");
    }
    checkBuildInterface(caps, c);
    checkFormats(caps.build, c.name, c.c, c.cout, c.c / c.groups);

    auto descs = dynamicDescs(c, c.type);
    size_t const logMark = gLogger.mark();
    int32_t const rc = caps.build->configurePlugin(descs.data(), 5, descs.data() + 5, 1);
    if (c.mayBeUnsupported && rc != 0)
    {
        check(gLogger.loggedSince(logMark, {"groups"}),
            c.name + ": rejected at configurePlugin with a message naming groups");
        std::printf(
            "  note: %s rejected by the kernel at build time (clear message, no wrong answer)\n", c.name.c_str());
        return true;
    }
    if (!check(rc == 0, c.name + ": configurePlugin accepts the profile"))
    {
        return false;
    }
    size_t const workspaceSize = caps.build->getWorkspaceSize(descs.data(), 5, descs.data() + 5, 1);
    std::printf("  workspace %zu bytes\n", workspaceSize);

    // Serialize -> recreate (runtime phase, as engine deserialization does) -> clone / attachToContext.
    PluginFieldCollection const* serialized = caps.runtime->getFieldsToSerialize();
    if (!check(serialized != nullptr, c.name + ": getFieldsToSerialize"))
    {
        return false;
    }
    auto const saved = Fields::copyOf(*serialized);
    std::set<std::string> names;
    for (auto const& s : saved->mSpecs)
    {
        names.insert(s.name);
    }
    check(names == std::set<std::string>{"stride", "padding", "dilation", "groups", "deformable_group"}
              && saved->mSpecs.size() == 5,
        c.name + ": serialized fields are exactly the five attributes");
    if (c.strict)
    {
        setenv("CENTERNET_DCNV2_STRICT_FP32", "1", 1);
    }
    std::unique_ptr<IPluginV3> restored(creator->createPlugin(c.name.c_str(), &saved->mFC, TensorRTPhase::kRUNTIME));
    unsetenv("CENTERNET_DCNV2_STRICT_FP32");
    if (!check(restored != nullptr, c.name + ": createPlugin(kRUNTIME) from the serialized fields"))
    {
        return false;
    }
    Caps restoredCaps = capabilities(restored.get(), false);
    {
        auto const again = Fields::copyOf(*restoredCaps.runtime->getFieldsToSerialize());
        bool same = again->mSpecs.size() == saved->mSpecs.size();
        for (size_t i = 0; same && i < again->mSpecs.size(); ++i)
        {
            same = again->mSpecs[i].name == saved->mSpecs[i].name && again->mSpecs[i].ints == saved->mSpecs[i].ints;
        }
        check(same, c.name + ": recreated plugin serializes the same fields");
    }
    std::unique_ptr<IPluginV3> cloned(restored->clone());
    std::unique_ptr<IPluginV3> attached(restoredCaps.runtime->attachToContext(nullptr));
    std::unique_ptr<IPluginV3> buildClone(plugin->clone());
    check(cloned != nullptr && attached != nullptr && buildClone != nullptr,
        c.name + ": clone() and attachToContext() return plugins");
    if (cloned == nullptr || attached == nullptr || buildClone == nullptr)
    {
        return false;
    }

    if (!gpu)
    {
        // tactic calls that need no GPU: an unknown tactic and a wrong tactic buffer are refused, not crashed on
        int32_t room[2] = {0, 0};
        check(caps.runtime->setTactic(7) != 0 && caps.build->getValidTactics(room, caps.build->getNbTactics() + 1) != 0,
            c.name + ": setTactic / getValidTactics refuse an unknown tactic and a wrong count");
        ++gSkipped;
        return true;
    }

    // The workspace TensorRT would give (getWorkspaceSize for the profile) plus a guard band: every shape of the
    // profile must stay inside it (the plugin cannot learn the size it got, so it must never need more).
    void* workspace = nullptr;
    if (cudaMalloc(&workspace, workspaceSize + kGUARD_BYTES) != cudaSuccess)
    {
        check(false, c.name + ": cudaMalloc workspace");
        return false;
    }
    uint8_t* const wsGuard = static_cast<uint8_t*>(workspace) + workspaceSize;
    CUDA_OK(cudaMemset(wsGuard, kGUARD, kGUARD_BYTES));
    auto workspaceGuardIntact = [&](std::string const& when) -> bool
    {
        std::vector<uint8_t> band(kGUARD_BYTES);
        CUDA_OK(cudaMemcpy(band.data(), wsGuard, kGUARD_BYTES, cudaMemcpyDeviceToHost));
        check(std::all_of(band.begin(), band.end(),
                  [](uint8_t b)
                  {
                      return b == kGUARD;
                  }),
            c.name + ": " + when + ": nothing written past the declared workspace (" + std::to_string(workspaceSize)
                + " bytes)");
        return true;
    };
    cudaStream_t stream{};
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    bool first = true;
    for (auto const& s : c.shapes)
    {
        // Fresh data per shape: inputs in [-1,1], offsets in [-3,3] (some exact integers, some far outside),
        // mask in [0,1], weights scaled to keep outputs O(1).
        std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>{}(c.name) + s.n * 131 + s.h * 17 + s.w));
        auto const d = tensorDims(c, s);
        float const wScale = 1.f / std::sqrt(static_cast<float>(c.c / c.groups * c.kh * c.kw));
        std::vector<HostTensor> host;
        host.push_back(makeTensor(volume(d[0]), c.type, rng, std::uniform_real_distribution<float>(-1.f, 1.f)));
        host.push_back(
            makeTensor(volume(d[1]), c.type, rng, std::uniform_real_distribution<float>(-3.f, 3.f), 0.1f, 0.05f));
        host.push_back(makeTensor(volume(d[2]), c.type, rng, std::uniform_real_distribution<float>(0.f, 1.f)));
        host.push_back(makeTensor(volume(d[3]), c.type, rng, std::uniform_real_distribution<float>(-wScale, wScale)));
        host.push_back(makeTensor(volume(d[4]), c.type, rng, std::uniform_real_distribution<float>(-1.f, 1.f)));
        auto const ref = reference(c, s, host);

        RunResult r;
        if (!runOnce(caps.runtime, c, s, host, workspace, stream, r))
        {
            continue;
        }
        double const err = relError(toDouble(r.output, c.type), ref);
        std::string const shapeText
            = "N=" + std::to_string(s.n) + " H=" + std::to_string(s.h) + " W=" + std::to_string(s.w);
        workspaceGuardIntact(shapeText);
        check(err <= tolerance(c), c.name + " " + shapeText + ": matches the float64 reference (rel err "
                                       + std::to_string(err) + " <= " + std::to_string(tolerance(c)) + ")");
        std::printf("  %s: rel err %.3g (tol %.0e)\n", shapeText.c_str(), err, tolerance(c));
        if (!first)
        {
            continue;
        }
        first = false;
        // Same inputs again through the same object (3x), a CUDA-graph replay, and every copy. Each must match the
        // reference, and all must be bitwise identical to the first output. When they are not, the message says
        // whether reruns of the same object differ too (then the kernel is not run-to-run deterministic, e.g.
        // split-K with float atomics, and the copies are not to blame).
        std::vector<std::pair<std::string, RunResult>> repeats;
        auto again = [&](IPluginV3* p, std::string const& what, bool graph)
        {
            RunResult out;
            Caps const pc = capabilities(p, false);
            if (runOnce(pc.runtime, c, s, host, workspace, stream, out, graph))
            {
                double const e = relError(toDouble(out.output, c.type), ref);
                check(e <= tolerance(c),
                    c.name + ": " + what + " matches the reference (rel err " + std::to_string(e) + ")");
                repeats.emplace_back(what, std::move(out));
            }
        };
        for (int k = 0; k < 3; ++k)
        {
            again(plugin.get(), "same plugin, rerun " + std::to_string(k + 1), false);
        }
        again(plugin.get(), "CUDA-graph replay of enqueue", true);
        again(cloned.get(), "recreated from serialized fields + clone()", false);
        again(attached.get(), "attachToContext() copy", false);
        again(buildClone.get(), "clone() of the build-phase plugin", false);
        std::string differing;
        bool rerunsDiffer = false;
        for (auto const& [what, out] : repeats)
        {
            if (out.output != r.output)
            {
                differing += (differing.empty() ? "" : "; ") + what + " " + describeDiff(out.output, r.output, c.type);
                rerunsDiffer = rerunsDiffer || what.rfind("same plugin", 0) == 0;
            }
        }
        check(differing.empty(),
            c.name + ": " + std::to_string(repeats.size() + 1) + " runs of the same inputs bitwise identical"
                + (differing.empty()
                        ? std::string()
                        : std::string(" -- ") + differing
                              + (rerunsDiffer ? " [reruns of the same object differ too: the kernel is not "
                                                "run-to-run deterministic]"
                                              : "")));
        checkIm2colTactic(c, s, host, ref, plugin.get(), restored.get(), caps, workspace, stream);
        workspaceGuardIntact("after the repeated runs and the im2col tactic");
        checkChannelsLast(c, s, host, r, descs, workspaceSize, caps, workspace, stream);
        workspaceGuardIntact("after the channels-last runs");
    }
    cudaStreamDestroy(stream);
    cudaFree(workspace);
    return true;
}

//! createPlugin must return nullptr and log a message containing `needle` (and never crash).
void expectRejectedFields(IPluginCreatorV3One* creator, std::string const& what, std::vector<FieldSpec> specs,
    std::string const& needle, bool nullCollection = false)
{
    Fields fields(std::move(specs));
    size_t const mark = gLogger.mark();
    std::unique_ptr<IPluginV3> plugin(
        creator->createPlugin("bad", nullCollection ? nullptr : &fields.mFC, TensorRTPhase::kBUILD));
    check(plugin == nullptr && gLogger.loggedSince(mark, {needle}),
        "bad fields rejected with a message naming '" + needle + "': " + what);
}

std::vector<FieldSpec> goodFields()
{
    return {{"stride", PluginFieldType::kINT32, {1, 1}, {}}, {"padding", PluginFieldType::kINT32, {1, 1}, {}},
        {"dilation", PluginFieldType::kINT32, {1, 1}, {}}, {"groups", PluginFieldType::kINT32, {1}, {}},
        {"deformable_group", PluginFieldType::kINT32, {1}, {}}};
}

std::vector<FieldSpec> with(std::string const& name, FieldSpec replacement)
{
    auto specs = goodFields();
    for (auto& s : specs)
    {
        if (s.name == name)
        {
            s = replacement;
        }
    }
    return specs;
}

std::vector<FieldSpec> without(std::string const& name)
{
    auto specs = goodFields();
    specs.erase(std::remove_if(specs.begin(), specs.end(),
                    [&](FieldSpec const& s)
                    {
                        return s.name == name;
                    }),
        specs.end());
    return specs;
}

void checkBadFields(IPluginCreatorV3One* creator)
{
    std::printf("bad fields\n");
    expectRejectedFields(
        creator, "stride = -1", with("stride", {"stride", PluginFieldType::kINT32, {-1}, {}}), "stride");
    expectRejectedFields(
        creator, "stride = [2, 0]", with("stride", {"stride", PluginFieldType::kINT32, {2, 0}, {}}), "stride");
    expectRejectedFields(
        creator, "padding = -1", with("padding", {"padding", PluginFieldType::kINT32, {-1, 1}, {}}), "padding");
    expectRejectedFields(
        creator, "dilation = 0", with("dilation", {"dilation", PluginFieldType::kINT32, {0}, {}}), "dilation");
    expectRejectedFields(creator, "groups = 0", with("groups", {"groups", PluginFieldType::kINT32, {0}, {}}), "groups");
    expectRejectedFields(creator, "deformable_group = 0",
        with("deformable_group", {"deformable_group", PluginFieldType::kINT32, {0}, {}}), "deformable_group");
    expectRejectedFields(
        creator, "stride as FLOAT32", with("stride", {"stride", PluginFieldType::kFLOAT32, {}, {1.f, 1.f}}), "stride");
    expectRejectedFields(
        creator, "groups as FLOAT32", with("groups", {"groups", PluginFieldType::kFLOAT32, {}, {1.f}}), "groups");
    expectRejectedFields(
        creator, "stride with 3 values", with("stride", {"stride", PluginFieldType::kINT32, {1, 1, 1}, {}}), "stride");
    expectRejectedFields(
        creator, "groups with 2 values", with("groups", {"groups", PluginFieldType::kINT32, {1, 1}, {}}), "groups");
    expectRejectedFields(
        creator, "stride with 0 values", with("stride", {"stride", PluginFieldType::kINT32, {}, {}}), "stride");
    for (char const* name : {"stride", "padding", "dilation", "groups", "deformable_group"})
    {
        expectRejectedFields(
            creator, std::string("missing ") + name, without(name), std::string("missing field '") + name);
    }
    auto twice = goodFields();
    twice.push_back({"padding", PluginFieldType::kINT32, {0}, {}});
    expectRejectedFields(creator, "padding given twice", twice, "padding");
    expectRejectedFields(creator, "no field collection at all", {}, "no plugin fields", true);
}

//! Shapes that do not fit the attributes: configurePlugin (build time) must refuse them with a message.
void checkBadShapes(IPluginCreatorV3One* creator)
{
    std::printf("inconsistent shapes\n");
    Case base{
        "shapes", 32, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 2, DataType::kFLOAT, false, false, false, {{2, 12, 10}}};
    struct Bad
    {
        std::string what;
        std::function<void(std::vector<DynamicPluginTensorDesc>&)> mutate;
        Case c;
        std::string needle;
    };
    auto setDim = [](std::vector<DynamicPluginTensorDesc>& d, int t, int k, int64_t v)
    {
        d[t].desc.dims.d[k] = v;
        d[t].min.d[k] = v;
        d[t].max.d[k] = v;
        d[t].opt.d[k] = v;
    };
    Case dg3 = base;
    dg3.dg = 3; // 32 channels are not divisible by 3
    Case groups3 = base;
    groups3.groups = 3;
    std::vector<Bad> bads = {
        {"offset channels != 2*dg*kh*kw",
            [&](auto& d)
            {
                setDim(d, 1, 1, 18);
            },
            base, "offset"},
        {"mask channels != dg*kh*kw",
            [&](auto& d)
            {
                setDim(d, 2, 1, 9);
            },
            base, "mask"},
        {"offset spatial != output spatial",
            [&](auto& d)
            {
                setDim(d, 1, 2, 11);
            },
            base, "offset"},
        {"mask batch != input batch",
            [&](auto& d)
            {
                setDim(d, 2, 0, 1);
            },
            base, "mask"},
        {"weight Cin*groups != C",
            [&](auto& d)
            {
                setDim(d, 3, 1, 16);
            },
            base, "weight"},
        {"bias != Cout",
            [&](auto& d)
            {
                setDim(d, 4, 0, 8);
            },
            base, "bias"},
        {"deformable_group does not divide C", [](auto&) {}, dg3, "deformable_group"},
        {"groups does not divide C", [](auto&) {}, groups3, "groups"},
        {"mixed types (weight fp16)",
            [](auto& d)
            {
                d[3].desc.type = DataType::kHALF;
            },
            base, "weight"},
        {"non-linear format",
            [](auto& d)
            {
                d[0].desc.format = TensorFormat::kCHW4;
            },
            base, "input"},
    };
    for (auto& bad : bads)
    {
        std::unique_ptr<IPluginV3> plugin(createPlugin(creator, bad.c));
        if (!check(plugin != nullptr, "create for '" + bad.what + "'"))
        {
            continue;
        }
        auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
        // Build the descriptors from a consistent case with groups=1/dg=1 shapes where needed, then break one thing.
        Case shapeCase = bad.c;
        shapeCase.groups = 1;
        shapeCase.dg = bad.c.dg == 3 ? 2 : bad.c.dg;
        auto d = dynamicDescs(shapeCase, DataType::kFLOAT);
        if (bad.c.dg == 3)
        {
            int64_t const taps = 3 * 9;
            setDim(d, 1, 1, 2 * taps);
            setDim(d, 2, 1, taps);
        }
        bad.mutate(d);
        size_t const mark = gLogger.mark();
        int32_t const rc = build->configurePlugin(d.data(), 5, d.data() + 5, 1);
        check(rc != 0 && gLogger.loggedSince(mark, {bad.needle}),
            "configurePlugin rejects " + bad.what + " with a message naming '" + bad.needle + "'");
    }
    // Strongly typed networks: mismatched input types must fail in getOutputDataTypes, not produce garbage.
    std::unique_ptr<IPluginV3> plugin(createPlugin(creator, base));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    DataType in[5] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT};
    DataType out{};
    size_t const mark = gLogger.mark();
    check(build->getOutputDataTypes(&out, 1, in, 5) != 0 && gLogger.loggedSince(mark, {"weight"}),
        "getOutputDataTypes rejects fp16 input with fp32 weight, naming the weight");
    DataType ints[5] = {DataType::kINT32, DataType::kINT32, DataType::kINT32, DataType::kINT32, DataType::kINT32};
    check(build->getOutputDataTypes(&out, 1, ints, 5) != 0, "getOutputDataTypes rejects int32 tensors");
    // A shape change at run time that breaks consistency must be refused, not enqueued.
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto descs = concreteDescs(base, base.shapes.front(), DataType::kFLOAT);
    descs[2].dims.d[1] = 5;
    check(runtime->onShapeChange(descs.data(), 5, descs.data() + 5, 1) != 0,
        "onShapeChange rejects a mask with the wrong channel count");
    // enqueue with shapes that do not fit must return an error without touching memory (null pointers here).
    void const* nullInputs[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
    void* nullOutputs[1] = {nullptr};
    check(runtime->enqueue(descs.data(), descs.data() + 5, nullInputs, nullOutputs, nullptr, nullptr) != 0,
        "enqueue refuses inconsistent shapes");
}

std::vector<Case> cases()
{
    auto const F = DataType::kFLOAT;
    auto const H = DataType::kHALF;
    // name, C, Cout, kh, kw, stride, pad, dilation, groups, dg, type, strict, scalarFields, dynamic, shapes
    return {
        {"fp32_basic", 32, 24, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, F, false, true, false, {{1, 20, 20}}},
        {"fp32_strict", 32, 24, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, F, true, false, false, {{1, 20, 20}}},
        {"fp16_basic", 32, 24, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, H, false, true, false, {{1, 20, 20}}},
        {"fp32_batch2_dg2_odd", 48, 40, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 2, F, false, false, false, {{2, 17, 23}}},
        {"fp16_batch2_dg2_odd", 48, 40, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 2, H, false, false, false, {{2, 17, 23}}},
        {"fp32_stride2_pad_dil", 16, 32, 3, 3, {2, 1}, {2, 1}, {2, 1}, 1, 1, F, false, false, false, {{2, 25, 19}}},
        {"fp16_stride2_5x3", 16, 32, 5, 3, {2, 2}, {2, 1}, {1, 1}, 1, 4, H, false, false, false, {{1, 31, 18}}},
        {"fp32_centernet_64x64", 64, 64, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, F, false, true, false, {{1, 64, 64}}},
        {"fp16_centernet_64x64", 64, 64, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, H, false, true, false, {{1, 64, 64}}},
        {"fp32_dynamic_NHW", 32, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 1, F, false, true, true,
            {{2, 24, 30}, {1, 9, 13}, {3, 32, 32}, {2, 17, 8}}},
        {"fp16_dynamic_NHW", 32, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, 2, H, false, true, true,
            {{2, 24, 30}, {1, 9, 13}, {3, 32, 32}}},
        {"fp32_groups2", 32, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 2, 1, F, false, true, false, {{1, 12, 12}}, true},
        // a shape between the profile's extremes that splits K more than either (on an H100: 144 tiles at 96 x 96, no
        // split; 25 at 40 x 40, 5 splits): the workspace sized at the extremes must still hold its partials (3 x 5, so
        // the im2col tactic's larger workspace is not offered and cannot hide an overrun)
        {"fp16_dynamic_split_K", 128, 128, 3, 5, {1, 1}, {1, 2}, {1, 1}, 1, 1, H, false, false, true,
            {{1, 96, 96}, {1, 8, 8}, {1, 40, 40}}},
    };
}
} // namespace

int main(int argc, char** argv)
{
    char const* library = DCNV2_PLUGIN_LIBRARY;
    bool interfaceOnly = false;
    for (int i = 1; i < argc; ++i)
    {
        if (std::strcmp(argv[i], "--interface-only") == 0)
        {
            interfaceOnly = true;
        }
        else
        {
            library = argv[i];
        }
    }
    std::printf("DCNv2 plugin harness (built against TensorRT headers %d.%d.%d)\nlibrary: %s\n", NV_TENSORRT_MAJOR,
        NV_TENSORRT_MINOR, NV_TENSORRT_PATCH, library);

    int deviceCount = 0;
    bool gpu = !interfaceOnly && cudaGetDeviceCount(&deviceCount) == cudaSuccess && deviceCount > 0;
    if (gpu)
    {
        cudaDeviceProp prop{};
        cudaGetDeviceProperties(&prop, 0);
        int runtimeVersion = 0, driverVersion = 0;
        cudaRuntimeGetVersion(&runtimeVersion);
        cudaDriverGetVersion(&driverVersion);
        std::printf("device: %s (sm_%d%d), CUDA runtime %d, driver %d\n", prop.name, prop.major, prop.minor,
            runtimeVersion, driverVersion);
    }
    else
    {
        cudaGetLastError();
        std::printf("device: none%s -> interface checks only; enqueue/numerics checks SKIPPED\n",
            interfaceOnly ? " (--interface-only)" : "");
    }

    // ---- load like IPluginRegistry::loadLibrary: dlopen, setLoggerFinder, getCreators ----
    void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!check(handle != nullptr, std::string("dlopen: ") + (handle ? "" : dlerror())))
    {
        std::printf("SUMMARY: %d passed, %d failed\n", gPassed, gFailed);
        return 1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
    auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(handle, "setLoggerFinder"));
    check(getCreators != nullptr, "library exports getCreators");
    check(setLoggerFinder != nullptr, "library exports setLoggerFinder");
    if (getCreators == nullptr || setLoggerFinder == nullptr)
    {
        std::printf("SUMMARY: %d passed, %d failed\n", gPassed, gFailed);
        return 1;
    }
    Finder finder(&gLogger);
    setLoggerFinder(&finder);

    int32_t nbCreators = 0;
    IPluginCreatorInterface* const* creators = getCreators(nbCreators);
    IPluginCreatorV3One* creator = nullptr;
    for (int32_t i = 0; creators != nullptr && i < nbCreators; ++i)
    {
        if (creators[i] != nullptr && std::strcmp(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0)
        {
            auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
            if (std::strcmp(c->getPluginName(), "DCNv2") == 0 && std::strcmp(c->getPluginVersion(), "1") == 0
                && std::strcmp(c->getPluginNamespace(), "") == 0)
            {
                creator = c;
            }
        }
    }
    if (!check(creator != nullptr, "getCreators lists an IPluginCreatorV3One DCNv2 / 1 / \"\""))
    {
        std::printf("SUMMARY: %d passed, %d failed\n", gPassed, gFailed);
        return 1;
    }
    {
        PluginFieldCollection const* fc = creator->getFieldNames();
        std::multiset<std::string> names;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i)
        {
            names.insert(fc->fields[i].name);
        }
        check(names == std::multiset<std::string>{"stride", "padding", "dilation", "groups", "deformable_group"},
            "getFieldNames is exactly {stride, padding, dilation, groups, deformable_group}");
    }

    checkBadFields(creator);
    checkBadShapes(creator);
    int casesRun = 0;
    for (auto const& c : cases())
    {
        casesRun += runCase(creator, c, gpu) ? 1 : 0;
    }
    std::printf("SUMMARY: %d checks passed, %d failed; %d cases run%s\n", gPassed, gFailed, casesRun,
        gpu ? "" : " (interface only: no GPU, numerics not checked)");
    // The library stays loaded: creators are static objects TensorRT would also keep until exit.
    return gFailed == 0 ? 0 : 1;
}
