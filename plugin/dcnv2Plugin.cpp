// DCNv2 TensorRT plugin: IPluginV3 (OneCore/OneBuild/OneRuntime) + IPluginCreatorV3One.
// Every method TensorRT calls catches everything: no exception may cross into TensorRT.
#include "dcnv2Plugin.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>

using namespace nvinfer1;

namespace centernet_trt
{
namespace plugin
{
namespace
{
constexpr char const* kPLUGIN_NAME{"DCNv2"};
constexpr char const* kPLUGIN_VERSION{"1"};
constexpr char const* kPLUGIN_NAMESPACE{""};

// Field names = the ONNX DCNv2 node's attribute names (the ONNX parser passes only these).
constexpr char const* kFIELD_STRIDE{"stride"};
constexpr char const* kFIELD_PADDING{"padding"};
constexpr char const* kFIELD_DILATION{"dilation"};
constexpr char const* kFIELD_GROUPS{"groups"};
constexpr char const* kFIELD_DEFORMABLE_GROUP{"deformable_group"};

// Set to 1 to keep fp32 layers off TF32 tensor cores (read when a plugin object is created, build or runtime).
constexpr char const* kSTRICT_FP32_ENV{"CENTERNET_DCNV2_STRICT_FP32"};

char const* const kINPUT_NAMES[DCNv2Plugin::kNB_INPUTS] = {"input", "offset", "mask", "weight", "bias"};

// ---- logging through TensorRT's logger (setLoggerFinder); stderr when the library is used without TensorRT ----
std::mutex gLoggerMutex;
ILoggerFinder* gLoggerFinder{nullptr};

void logMessage(ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const text = std::string("[DCNv2 plugin] ") + message;
        ILogger* logger{nullptr};
        {
            std::lock_guard<std::mutex> lock(gLoggerMutex);
            if (gLoggerFinder != nullptr)
            {
                logger = gLoggerFinder->findLogger();
            }
        }
        if (logger != nullptr)
        {
            logger->log(severity, text.c_str());
        }
        else if (severity <= ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", text.c_str());
        }
    }
    catch (...)
    {
        // Logging must never be the reason an exception escapes.
    }
}

void logError(std::string const& message) noexcept
{
    logMessage(ILogger::Severity::kERROR, message);
}

// One place that turns the exception being handled into a logged error, so each API method stays a thin try/catch.
// `layer` names the plugin instance when known (createPlugin gets the layer's name).
void logException(char const* where, char const* layer = nullptr) noexcept
{
    try
    {
        std::string const prefix
            = std::string(where) + (layer != nullptr && layer[0] != '\0' ? std::string(" '") + layer + "'" : "");
        try
        {
            throw;
        }
        catch (std::exception const& e)
        {
            logError(prefix + ": " + e.what());
        }
        catch (...)
        {
            logError(prefix + ": unknown exception");
        }
    }
    catch (...)
    {
    }
}

bool strictFp32FromEnv()
{
    char const* value = std::getenv(kSTRICT_FP32_ENV);
    return value != nullptr && value[0] != '\0' && std::strcmp(value, "0") != 0;
}

char const* typeName(DataType type)
{
    switch (type)
    {
    case DataType::kFLOAT: return "fp32";
    case DataType::kHALF: return "fp16";
    case DataType::kINT8: return "int8";
    case DataType::kINT32: return "int32";
    case DataType::kBOOL: return "bool";
    default: return "unsupported type";
    }
}

char const* fieldTypeName(PluginFieldType type)
{
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "FLOAT16";
    case PluginFieldType::kFLOAT32: return "FLOAT32";
    case PluginFieldType::kFLOAT64: return "FLOAT64";
    case PluginFieldType::kINT8: return "INT8";
    case PluginFieldType::kINT16: return "INT16";
    case PluginFieldType::kINT32: return "INT32";
    case PluginFieldType::kCHAR: return "CHAR";
    case PluginFieldType::kDIMS: return "DIMS";
    case PluginFieldType::kINT64: return "INT64";
    default: return "another type";
    }
}

std::string dimsToString(Dims const& dims)
{
    std::ostringstream out;
    out << "[";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        out << (i ? "," : "") << dims.d[i];
    }
    out << "]";
    return out.str();
}

bool isSupportedType(DataType type)
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

