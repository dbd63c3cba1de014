// DCNv2 (modulated deformable convolution v2) as a TensorRT IPluginV3 plugin, for TensorRT 10.x and 11.x.
//
// Creator "DCNv2", version "1", namespace "": TensorRT's ONNX parser maps a node with op_type DCNv2 onto it and
// passes the node's attributes stride, padding, dilation, groups, deformable_group as plugin fields.
// Inputs: input [N,C,H,W], offset [N,2*dg*kh*kw,Ho,Wo], mask [N,dg*kh*kw,Ho,Wo], weight [Cout,C/groups,kh,kw],
// bias [Cout]; output [N,Cout,Ho,Wo]. All tensors fp32 or all fp16, linear (NCHW) layout.
#pragma once

#include "NvInferRuntime.h"
#include "dcnv2Kernel.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace centernet_trt
{
namespace plugin
{

//! Convolution attributes as plugin fields carry them; each pair is (H, W).
struct DCNv2Attributes
{
    std::array<int32_t, 2> stride{1, 1};
    std::array<int32_t, 2> padding{0, 0};
    std::array<int32_t, 2> dilation{1, 1};
    int32_t groups{1};
    int32_t deformableGroups{1};
};

class DCNv2Plugin : public nvinfer1::IPluginV3,
                    public nvinfer1::IPluginV3OneCore,
                    public nvinfer1::IPluginV3OneBuild,
                    public nvinfer1::IPluginV3OneRuntime
{
public:
    static constexpr int32_t kNB_INPUTS = 5;
    static constexpr int32_t kNB_OUTPUTS = 1;
    //! Input positions, in the order the ONNX DCNv2 node lists them.
    static constexpr int32_t kINPUT = 0;
    static constexpr int32_t kOFFSET = 1;
    static constexpr int32_t kMASK = 2;
    static constexpr int32_t kWEIGHT = 3;
    static constexpr int32_t kBIAS = 4;
    //! Custom tactic (TensorRT times it against the default tactic 0, the fused kernel, and keeps the faster).
    static constexpr int32_t kTACTIC_IM2COL = 1;

    explicit DCNv2Plugin(DCNv2Attributes const& attributes);
    DCNv2Plugin(DCNv2Plugin const&) = default;
    DCNv2Plugin& operator=(DCNv2Plugin const&) = delete;
    ~DCNv2Plugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;
    int32_t getNbTactics() noexcept override;
    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;
    int32_t setTactic(int32_t tactic) noexcept override;

private:
    //! Kernel parameters for concrete input shapes (dims[i] = dims of input i); throws std::invalid_argument naming
    //! the inconsistency if the shapes do not fit together or the kernel does not support them.
    //! inputFormat / outputFormat / weightFormat: their layouts (kLINEAR, or channels-last kHWC8 / kHWC, read and
    //! written in place).
    DCNv2Params makeParams(nvinfer1::Dims const* dims, nvinfer1::DataType type, nvinfer1::TensorFormat inputFormat,
        nvinfer1::TensorFormat outputFormat, nvinfer1::TensorFormat weightFormat) const;
    //! cuBLAS for the im2col tactic, loaded now if it is not yet; throws std::runtime_error naming the fix if it
    //! cannot be (never called from enqueue: creating a handle allocates).
    void ensureBlas();

    DCNv2Attributes mAttributes;
    bool mAllowTF32{true};    //!< false when CENTERNET_DCNV2_STRICT_FP32=1 at creation (not serialized on purpose)
    std::string mDescription; //!< attributes as text: timing cache id and metadata string
    bool mIm2colOffered{false};         //!< configurePlugin: the im2col tactic takes this layer and cuBLAS loads
    int32_t mTactic{0};                 //!< setTactic: 0 = fused kernel, kTACTIC_IM2COL = im2col + cuBLAS
    std::shared_ptr<DCNv2Blas> mBlas;   //!< cuBLAS handle; clones share it, each execution context gets its own

    // Backing store for getFieldsToSerialize(); rebuilt on each call so copies never point into another object.
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class DCNv2PluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    DCNv2PluginCreator();
    ~DCNv2PluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mPluginAttributes;
    nvinfer1::PluginFieldCollection mFC{};
};

//! Parses and validates plugin fields; throws std::invalid_argument with a message naming the field and the fix.
DCNv2Attributes parseAttributes(nvinfer1::PluginFieldCollection const* fc);

} // namespace plugin
} // namespace centernet_trt
