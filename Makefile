# Starling: nginx module + inference engine.
#
#   make deps     install build/test dependencies (Debian; needs root)
#   make          build the engine library, tools and unit tests
#   make test     run every test (unit, conformance, nginx integration)
#   make run      build the module and run nginx on the shipped model
#
# Layout (README "Layout"): nginx/ is the glue, include/starling/ the
# public engine API, src/ the nginx-free engine in layers (base, quant,
# gguf, text, model, backend, engine) and the API layer (src/api). The
# engine is built here as build/libstarling.a, the API layer as
# build/libstarling_api.a, the backend table as build/backends_cpu.o /
# build/backends_cuda.o; nginx/config links them into the module.

CC       ?= cc
OPT      ?= -O2 -g
SHARED   ?= $(abspath ../shared)
BUILD    := build
PCRE2_CFLAGS := $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
PCRE2_LIBS   := $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)

# -fvisibility=hidden: nginx loads the module RTLD_GLOBAL; no engine
# symbol may become visible to the rest of the process.
ST_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -fno-plt \
            -fvisibility=hidden $(OPT) -Iinclude -Isrc $(PCRE2_CFLAGS) \
            $(EXTRA_CFLAGS)
ST_LIBS   = $(PCRE2_LIBS) -lm -lpthread

# Per-ISA kernels: files named *_avx2.c / *_avx512.c get their ISA flags;
# which one runs is decided at run time (src/backend/cpu/cpu_features.c).
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni \
               -mavx512bf16 -mfma -mf16c

# Engine layers, lowest first; each includes only the layers before it
# (tools/check-layers.pl checks that).
ENGINE_DIRS := src/base src/quant src/gguf src/text src/model \
               src/backend/cpu src/backend/cpu/x86 src/engine