//! The input's, the output's and the weight's formats: linear, or channels-last, which the kernel reads in place (no
//! transpose pass) and writes directly, and which TensorRT's own fp16/fp32 convolutions around the layer often use,
//! so no reformat is needed before or after it; a channels-last weight ([Cout][kh][kw][Cin/groups]) is what the
//! warpgroup kernel's stages hold, copied straight from it with no pack pass. kHWC8 pads C to a multiple of 8, so
//! it is taken only where the channels already are one (the kernel's channel pitch is C); kHWC is TensorRT's fp32
//! channels-last format. Offset, mask and bias are linear.
bool isSupportedIOFormat(DataType type, TensorFormat format, int64_t channels)
{
    switch (format)
    {
    case TensorFormat::kLINEAR: return true;
    case TensorFormat::kHWC8: return type == DataType::kHALF && channels > 0 && channels % 8 == 0;
    case TensorFormat::kHWC: return type == DataType::kFLOAT;
    default: return false;
    }
}

int64_t channelsOf(Dims const& dims)
{
    return dims.nbDims == 4 ? dims.d[1] : -1;
}

//! Whether tensor `pos` (the inputs in order, then the output) may come in desc's format when the layer runs in
//! `type`: the input, the weight and the output linear or channels-last, offset, mask and bias linear.
bool isSupportedFormatAt(int32_t pos, DataType type, PluginTensorDesc const& desc)
{
    bool const channelsLastAllowed
        = pos == DCNv2Plugin::kINPUT || pos == DCNv2Plugin::kWEIGHT || pos == DCNv2Plugin::kNB_INPUTS;
    return channelsLastAllowed ? isSupportedIOFormat(type, desc.format, channelsOf(desc.dims))
                               : desc.format == TensorFormat::kLINEAR;
}

DCNv2DataType toKernelType(DataType type)
{
    if (type == DataType::kHALF)
    {
        return DCNv2DataType::kHALF;
    }
    if (type == DataType::kFLOAT)
    {
        return DCNv2DataType::kFLOAT;
    }
    throw std::invalid_argument(std::string("tensors are ") + typeName(type) + "; DCNv2 runs fp32 or fp16 only");
}

int32_t toInt(int64_t value, char const* what)
{
    if (value < 0 || value > INT32_MAX)
    {
        throw std::invalid_argument(std::string(what) + " = " + std::to_string(value) + " is out of range");
    }
    return static_cast<int32_t>(value);
}

// Reads an integer plugin field as 1 value (scalar) or, when allowPair, 1 or 2 values (a single value means both).
std::array<int32_t, 2> readIntField(PluginField const& field, bool allowPair)
{
    std::string const name = field.name;
    char const* shape = allowPair ? "1 or 2 values" : "1 value";
    if (field.type != PluginFieldType::kINT32 && field.type != PluginFieldType::kINT64)
    {
        throw std::invalid_argument(
            "field '" + name + "' has type " + fieldTypeName(field.type) + "; expected INT32 (" + shape + ")");
    }
    int32_t const maxLength = allowPair ? 2 : 1;
    if (field.length < 1 || field.length > maxLength)
    {
        throw std::invalid_argument(
            "field '" + name + "' has " + std::to_string(field.length) + " values; expected " + shape);
    }
    if (field.data == nullptr)
    {
        throw std::invalid_argument("field '" + name + "' has no data");
    }
    std::array<int64_t, 2> values{};
    for (int32_t i = 0; i < field.length; ++i)
    {
        values[i] = field.type == PluginFieldType::kINT32 ? static_cast<int32_t const*>(field.data)[i]
                                                          : static_cast<int64_t const*>(field.data)[i];
        if (values[i] < INT32_MIN || values[i] > INT32_MAX)
        {
            throw std::invalid_argument("field '" + name + "' value " + std::to_string(values[i]) + " is out of range");
        }
    }
    if (field.length == 1)
    {
        values[1] = values[0];
    }
    return {static_cast<int32_t>(values[0]), static_cast<int32_t>(values[1])};
}

void requireAtLeast(char const* name, std::array<int32_t, 2> const& values, int32_t minimum)
{
    for (int32_t v : values)
    {
        if (v < minimum)
        {
            throw std::invalid_argument(std::string("field '") + name + "' = " + std::to_string(v)
                                        + "; it must be >= " + std::to_string(minimum));
        }
    }
}
} // namespace

// ================================================ fields =============================================================

