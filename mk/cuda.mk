# CUDA backend targets (included by the root Makefile).
#
#   make cuda-lib        build/libstarling_cuda.a with nvcc (sm_80, sm_90 +
#                        PTX); skipped with a message when nvcc is absent
#   make cuda-shim-lib   build/libstarling_cuda_shim.a: the same .cu sources
#                        compiled as host C++ against src/backend/cuda/shim (no CUDA needed)
#   make test-cuda-shim  kernel and whole-backend tests through the shim, and
#                        (with nvcc) the no-device check of the real library
#   make test-gpu        on a machine with an NVIDIA GPU: the same
#                        comparisons with the nvcc build, plus a benchmark
#
# Linking the backend into a program: the backend table that lists CUDA
# first, then the CUDA archive, then the engine:
#   build/backends_cuda.o build/libstarling_cuda.a build/libstarling.a
#   $(CUDA_LIBS)

NVCC        ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CUDA_HOME   ?= /usr/local/cuda
CXX         ?= g++
CUDA_GENCODE = -gencode arch=compute_80,code=sm_80 \
               -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90
# -fmad=false: no fused multiply-adds the CPU reference does not do (the
# kernels call fmaf where the CPU does)
NVCC_FLAGS   = -std=c++17 -O2 -g -fmad=false $(CUDA_GENCODE) \
               -Xcompiler -fPIC,-Wall,-Wextra,-fvisibility=hidden -Iinclude -Isrc
CUDA_LIBS    = -L$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++ \
               -Wl,-rpath,$(CUDA_HOME)/lib64
SHIM_CXXFLAGS = -std=c++17 -O2 -g -fPIC -Wall -Wextra -Werror \
               -ffp-contract=off -fvisibility=hidden -Iinclude -Isrc

CUDA_DIR     := src/backend/cuda
CUDA_SRCS    := $(sort $(wildcard $(CUDA_DIR)/*.cu))
CUDA_HDRS    := $(wildcard $(CUDA_DIR)/*.h $(CUDA_DIR)/shim/*.h) $(ALL_HDRS)
CUDA_LIB     := $(BUILD)/libstarling_cuda.a
CUDA_SHIM_LIB := $(BUILD)/libstarling_cuda_shim.a
CUDA_OBJS    := $(patsubst $(CUDA_DIR)/%.cu,$(BUILD)/cuda/%.o,$(CUDA_SRCS))
SHIM_SRCS    := $(sort $(wildcard $(CUDA_DIR)/shim/*.cc))
SHIM_OBJS    := $(patsubst $(CUDA_DIR)/%.cu,$(BUILD)/cuda-shim/%.o,$(CUDA_SRCS)) \
                $(patsubst $(CUDA_DIR)/shim/%.cc,$(BUILD)/cuda-shim/shim/%.o,$(SHIM_SRCS))

CUDA_TEST_FLAGS = $(ST_CFLAGS) -It/unit -Itools/lib
SHIM_TESTS   := $(BUILD)/t/cuda/test_cuda_kernels $(BUILD)/t/cuda/test_cuda_backend \
                $(BUILD)/t/cuda/test_cuda_graphs $(BUILD)/t/cuda/test_cuda_invariance \
                $(BUILD)/t/cuda/test_cuda_embed
GPU_TESTS    := $(BUILD)/t/cuda-gpu/test_cuda_kernels \
                $(BUILD)/t/cuda-gpu/test_cuda_backend \
                $(BUILD)/t/cuda-gpu/test_cuda_graphs \
                $(BUILD)/t/cuda-gpu/test_cuda_invariance \
                $(BUILD)/t/cuda-gpu/test_cuda_embed

.PHONY: cuda-lib cuda-shim-lib test-cuda-shim test-gpu

# ---- shim build (always available) ----------------------------------------

$(BUILD)/cuda-shim/%.o: $(CUDA_DIR)/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(SHIM_CXXFLAGS) -x c++ -c $< -o $@

$(BUILD)/cuda-shim/shim/%.o: $(CUDA_DIR)/shim/%.cc $(wildcard $(CUDA_DIR)/shim/*.h)
	@mkdir -p $(dir $@)
	$(CXX) $(SHIM_CXXFLAGS) -c $< -o $@

$(CUDA_SHIM_LIB): $(SHIM_OBJS)
	@rm -f $@
	ar rcs $@ $^

cuda-shim-lib: $(CUDA_SHIM_LIB)

CUDA_TEST_DEPS = t/unit/tap.h t/cuda/cuda_test.h $(BACKENDS_CUDA) $(TOOLS_LIB) $(LIB)

$(BUILD)/t/cuda/%: t/cuda/%.c $(CUDA_TEST_DEPS) $(CUDA_SHIM_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_FLAGS) $< $(BACKENDS_CUDA) $(CUDA_SHIM_LIB) $(TOOLS_LIB) \
	  $(LIB) $(ST_LIBS) -lstdc++ -o $@

# ---- nvcc build -------------------------------------------------------------

$(BUILD)/cuda/%.o: $(CUDA_DIR)/%.cu $(CUDA_HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(CUDA_LIB): $(CUDA_OBJS)
	@rm -f $@
	ar rcs $@ $^

ifeq ($(NVCC),)
cuda-lib:
	@echo "cuda-lib: nvcc not found (set NVCC=...); skipping the CUDA build"
CUDA_NODEV_TEST :=
else
cuda-lib: $(CUDA_LIB)
CUDA_NODEV_TEST := $(BUILD)/t/cuda-gpu/test_cuda_nodev
endif

$(BUILD)/t/cuda-gpu/%: t/cuda/%.c $(CUDA_TEST_DEPS) $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_FLAGS) -DST_CUDA_TEST_GPU=1 $< $(BACKENDS_CUDA) \
	  $(CUDA_LIB) $(TOOLS_LIB) $(LIB) $(ST_LIBS) $(CUDA_LIBS) -o $@

$(BUILD)/cuda-bench: t/cuda/bench_cuda.c $(CUDA_TEST_DEPS) $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_FLAGS) -DST_CUDA_TEST_GPU=1 $< $(BACKENDS_CUDA) \
	  $(CUDA_LIB) $(TOOLS_LIB) $(LIB) $(ST_LIBS) $(CUDA_LIBS) -o $@

# ---- tests ----------------------------------------------------------------

# the shim runs a kernel's blocks one after the other on the calling
# thread and the tests only read files: prove runs TEST_JOBS at once
test-cuda-shim: lib $(SHIM_TESTS) $(CUDA_NODEV_TEST)
	ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) prove --timer -j$(TEST_JOBS) \
	  --exec '' $(SHIM_TESTS) $(CUDA_NODEV_TEST)

test-gpu: lib $(GPU_TESTS) $(BUILD)/cuda-bench
	ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) ST_CUDA_TEST_STEPS=64 \
	  prove -v --exec '' $(GPU_TESTS)
	ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) $(BUILD)/cuda-bench

EXTRA_TESTS += test-cuda-shim
TEST_BINS   += $(SHIM_TESTS) $(CUDA_NODEV_TEST)