ENGINE_SRCS := $(sort $(foreach d,$(ENGINE_DIRS),$(wildcard $(d)/*.c)))
ENGINE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(ENGINE_SRCS))
LIB         := $(BUILD)/libstarling.a
API_SRCS    := $(sort $(wildcard src/api/*.c))
API_LIB     := $(BUILD)/libstarling_api.a
# the backend table, one build per set of backends (src/backend/registry.h)
BACKENDS_CPU  := $(BUILD)/backends_cpu.o
BACKENDS_CUDA := $(BUILD)/backends_cuda.o
# test/tool-only code (GGUF writer, weight quantizers): not in the module
TOOLS_LIB_SRCS := $(sort $(wildcard tools/lib/*.c))
TOOLS_LIB   := $(BUILD)/libstarling_tools.a
ALL_HDRS    := $(filter-out src/backend/cuda/%,$(wildcard include/starling/*.h src/*/*.h src/*/*/*.h \
                          src/*/*/*/*.h tools/lib/*.h))
# what a test or tool links: backend table, test helpers, engine
ENGINE_LINK  = $(BACKENDS_CPU) $(TOOLS_LIB) $(LIB) $(ST_LIBS)

UNIT_SRCS := $(sort $(wildcard t/unit/test_*.c))
UNIT_BINS := $(patsubst t/unit/%.c,$(BUILD)/t/%,$(UNIT_SRCS))
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))

.PHONY: all lib tools unit-bins test test-unit test-layers deps clean
all: lib tools unit-bins

lib: $(LIB) $(API_LIB) $(BACKENDS_CPU) $(BACKENDS_CUDA)
tools: $(TOOL_BINS)
unit-bins: $(UNIT_BINS)

$(BUILD)/%.o: %.c $(ALL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) $(if $(findstring _avx512,$<),$(AVX512_FLAGS),$(if $(findstring _avx2,$<),$(AVX2_FLAGS))) -c $< -o $@

$(LIB): $(ENGINE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(API_LIB): $(patsubst %.c,$(BUILD)/%.o,$(API_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BACKENDS_CPU): src/backend/registry.c $(ALL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -c $< -o $@

$(BACKENDS_CUDA): src/backend/registry.c $(ALL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -DST_WITH_CUDA=1 -c $< -o $@

$(BUILD)/tools/lib/%.o: tools/lib/%.c $(ALL_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -Itools/lib -c $< -o $@

$(TOOLS_LIB): $(patsubst %.c,$(BUILD)/%.o,$(TOOLS_LIB_SRCS))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/t/%: t/unit/%.c t/unit/tap.h $(LIB) $(TOOLS_LIB) $(BACKENDS_CPU)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -It/unit -Itools/lib $< $(ENGINE_LINK) -o $@

$(BUILD)/%: tools/%.c $(LIB) $(TOOLS_LIB) $(BACKENDS_CPU)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -Itools/lib $< $(ENGINE_LINK) -o $@

# How many tests a stage runs at once (prove -j, make -j of the valgrind
# and fuzz runs) and how many jobs the build before make test's stages
# gets; default: the CPU count.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

# Unit + conformance tests (C, TAP). They find data through ST_SHARED and
# ST_ROOT; tests that need ../shared only report themselves skipped. They
# share no state (temporary files get unique names), so prove runs
# TEST_JOBS at once.
test-unit: lib unit-bins
	ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) prove --timer -j$(TEST_JOBS) --exec '' $(UNIT_BINS)

# mk/*.mk fragments add targets (e.g. the nginx module) and append to
# EXTRA_TESTS.
EXTRA_TESTS :=
TEST_BINS   :=
-include $(sort $(wildcard mk/*.mk))

# The include graph follows the layers, and the glue sees only the
# public headers.
test-layers:
	./tools/check-layers.pl

# make test: first everything the stages run is built, TEST_JOBS jobs at
# once (the mk/*.mk fragments add theirs to TEST_BINS), so no stage
# builds on one core; then the stages run one after the other (-j1 even
# under make -j: timing-sensitive nginx tests and the soak must not share
# the CPU with another stage), each parallel inside where that cannot
# change a result. The time of each stage is printed at the end, and
# after a failure.
TEST_BINS   += lib tools unit-bins
TEST_STAGES  = test-layers test-unit $(EXTRA_TESTS) test-valgrind
test:
	$(MAKE) --no-print-directory -j$(TEST_JOBS) $(TEST_BINS)
	@times=; t_all=$$(date +%s); \
	report() { for x in $$times; do \
	    printf '  %-18s %5d s\n' $${x%%:*} $${x#*:}; done; \
	  echo "make test: $$1 after $$(( $$(date +%s) - t_all )) s"; }; \
	for s in $(TEST_STAGES); do \
	  t0=$$(date +%s); \
	  if ! $(MAKE) --no-print-directory -j1 $$s; then \
	    times="$$times $$s:$$(( $$(date +%s) - t0 ))"; \
	    report "FAILED in $$s"; exit 1; \
	  fi; \
	  times="$$times $$s:$$(( $$(date +%s) - t0 ))"; \
	done; report passed

deps:
	./tools/install-deps.sh

clean:
	rm -rf $(BUILD)

# Every unit test under valgrind (memcheck), without ../shared so it stays
# short; any error or leak fails. Valgrind runs a program's threads one at
# a time (one core per run), so TEST_JOBS binaries run at once; each
# writes build/NAME.valgrind.log, a failing one prints its tail.
VALGRIND ?= valgrind
# the longest runs start first (under valgrind: test_engine ~125 s of CPU,
# test_fair_queue ~80 s, the others 35 s or less), so that the two cores
# finish together
VALGRIND_FIRST := $(filter $(UNIT_BINS),$(BUILD)/t/test_engine \
                    $(BUILD)/t/test_fair_queue)
VALGRIND_RUNS  := $(patsubst $(BUILD)/t/%,valgrind-%,$(VALGRIND_FIRST) \
                    $(filter-out $(VALGRIND_FIRST),$(UNIT_BINS)))
test-valgrind: lib unit-bins
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) -Otarget $(VALGRIND_RUNS)
	@echo "valgrind: all unit tests clean"

$(VALGRIND_RUNS): valgrind-%: $(BUILD)/t/%
	@echo "valgrind $<"; \
	ST_ROOT=$(CURDIR) ST_SHARED=/nonexistent ST_CPU_KERNELS=avx2 \
	  $(VALGRIND) -q --error-exitcode=99 --leak-check=full \
	  --errors-for-leak-kinds=definite,indirect $< > $(BUILD)/$*.valgrind.log 2>&1 \
	|| { tail -30 $(BUILD)/$*.valgrind.log; \
	     echo "valgrind $*: FAILED (log: $(BUILD)/$*.valgrind.log)"; exit 1; }
.PHONY: test-valgrind $(VALGRIND_RUNS)