DCNv2Attributes parseAttributes(PluginFieldCollection const* fc)
{
    if (fc == nullptr || (fc->nbFields > 0 && fc->fields == nullptr))
    {
        throw std::invalid_argument("no plugin fields given; DCNv2 needs stride, padding, dilation, groups and "
                                    "deformable_group");
    }
    DCNv2Attributes attributes;
    bool seen[5] = {false, false, false, false, false};
    char const* const names[5]
        = {kFIELD_STRIDE, kFIELD_PADDING, kFIELD_DILATION, kFIELD_GROUPS, kFIELD_DEFORMABLE_GROUP};
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& field = fc->fields[i];
        if (field.name == nullptr)
        {
            throw std::invalid_argument("plugin field #" + std::to_string(i) + " has no name");
        }
        int32_t const which = static_cast<int32_t>(std::find_if(names, names + 5,
                                                       [&](char const* n)
                                                       {
                                                           return std::strcmp(n, field.name) == 0;
                                                       })
                                                   - names);
        if (which == 5)
        {
            // The ONNX parser only passes fields we list, so an extra one comes from hand-written code: say so.
            logMessage(ILogger::Severity::kWARNING, std::string("ignoring unknown plugin field '") + field.name + "'");
            continue;
        }
        if (seen[which])
        {
            throw std::invalid_argument(std::string("field '") + field.name + "' is given twice");
        }
        seen[which] = true;
        switch (which)
        {
        case 0: attributes.stride = readIntField(field, true); break;
        case 1: attributes.padding = readIntField(field, true); break;
        case 2: attributes.dilation = readIntField(field, true); break;
        case 3: attributes.groups = readIntField(field, false)[0]; break;
        default: attributes.deformableGroups = readIntField(field, false)[0]; break;
        }
    }
    for (int32_t i = 0; i < 5; ++i)
    {
        if (!seen[i])
        {
            // No defaults on purpose: a guessed padding or stride would build an engine that computes the wrong thing.
            throw std::invalid_argument(
                std::string("missing field '") + names[i]
                + "'; DCNv2 needs all of stride, padding, dilation, groups, deformable_group (the ONNX DCNv2 node "
                  "must carry them as attributes)");
        }
    }
    requireAtLeast(kFIELD_STRIDE, attributes.stride, 1);
    requireAtLeast(kFIELD_PADDING, attributes.padding, 0);
    requireAtLeast(kFIELD_DILATION, attributes.dilation, 1);
    requireAtLeast(kFIELD_GROUPS, {attributes.groups, attributes.groups}, 1);
    requireAtLeast(kFIELD_DEFORMABLE_GROUP, {attributes.deformableGroups, attributes.deformableGroups}, 1);
    return attributes;
}

// ================================================ plugin =============================================================

DCNv2Plugin::DCNv2Plugin(DCNv2Attributes const& attributes)
    : mAttributes(attributes)
    , mAllowTF32(!strictFp32FromEnv())
{
    std::ostringstream text;
    text << "stride=" << mAttributes.stride[0] << "," << mAttributes.stride[1] << ";padding=" << mAttributes.padding[0]
         << "," << mAttributes.padding[1] << ";dilation=" << mAttributes.dilation[0] << "," << mAttributes.dilation[1]
         << ";groups=" << mAttributes.groups << ";deformable_group=" << mAttributes.deformableGroups
         << ";fp32_math=" << (mAllowTF32 ? "tf32" : "strict");
    mDescription = text.str();
}

IPluginCapability* DCNv2Plugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    try
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
    }
    catch (...)
    {
        logException("getCapabilityInterface");
    }
    return nullptr;
}

IPluginV3* DCNv2Plugin::clone() noexcept
{
    try
    {
        return new DCNv2Plugin(*this);
    }
    catch (...)
    {
        logException("clone");
    }
    return nullptr;
}

char const* DCNv2Plugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* DCNv2Plugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* DCNv2Plugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t DCNv2Plugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

