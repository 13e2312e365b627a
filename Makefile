# Starling: nginx module + inference engine.
#
#   make deps     install build/test dependencies (Debian; needs root)
#   make          build the engine library, tools and unit tests
#   make test     run every test (unit, conformance, nginx integration)
#   make run      build the module and run nginx on the shipped model
#
# The engine (src/engine, src/cpu) is plain C11 with no nginx headers; it
# is built here as build/libstarling.a and linked into the module by
# `config`/`config.make`.

CC       ?= cc
OPT      ?= -O2 -g
SHARED   ?= $(abspath ../shared)
BUILD    := build
PCRE2_CFLAGS := $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
PCRE2_LIBS   := $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)

ST_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -fno-plt $(OPT) \
            -Isrc/engine -Isrc/cpu $(PCRE2_CFLAGS) $(EXTRA_CFLAGS)
ST_LIBS   = $(PCRE2_LIBS) -lm -lpthread

# Per-ISA kernels: files named *_avx2.c / *_avx512.c get their ISA flags;
# which one runs is decided at run time (src/cpu/cpu_features.c).
AVX2_FLAGS   = -mavx2 -mfma -mf16c
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni \
               -mavx512bf16 -mfma -mf16c

ENGINE_SRCS := $(sort $(wildcard src/engine/*.c) $(wildcard src/cpu/*.c))
ENGINE_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(ENGINE_SRCS))
LIB         := $(BUILD)/libstarling.a

UNIT_SRCS := $(sort $(wildcard t/unit/test_*.c))
UNIT_BINS := $(patsubst t/unit/%.c,$(BUILD)/t/%,$(UNIT_SRCS))
TOOL_SRCS := $(sort $(wildcard tools/*.c))
TOOL_BINS := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))

.PHONY: all lib tools unit-bins test test-unit deps clean
all: lib tools unit-bins

lib: $(LIB)
tools: $(TOOL_BINS)
unit-bins: $(UNIT_BINS)

$(BUILD)/%.o: %.c $(wildcard src/engine/*.h src/cpu/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) $(if $(findstring _avx512,$<),$(AVX512_FLAGS),$(if $(findstring _avx2,$<),$(AVX2_FLAGS))) -c $< -o $@

$(LIB): $(ENGINE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/t/%: t/unit/%.c t/unit/tap.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -It/unit $< $(LIB) $(ST_LIBS) -o $@

$(BUILD)/%: tools/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) $< $(LIB) $(ST_LIBS) -o $@

# Unit + conformance tests (C, TAP). They find data through ST_SHARED and
# ST_ROOT; tests that need ../shared only report themselves skipped.
test-unit: lib unit-bins
	ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) prove --exec '' $(UNIT_BINS)

# mk/*.mk fragments add targets (e.g. the nginx module) and append to
# EXTRA_TESTS.
EXTRA_TESTS :=
-include $(sort $(wildcard mk/*.mk))

test: test-unit $(EXTRA_TESTS) test-valgrind

deps:
	./tools/install-deps.sh

clean:
	rm -rf $(BUILD)

# Every unit test under valgrind (memcheck), without ../shared so it stays
# short; any error or leak fails.
VALGRIND ?= valgrind
test-valgrind: lib unit-bins
	@set -e; for t in $(UNIT_BINS); do \
	  echo "valgrind $$t"; \
	  ST_ROOT=$(CURDIR) ST_SHARED=/nonexistent ST_CPU_KERNELS=avx2 \
	    $(VALGRIND) -q --error-exitcode=99 --leak-check=full \
	    --errors-for-leak-kinds=definite,indirect $$t > $(BUILD)/$$(basename $$t).valgrind.log 2>&1 \
	  || { tail -30 $(BUILD)/$$(basename $$t).valgrind.log; exit 1; }; \
	done; echo "valgrind: all unit tests clean"
.PHONY: test-valgrind

comma := ,

# Coverage-guided fuzzing (clang's libFuzzer + ASan/UBSan), not part of
# `make test`: `make fuzz FUZZ_SECONDS=300` runs each target that long.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -std=c11 -D_GNU_SOURCE -Isrc/engine -Isrc/cpu -Isrc/api $(PCRE2_CFLAGS)
FUZZ_ENGINE   = $(filter-out %_avx2.c %_avx512.c,$(ENGINE_SRCS))
# the engine as an archive, so that a target links only what it uses
fuzz:
	@mkdir -p $(BUILD)/fuzz/obj
	@rm -f $(BUILD)/fuzz/libengine.a
	@for f in $(FUZZ_ENGINE) src/api/*.c; do \
	  $(FUZZ_CC) $(subst fuzzer$(comma),fuzzer-no-link$(comma),$(FUZZ_FLAGS)) \
	    -c $$f -o $(BUILD)/fuzz/obj/$$(basename $$f .c).o || exit 1; \
	done; ar rcs $(BUILD)/fuzz/libengine.a $(BUILD)/fuzz/obj/*.o
	$(FUZZ_CC) $(FUZZ_FLAGS) tools/fuzz/fuzz_api.c $(BUILD)/fuzz/libengine.a \
	  -lyajl $(ST_LIBS) -o $(BUILD)/fuzz/fuzz_api
	$(FUZZ_CC) $(FUZZ_FLAGS) tools/fuzz/fuzz_gguf.c $(BUILD)/fuzz/libengine.a \
	  $(ST_LIBS) -o $(BUILD)/fuzz/fuzz_gguf
	$(FUZZ_CC) $(FUZZ_FLAGS) tools/fuzz/fuzz_tokenize.c $(BUILD)/fuzz/libengine.a \
	  $(ST_LIBS) -o $(BUILD)/fuzz/fuzz_tokenize
	@mkdir -p $(BUILD)/fuzz/corpus_api
	$(BUILD)/fuzz/fuzz_api -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  $(BUILD)/fuzz/corpus_api tools/fuzz/corpus_api
	$(BUILD)/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536
	$(BUILD)/fuzz/fuzz_tokenize -max_total_time=$(FUZZ_SECONDS) -max_len=2048
.PHONY: fuzz
