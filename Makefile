# Thin front over the Python entry points; every target prints nothing you could not run by hand.
# BATCH: 1 | N | dynamic | min:opt:max (the last exports a dynamic batch and builds that profile).
# INPUT: HxW | one side | dynamic (any H and W that are multiples of 32, hourglass 128: for keep_res);
# HW: min:opt:max sizes of a dynamic-input engine (default 128x128:<exported size>:1024x1024).
# Variables: ARCH TASK MODEL INPUT BATCH DCN_OP OPSET NUM_CLASSES DCN_DOMAIN SLIM UNSAFE_LOAD PRECISION HW ONNX
#            ENGINE PLUGIN IMG BACKEND THRESH KEEP_RES TENSORRT_ROOT
SHELL := /bin/bash
VENV      ?= .venv
PY        ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
BUILD     ?= build
ARCH      ?= resdcn_18
TASK      ?= ctdet
MODEL     ?= random
INPUT     ?=
BATCH     ?= 1
DCN_OP    ?= dcnv2
OPSET     ?=
NUM_CLASSES ?=
DCN_DOMAIN ?=
SLIM      ?=
UNSAFE_LOAD ?=
PRECISION ?= fp16
HW        ?=
NAME      ?= $(TASK)_$(ARCH)
ONNX      ?= $(BUILD)/$(NAME).onnx
ENGINE    ?= $(BUILD)/$(NAME)_$(PRECISION).engine
PLUGIN    ?= $(BUILD)/libdcnv2_plugin.so
IMG       ?= $(BUILD)/CenterNet/images
BACKEND   ?= tensorrt
THRESH    ?= 0.3
KEEP_RES  ?=
TORCH_SPEC ?=

opt = $(if $(strip $(2)),$(1) $(2))

.PHONY: all install patch check-patch onnx check-onnx plugin engine infer compare bench bench-model test clean help
all: install patch onnx check-onnx   ## install, patch upstream, export ARCH (random weights by default), check it

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(VENV)/.installed   ## create .venv and install this package with its test extras
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install $(TORCH_SPEC) -e '.[test]'
	touch $@

patch:   ## clone/cache upstream, check out the pinned commit, apply patches/ and overlay/
	$(PY) apply_patches.py

check-patch:   ## report the tree's state without changing it
	$(PY) apply_patches.py --check

EXPORT_ARGS = --arch $(ARCH) --task $(TASK) --model $(MODEL) --batch $(if $(findstring :,$(BATCH)),dynamic,$(BATCH)) \
  --dcn-op $(DCN_OP) $(call opt,--input,$(INPUT)) $(call opt,--opset,$(OPSET)) $(call opt,--num-classes,$(NUM_CLASSES)) \
  $(if $(DCN_DOMAIN),--dcn-domain "$(DCN_DOMAIN:none=)") $(if $(SLIM),--slim) $(if $(UNSAFE_LOAD),--unsafe-load)
onnx:   ## export build/$(TASK)_$(ARCH).onnx (INPUT=HxW, or INPUT=dynamic for any size)
	$(PY) -m centernet_trt.export $(strip $(EXPORT_ARGS)) --output $(ONNX)

check-onnx:   ## ONNX Runtime (CPU) vs the patched PyTorch model, every output
	$(PY) -m centernet_trt.check_onnx --onnx $(ONNX)

plugin:   ## build $(PLUGIN) (TensorRT 10.x/11.x headers; TENSORRT_ROOT=... if not found)
	cmake -S plugin -B $(BUILD)/plugin -DCMAKE_BUILD_TYPE=Release $(if $(TENSORRT_ROOT),-DTENSORRT_ROOT=$(TENSORRT_ROOT))
	cmake --build $(BUILD)/plugin -j
	cp $(BUILD)/plugin/libdcnv2_plugin.so $(PLUGIN)

engine:   ## build $(ENGINE) from $(ONNX) with the plugin (BATCH=min:opt:max, HW=min:opt:max for INPUT=dynamic)
	$(PY) -m centernet_trt.engine --onnx $(ONNX) --plugin $(PLUGIN) --precision $(PRECISION) \
	  $(strip $(call opt,--batch,$(if $(findstring :,$(BATCH)),$(BATCH))) $(call opt,--hw,$(HW)) --output $(ENGINE))

infer:   ## detect on IMG (file or folder); BACKEND=tensorrt|onnxruntime; KEEP_RES=1 needs INPUT=dynamic
	$(PY) -m centernet_trt.infer --img $(IMG) --backend $(BACKEND) --thresh $(THRESH) $(if $(KEEP_RES),--keep-res) \
	  $(if $(filter onnxruntime,$(BACKEND)),--onnx $(ONNX),--engine $(ENGINE) --plugin $(PLUGIN))

compare:   ## TensorRT engine vs ONNX Runtime on the same inputs
	$(PY) -m centernet_trt.compare --onnx $(ONNX) --engine $(ENGINE) --plugin $(PLUGIN)

bench:   ## DCN kernel vs torchvision.ops.deform_conv2d (needs a CUDA GPU and nvcc)
	$(PY) bench/bench_dcn.py

bench-model:   ## whole networks, every DCN layer by the kernel, vs float64 and torchvision (GPU, after make patch)
	$(PY) bench/model_dcn.py

test: install   ## the test suite (CPU; GPU/TensorRT tests skip with a reason)
	$(VENV)/bin/python -m pytest -ra $(PYTEST_ARGS)

clean:
	rm -rf $(BUILD)