DCNv2Params DCNv2Plugin::makeParams(Dims const* dims, DataType type, TensorFormat inputFormat,
    TensorFormat outputFormat, TensorFormat weightFormat) const
{
    int32_t const expectedRank[kNB_INPUTS] = {4, 4, 4, 4, 1};
    for (int32_t i = 0; i < kNB_INPUTS; ++i)
    {
        if (dims[i].nbDims != expectedRank[i])
        {
            throw std::invalid_argument(std::string(kINPUT_NAMES[i]) + " has shape " + dimsToString(dims[i])
                                        + "; expected " + std::to_string(expectedRank[i]) + " dimensions");
        }
    }
    Dims const& x = dims[kINPUT];
    Dims const& w = dims[kWEIGHT];
    DCNv2Params p{};
    p.batch = toInt(x.d[0], "batch");
    p.inChannels = toInt(x.d[1], "input channels");
    p.inHeight = toInt(x.d[2], "input height");
    p.inWidth = toInt(x.d[3], "input width");
    p.outChannels = toInt(w.d[0], "weight output channels");
    p.kernelH = toInt(w.d[2], "kernel height");
    p.kernelW = toInt(w.d[3], "kernel width");
    p.strideH = mAttributes.stride[0];
    p.strideW = mAttributes.stride[1];
    p.padH = mAttributes.padding[0];
    p.padW = mAttributes.padding[1];
    p.dilationH = mAttributes.dilation[0];
    p.dilationW = mAttributes.dilation[1];
    p.groups = mAttributes.groups;
    p.deformableGroups = mAttributes.deformableGroups;
    p.allowTF32 = mAllowTF32;
    p.inputNHWC = inputFormat != TensorFormat::kLINEAR;
    p.outputNHWC = outputFormat != TensorFormat::kLINEAR;
    p.weightNHWC = weightFormat != TensorFormat::kLINEAR;
    if (p.kernelH < 1 || p.kernelW < 1 || p.outChannels < 1)
    {
        throw std::invalid_argument(
            "weight has shape " + dimsToString(w) + "; expected [Cout>=1, C/groups, kh>=1, kw>=1]");
    }
    p.outHeight = dcnv2OutSize(p.inHeight, p.kernelH, p.strideH, p.padH, p.dilationH);
    p.outWidth = dcnv2OutSize(p.inWidth, p.kernelW, p.strideW, p.padW, p.dilationW);
    if (p.outHeight < 1 || p.outWidth < 1)
    {
        throw std::invalid_argument("input " + dimsToString(x) + " is too small for a " + std::to_string(p.kernelH)
                                    + "x" + std::to_string(p.kernelW) + " kernel with this padding/dilation ("
                                    + mDescription + ")");
    }
    if (static_cast<int64_t>(w.d[1]) * p.groups != p.inChannels)
    {
        throw std::invalid_argument("weight " + dimsToString(w) + " has " + std::to_string(w.d[1])
                                    + " input channels per group; with groups=" + std::to_string(p.groups)
                                    + " the input needs " + std::to_string(w.d[1] * p.groups) + " channels but has "
                                    + std::to_string(p.inChannels));
    }
    if (p.outChannels % p.groups != 0)
    {
        throw std::invalid_argument("groups=" + std::to_string(p.groups) + " does not divide the "
                                    + std::to_string(p.outChannels) + " output channels of weight " + dimsToString(w));
    }
    if (p.inChannels % p.deformableGroups != 0)
    {
        throw std::invalid_argument("deformable_group=" + std::to_string(p.deformableGroups)
                                    + " does not divide the input's " + std::to_string(p.inChannels) + " channels");
    }
    int64_t const taps = static_cast<int64_t>(p.deformableGroups) * p.kernelH * p.kernelW;
    auto checkSampling = [&](int32_t index, int64_t channels, char const* rule)
    {
        Dims const& d = dims[index];
        if (d.d[0] != p.batch || d.d[1] != channels || d.d[2] != p.outHeight || d.d[3] != p.outWidth)
        {
            throw std::invalid_argument(std::string(kINPUT_NAMES[index]) + " has shape " + dimsToString(d)
                                        + "; expected [" + std::to_string(p.batch) + "," + std::to_string(channels)
                                        + "," + std::to_string(p.outHeight) + "," + std::to_string(p.outWidth) + "] ("
                                        + rule + ", output spatial size)");
        }
    };
    checkSampling(kOFFSET, 2 * taps, "N, 2*deformable_group*kh*kw");
    checkSampling(kMASK, taps, "N, deformable_group*kh*kw");
    if (dims[kBIAS].d[0] != p.outChannels)
    {
        throw std::invalid_argument("bias has shape " + dimsToString(dims[kBIAS]) + "; expected ["
                                    + std::to_string(p.outChannels) + "] (the weight's output channels)");
    }
    char const* unsupported = dcnv2CheckSupported(p, toKernelType(type));
    if (unsupported != nullptr)
    {
        throw std::invalid_argument(std::string("not supported by the DCNv2 kernel: ") + unsupported + " ("
                                    + mDescription + ", input " + dimsToString(x) + ", weight " + dimsToString(w) + ", "
                                    + typeName(type) + ")");
    }
    return p;
}

