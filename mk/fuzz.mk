# Coverage-guided fuzzing (clang's libFuzzer + ASan/UBSan; included by the
# root Makefile).
#
#   make fuzz       every target for FUZZ_SECONDS (default 60) each, corpora
#                   kept in build/fuzz/corpus_* (long runs: FUZZ_SECONDS=3600)
#   make test-fuzz  (part of make test) every target for FUZZ_TEST_SECONDS
#                   (default 20) from the checked-in tools/fuzz/corpus_*;
#                   any crash, leak or sanitizer report fails
#
# Targets (tools/fuzz/fuzz_*.c): api (request parser), gguf (GGUF parse +
# tokenizer load), model (st_model_load on a file), tokenize (SPM, the
# shipped models' vocabularies), bpe (byte-level BPE + PCRE2 with the
# gpt-2 / llama-bpe / qwen2 vocabularies of ../shared; skipped without
# them), chat (template detection + rendering), textstream (UTF-8 stream
# + stop strings). Crash inputs land in build/fuzz/crash-*; replay one
# with build/fuzz/fuzz_NAME FILE. tools/fuzz/mkseeds.py rewrites the seed
# GGUFs of corpus_model / corpus_gguf.

FUZZ_SECONDS      ?= 60
FUZZ_TEST_SECONDS ?= 20
FUZZ_CC           ?= clang
FUZZ_DIR          := $(BUILD)/fuzz
comma := ,
FUZZ_FLAGS     = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -Itools/lib $(PCRE2_CFLAGS)
FUZZ_OBJ_FLAGS = $(subst fuzzer$(comma),fuzzer-no-link$(comma),$(FUZZ_FLAGS))
# the engine (without the per-ISA kernels: no target runs a forward pass),
# the API layer and the backend table, as an archive so that a target
# links only what it uses
FUZZ_ENGINE   := $(filter-out %_avx2.c %_avx512.c,$(ENGINE_SRCS)) $(API_SRCS) \
                 src/backend/registry.c
FUZZ_OBJS     := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_ENGINE))
FUZZ_LIB      := $(FUZZ_DIR)/libengine.a
FUZZ_NAMES    := api gguf model tokenize bpe chat textstream
FUZZ_BINS     := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))

# per target: -max_len, extra seed directories for make fuzz
FUZZ_LEN_api        := 4096
FUZZ_LEN_gguf       := 65536
# model: whole shipped models as seeds in make fuzz (libFuzzer cuts seeds
# to -max_len); make test's seeds are small, mutations stay fast
FUZZ_LEN_model      := 1310720
FUZZ_TEST_LEN_model := 65536
FUZZ_LEN_tokenize   := 2048
FUZZ_LEN_bpe        := 2048
FUZZ_LEN_chat       := 4096
FUZZ_LEN_textstream := 4096
# the shipped models (1-2 MB: used by path, never copied into a corpus)
FUZZ_SEEDS_model    := models
FUZZ_SEEDS_gguf     := models

$(FUZZ_DIR)/obj/%.o: %.c $(ALL_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_OBJ_FLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tools/fuzz/fuzz_%.c $(FUZZ_LIB) $(ALL_HDRS)
	$(FUZZ_CC) $(FUZZ_FLAGS) $< $(FUZZ_LIB) -lyajl $(ST_LIBS) -o $@

.PHONY: fuzz fuzz-bins test-fuzz
fuzz-bins: $(FUZZ_BINS)

# One run: $(1) name, $(2) seconds, $(3) corpus dir written to, then the
# read-only seed dirs; $(4) -max_len. libFuzzer exits non-zero on a crash, leak, timeout
# or sanitizer report; -timeout makes a hang a failure too.
FUZZ_RUN = ST_SHARED=$(SHARED) $(FUZZ_DIR)/fuzz_$(1) -max_total_time=$(2) \
  -max_len=$(4) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=$(FUZZ_DIR)/crash-$(1)- $(3)

fuzz: $(FUZZ_BINS)
	@set -e; for n in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_DIR)/corpus_$$n; \
	  echo "fuzz_$$n: $(FUZZ_SECONDS) s"; \
	  $(MAKE) --no-print-directory fuzz-one-$$n; \
	done

fuzz-one-%:
	$(call FUZZ_RUN,$*,$(FUZZ_SECONDS),$(FUZZ_DIR)/corpus_$* tools/fuzz/corpus_$* $(FUZZ_SEEDS_$*),$(FUZZ_LEN_$*))

# make test: a fixed, short budget from the checked-in corpora only (new
# inputs go to a scratch dir that is emptied first, so runs are alike).
# A libFuzzer run is one process on one core for a fixed time, so
# TEST_JOBS targets run at once: each still gets a core for its
# FUZZ_TEST_SECONDS (as many executions as when run alone), the stage
# takes 1/TEST_JOBS of the time.
test-fuzz: $(FUZZ_BINS)
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) -Otarget \
	  $(patsubst %,test-fuzz-one-%,$(FUZZ_NAMES))
	@echo "test-fuzz: all targets clean ($(FUZZ_TEST_SECONDS) s each)"

test-fuzz-one-%:
	@rm -rf $(FUZZ_DIR)/test_$*; mkdir -p $(FUZZ_DIR)/test_$*
	@if [ $* = bpe ] && [ ! -d $(SHARED)/reference/tokenizer ]; then \
	  echo "fuzz_bpe: $(SHARED)/reference/tokenizer absent: skipped"; exit 0; \
	fi; \
	echo "fuzz_$*: $(FUZZ_TEST_SECONDS) s"; \
	$(call FUZZ_RUN,$*,$(FUZZ_TEST_SECONDS),$(FUZZ_DIR)/test_$* tools/fuzz/corpus_$*,$(or $(FUZZ_TEST_LEN_$*),$(FUZZ_LEN_$*))) \
	  > $(FUZZ_DIR)/test_$*.log 2>&1 \
	|| { tail -60 $(FUZZ_DIR)/test_$*.log; \
	     echo "fuzz_$* FAILED (log: $(FUZZ_DIR)/test_$*.log)"; exit 1; }; \
	grep -h '^stat::number_of_executed_units\|^Done' $(FUZZ_DIR)/test_$*.log | tr '\n' ' '; echo

EXTRA_TESTS += test-fuzz
TEST_BINS   += $(FUZZ_BINS)