int32_t DCNv2Plugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || outputTypes == nullptr || inputTypes == nullptr)
        {
            throw std::invalid_argument("expected 5 inputs (input, offset, mask, weight, bias) and 1 output, got "
                                        + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs)
                                        + " outputs");
        }
        if (!isSupportedType(inputTypes[0]))
        {
            throw std::invalid_argument(std::string("input is ") + typeName(inputTypes[0])
                                        + "; DCNv2 runs fp32 or fp16 (all five inputs in one type)");
        }
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            if (inputTypes[i] != inputTypes[0])
            {
                throw std::invalid_argument(std::string("all inputs must share one type, fp32 or fp16; input is ")
                                            + typeName(inputTypes[0]) + " but " + kINPUT_NAMES[i] + " is "
                                            + typeName(inputTypes[i])
                                            + " (export the ONNX graph with weight and bias in the input's precision)");
            }
        }
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    catch (...)
    {
        logException("getOutputDataTypes");
    }
    return 1;
}

int32_t DCNv2Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept
{
    try
    {
        if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || inputs == nullptr || outputs == nullptr)
        {
            throw std::invalid_argument("expected 5 inputs (input, offset, mask, weight, bias) and 1 output");
        }
        if (inputs[kINPUT].nbDims != 4 || inputs[kWEIGHT].nbDims != 4)
        {
            throw std::invalid_argument("input and weight must be 4-D (NCHW and [Cout, C/groups, kh, kw]), got "
                                        + std::to_string(inputs[kINPUT].nbDims) + "-D and "
                                        + std::to_string(inputs[kWEIGHT].nbDims) + "-D");
        }
        auto checked = [](IDimensionExpr const* e)
        {
            if (e == nullptr)
            {
                throw std::runtime_error("IExprBuilder returned no expression");
            }
            return e;
        };
        // out = floor((in + 2*pad - dilation*(k-1) - 1) / stride) + 1, as an expression so N/H/W may stay dynamic.
        auto outSize
            = [&](IDimensionExpr const* in, IDimensionExpr const* k, int32_t stride, int32_t pad, int32_t dilation)
        {
            IDimensionExpr const* kMinus1
                = checked(exprBuilder.operation(DimensionOperation::kSUB, *k, *checked(exprBuilder.constant(1))));
            IDimensionExpr const* span = checked(
                exprBuilder.operation(DimensionOperation::kPROD, *checked(exprBuilder.constant(dilation)), *kMinus1));
            IDimensionExpr const* padded = checked(exprBuilder.operation(
                DimensionOperation::kSUM, *in, *checked(exprBuilder.constant(2 * int64_t{pad} - 1))));
            IDimensionExpr const* numerator = checked(exprBuilder.operation(DimensionOperation::kSUB, *padded, *span));
            IDimensionExpr const* steps = checked(exprBuilder.operation(
                DimensionOperation::kFLOOR_DIV, *numerator, *checked(exprBuilder.constant(stride))));
            return checked(exprBuilder.operation(DimensionOperation::kSUM, *steps, *checked(exprBuilder.constant(1))));
        };
        DimsExprs const& x = inputs[kINPUT];
        DimsExprs const& w = inputs[kWEIGHT];
        outputs[0].nbDims = 4;
        outputs[0].d[0] = x.d[0];
        outputs[0].d[1] = w.d[0];
        outputs[0].d[2]
            = outSize(x.d[2], w.d[2], mAttributes.stride[0], mAttributes.padding[0], mAttributes.dilation[0]);
        outputs[0].d[3]
            = outSize(x.d[3], w.d[3], mAttributes.stride[1], mAttributes.padding[1], mAttributes.dilation[1]);
        return 0;
    }
    catch (...)
    {
        logException("getOutputShapes");
    }
    return 1;
}

bool DCNv2Plugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (inOut == nullptr || nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || pos < 0
            || pos >= nbInputs + nbOutputs)
        {
            return false;
        }
        PluginTensorDesc const& desc = inOut[pos].desc;
        // One type for everything, decided by the first tensor: fp32 or fp16.
        bool const typeOk = pos == 0 ? isSupportedType(desc.type) : desc.type == inOut[0].desc.type;
        return typeOk && isSupportedFormatAt(pos, desc.type, desc);
    }
    catch (...)
    {
        logException("supportsFormatCombination");
    }
    return false;
}

int32_t DCNv2Plugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS)
        {
            throw std::invalid_argument("expected 5 inputs (input, offset, mask, weight, bias) and 1 output, got "
                                        + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs)
                                        + " outputs");
        }
        DataType const type = in[0].desc.type;
        for (int32_t i = 0; i <= nbInputs; ++i)
        {
            PluginTensorDesc const& desc = i < nbInputs ? in[i].desc : out[0].desc;
            char const* name = i < nbInputs ? kINPUT_NAMES[i] : "output";
            if (desc.type != type || !isSupportedFormatAt(i, type, desc) || !isSupportedType(type))
            {
                throw std::invalid_argument(std::string(name) + " is " + typeName(desc.type) + " in format "
                    + std::to_string(static_cast<int32_t>(desc.format))
                    + "; DCNv2 needs all tensors in one type (fp32 or fp16), linear format (the input, the weight and "
                      "the output may also be kHWC8 in fp16 with their channels a multiple of 8, or kHWC in fp32)");
            }
        }
        // Check the profile's smallest and largest shapes: both are concrete even when N/H/W are dynamic.
        DCNv2Params largest{};
        bool largestConcrete = false;
        for (int32_t bound = 0; bound < 2; ++bound)
        {
            Dims dims[kNB_INPUTS];
            bool concrete = true;
            for (int32_t i = 0; i < kNB_INPUTS; ++i)
            {
                dims[i] = bound == 0 ? in[i].min : in[i].max;
                concrete = concrete && dims[i].nbDims == in[i].desc.dims.nbDims
                           && std::all_of(dims[i].d, dims[i].d + dims[i].nbDims,
                               [](int64_t v)
                               {
                                   return v >= 0;
                               });
            }
            if (concrete)
            {
                largest = makeParams(dims, type, in[kINPUT].desc.format, out[0].desc.format, in[kWEIGHT].desc.format);
                largestConcrete = bound == 1;
            }
        }
        // The im2col tactic depends only on channels, kernel size and groups (static in the weight's shape), so the
        // profile's largest shape decides; offered only where cuBLAS loads (else TensorRT never times it).
        mIm2colOffered = largestConcrete
            && dcnv2AlgoUnsupported(largest, toKernelType(type), DCNv2Algo::kIm2colGemm) == nullptr;
        if (mIm2colOffered)
        {
            try
            {
                ensureBlas();
            }
            catch (std::runtime_error const&)
            {
                mIm2colOffered = false; // no cuBLAS here: the fused kernel alone (not an error)
            }
        }
        return 0;
    }
    catch (...)
    {
        logException("configurePlugin");
    }
    return 1;
}

size_t DCNv2Plugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    try
    {
        if (inputs == nullptr || nbInputs != kNB_INPUTS)
        {
            return 0;
        }
        // Enough for every shape of the profile: take the larger of its min and max shapes.
        size_t size = 0;
        for (int32_t bound = 0; bound < 2; ++bound)
        {
            Dims dims[kNB_INPUTS];
            for (int32_t i = 0; i < kNB_INPUTS; ++i)
            {
                dims[i] = bound == 0 ? inputs[i].min : inputs[i].max;
            }
            DataType const type = inputs[0].desc.type;
            // (the output's layout changes no workspace byte)
            DCNv2Params const p = makeParams(
                dims, type, inputs[kINPUT].desc.format, TensorFormat::kLINEAR, inputs[kWEIGHT].desc.format);
            size = std::max(size, dcnv2WorkspaceSize(p, toKernelType(type), DCNv2Algo::kFused));
            // TensorRT may size the workspace before it picks a tactic: room for either
            if (mIm2colOffered || mTactic == kTACTIC_IM2COL)
            {
                size = std::max(size, dcnv2WorkspaceSize(p, toKernelType(type), DCNv2Algo::kIm2colGemm));
            }
        }
        return size;
    }
    catch (...)
    {
        logException("getWorkspaceSize");
    }
    return 0;
}

char const* DCNv2Plugin::getTimingCacheID() noexcept
{
    return mDescription.c_str();
}

char const* DCNv2Plugin::getMetadataString() noexcept
{
    return mDescription.c_str();
}

int32_t DCNv2Plugin::getNbTactics() noexcept
{
    return mIm2colOffered ? 1 : 0;
}

int32_t DCNv2Plugin::getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept
{
    try
    {
        if (nbTactics != getNbTactics() || (nbTactics > 0 && tactics == nullptr))
        {
            throw std::invalid_argument("getValidTactics called with room for " + std::to_string(nbTactics)
                                        + " tactics; getNbTactics() is " + std::to_string(getNbTactics()));
        }
        if (nbTactics == 1)
        {
            tactics[0] = kTACTIC_IM2COL;
        }
        return 0;
    }
    catch (...)
    {
        logException("getValidTactics");
    }
    return 1;
}

int32_t DCNv2Plugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        if (in == nullptr || out == nullptr || nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS)
        {
            throw std::invalid_argument("expected 5 inputs and 1 output");
        }
        Dims dims[kNB_INPUTS];
        for (int32_t i = 0; i < kNB_INPUTS; ++i)
        {
            dims[i] = in[i].dims;
        }
        DCNv2Params const p = makeParams(dims, in[0].type, in[kINPUT].format, out[0].format, in[kWEIGHT].format);
        Dims const& o = out[0].dims;
        if (o.nbDims != 4 || o.d[0] != p.batch || o.d[1] != p.outChannels || o.d[2] != p.outHeight
            || o.d[3] != p.outWidth)
        {
            throw std::invalid_argument("output has shape " + dimsToString(o) + "; expected [" + std::to_string(p.batch)
                                        + "," + std::to_string(p.outChannels) + "," + std::to_string(p.outHeight) + ","
                                        + std::to_string(p.outWidth) + "]");
        }
        return 0;
    }
    catch (...)
    {
        logException("onShapeChange");
    }
    return 1;
}

int32_t DCNv2Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr)
        {
            throw std::invalid_argument("null tensor descriptors or pointers");
        }
        DataType const type = inputDesc[0].type;
        for (int32_t i = 0; i < kNB_INPUTS; ++i)
        {
            if (inputDesc[i].type != type)
            {
                throw std::invalid_argument(std::string(kINPUT_NAMES[i]) + " is " + typeName(inputDesc[i].type)
                                            + " but input is " + typeName(type));
            }
        }
        if (outputDesc[0].type != type)
        {
            throw std::invalid_argument("output type differs from the input type");
        }
        for (int32_t i = 0; i <= kNB_INPUTS; ++i)
        {
            PluginTensorDesc const& desc = i < kNB_INPUTS ? inputDesc[i] : outputDesc[0];
            if (!isSupportedFormatAt(i, type, desc))
            {
                throw std::invalid_argument(std::string(i < kNB_INPUTS ? kINPUT_NAMES[i] : "output") + " in format "
                                            + std::to_string(static_cast<int32_t>(desc.format))
                                            + ", which supportsFormatCombination never offers");
            }
        }
        // Shapes come from this call's descriptors, so every enqueue runs with exactly the shapes it is given.
        Dims dims[kNB_INPUTS];
        for (int32_t i = 0; i < kNB_INPUTS; ++i)
        {
            dims[i] = inputDesc[i].dims;
        }
        if (dims[kINPUT].nbDims == 4 && dims[kINPUT].d[0] == 0)
        {
            return 0; // empty batch: nothing to write
        }
        DCNv2Params const p
            = makeParams(dims, type, inputDesc[kINPUT].format, outputDesc[0].format, inputDesc[kWEIGHT].format);
        DCNv2DataType const kernelType = toKernelType(type);
        DCNv2Algo const algo = mTactic == kTACTIC_IM2COL ? DCNv2Algo::kIm2colGemm : DCNv2Algo::kFused;
        if (algo == DCNv2Algo::kIm2colGemm && !mBlas)
        {
            throw std::runtime_error("tactic " + std::to_string(mTactic) + " (im2col + cuBLAS) without a cuBLAS handle");
        }
        if (char const* why = dcnv2AlgoUnsupported(p, kernelType, algo))
        {
            throw std::invalid_argument(why);
        }
        if (workspace == nullptr)
        {
            size_t const workspaceSize = dcnv2WorkspaceSize(p, kernelType, algo);
            if (workspaceSize > 0)
            {
                throw std::invalid_argument(
                    "the kernel needs " + std::to_string(workspaceSize) + " bytes of workspace but none was given");
            }
        }
        // TensorRT gives at least what getWorkspaceSize asked for this shape's profile, which covers this shape's
        // dcnv2WorkspaceSize: the forward takes that size from its own launch plan (one plan per enqueue, not two).
        cudaError_t const status = dcnv2Forward(p, kernelType, inputs[kINPUT], inputs[kOFFSET], inputs[kMASK],
            inputs[kWEIGHT], inputs[kBIAS], outputs[0], workspace, kDCNv2WorkspaceAsPlanned, stream, algo,
            mBlas.get());
        if (status != cudaSuccess)
        {
            throw std::runtime_error(std::string("kernel launch failed: ") + cudaGetErrorString(status));
        }
        return 0;
    }
    catch (...)
    {
        logException("enqueue");
    }
    return 1;
}

IPluginV3* DCNv2Plugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    try
    {
        // Each execution context gets its own copy and, for the im2col tactic, its own cuBLAS handle (contexts may
        // enqueue concurrently on different streams; a handle's stream and workspace are set per call).
        std::unique_ptr<DCNv2Plugin> p(new DCNv2Plugin(*this));
        p->mBlas.reset();
        if (p->mTactic == kTACTIC_IM2COL)
        {
            p->ensureBlas();
        }
        return p.release();
    }
    catch (...)
    {
        logException("attachToContext");
    }
    return nullptr;
}

void DCNv2Plugin::ensureBlas()
{
    if (mBlas)
    {
        return;
    }
    char const* why = nullptr;
    mBlas.reset(dcnv2BlasCreate(&why), dcnv2BlasDestroy);
    if (!mBlas)
    {
        throw std::runtime_error(std::string(why ? why : "cuBLAS unavailable")
                                 + " (this engine chose the im2col tactic for this layer where it was built; rebuild "
                                   "the engine on this machine, or make cuBLAS loadable here)");
    }
}

int32_t DCNv2Plugin::setTactic(int32_t tactic) noexcept
{
    try
    {
        if (tactic != 0 && tactic != kTACTIC_IM2COL)
        {
            throw std::invalid_argument("unknown tactic " + std::to_string(tactic) + " (0 = fused kernel, "
                                        + std::to_string(kTACTIC_IM2COL) + " = im2col + cuBLAS)");
        }
        if (tactic == kTACTIC_IM2COL)
        {
            ensureBlas();
        }
        mTactic = tactic;
        return 0;
    }
    catch (...)
    {
        logException("setTactic");
    }
    return 1;
}

PluginFieldCollection const* DCNv2Plugin::getFieldsToSerialize() noexcept
{
    try
    {
        // Always the 2-value form: createPlugin reads it back exactly (no default is involved).
        mDataToSerialize.clear();
        mDataToSerialize.emplace_back(kFIELD_STRIDE, mAttributes.stride.data(), PluginFieldType::kINT32, 2);
        mDataToSerialize.emplace_back(kFIELD_PADDING, mAttributes.padding.data(), PluginFieldType::kINT32, 2);
        mDataToSerialize.emplace_back(kFIELD_DILATION, mAttributes.dilation.data(), PluginFieldType::kINT32, 2);
        mDataToSerialize.emplace_back(kFIELD_GROUPS, &mAttributes.groups, PluginFieldType::kINT32, 1);
        mDataToSerialize.emplace_back(
            kFIELD_DEFORMABLE_GROUP, &mAttributes.deformableGroups, PluginFieldType::kINT32, 1);
        mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
        mFCToSerialize.fields = mDataToSerialize.data();
        return &mFCToSerialize;
    }
    catch (...)
    {
        logException("getFieldsToSerialize");
    }
    return nullptr;
}

// ================================================ creator ============================================================

DCNv2PluginCreator::DCNv2PluginCreator()
{
    mPluginAttributes.emplace_back(kFIELD_STRIDE, nullptr, PluginFieldType::kINT32, 2);
    mPluginAttributes.emplace_back(kFIELD_PADDING, nullptr, PluginFieldType::kINT32, 2);
    mPluginAttributes.emplace_back(kFIELD_DILATION, nullptr, PluginFieldType::kINT32, 2);
    mPluginAttributes.emplace_back(kFIELD_GROUPS, nullptr, PluginFieldType::kINT32, 1);
    mPluginAttributes.emplace_back(kFIELD_DEFORMABLE_GROUP, nullptr, PluginFieldType::kINT32, 1);
    mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
    mFC.fields = mPluginAttributes.data();
}

char const* DCNv2PluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* DCNv2PluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* DCNv2PluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* DCNv2PluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* DCNv2PluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        return new DCNv2Plugin(parseAttributes(fc));
    }
    catch (...)
    {
        logException("createPlugin", name);
    }
    return nullptr;
}

} // namespace plugin
} // namespace centernet_trt

// ================================================ library entry points ===============================================
// What IPluginRegistry::loadLibrary, trtexec --dynamicPlugins and Python's load_library look up with dlsym.
// (TENSORRTAPI exports only inside TensorRT's own build, and this library is built with hidden visibility.)
#define DCNV2_PLUGIN_EXPORT __attribute__((visibility("default")))

extern "C" DCNV2_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    try
    {
        std::lock_guard<std::mutex> lock(centernet_trt::plugin::gLoggerMutex);
        centernet_trt::plugin::gLoggerFinder = finder;
    }
    catch (...)
    {
        // A mutex that cannot lock leaves the previous logger in place; nothing to report it to.
    }
}

extern "C" DCNV2_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    try
    {
        static centernet_trt::plugin::DCNv2PluginCreator creator;
        static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
        nbCreators = 1;
        return creators;
    }
    catch (...)
    {
        centernet_trt::plugin::logException("getCreators");
    }
    nbCreators = 0;
    return nullptr;
}
