# Side-by-side benchmarks against llama.cpp (included by the root
# Makefile; not part of make test). llama.cpp is measuring equipment:
# point LLAMACPP_BIN at a build's bin folder (llama-bench, llama-server).
#
#   make bench-compare LLAMACPP_BIN=DIR   starling-bench vs llama-bench,
#                      same files and threads, interleaved, ratios and
#                      each figure against the machine's limit
#   make bench-server LLAMACPP_BIN=DIR    Starling in nginx vs llama-server,
#                      starling-loadbench against both at 1/4/8 streams
#
#   make test-bench-harness  the scripts' setup and failure messages
#                      (no llama.cpp needed; part of make test)
#
# FILES= overrides the model set (comma-separated); THREADS= (1,2),
# REPS= (3), QUICK=1 for a bounded run (one repetition; the server run
# one wave per level). The default set is the Qwen2.5-0.5B-shaped
# synthetic Q8_0 / Q4_0 / Q4_K files (made here with starling-synth under
# build/bench, ~0.3-0.5 GB each) plus every file in
# $(SHARED)/models/synthetic-2. bench-server uses SERVER_FILE (default the
# Q8_0 one).

BENCH_DIR      := $(BUILD)/bench
LLAMACPP_BIN   ?=
QUICK          ?=
THREADS        ?= 1,2
REPS           ?= 3
BENCH_Q05      := $(BENCH_DIR)/q05-q8_0.gguf $(BENCH_DIR)/q05-q4_0.gguf \
                  $(BENCH_DIR)/q05-q4_k.gguf
BENCH_SYNTH2   := $(sort $(wildcard $(SHARED)/models/synthetic-2/*.gguf))
BENCH_EMPTY    :=
BENCH_SPACE    := $(BENCH_EMPTY) $(BENCH_EMPTY)
BENCH_COMMA    := ,
FILES          ?= $(subst $(BENCH_SPACE),$(BENCH_COMMA),$(strip $(BENCH_Q05) $(BENCH_SYNTH2)))
SERVER_FILE    ?= $(BENCH_DIR)/q05-q8_0.gguf

.PHONY: bench-compare bench-server bench-models test-bench-harness

bench-models: $(BENCH_Q05)

$(BENCH_DIR)/q05-%.gguf: $(BUILD)/starling-synth
	@mkdir -p $(BENCH_DIR)
	$(BUILD)/starling-synth --arch qwen2.5-0.5b --type $* -o $@.tmp
	mv $@.tmp $@

# The default files are made only when the default set is used.
bench-compare: $(BUILD)/starling-bench $(BUILD)/starling-membw \
               $(if $(filter $(BENCH_DIR)/%,$(subst $(BENCH_COMMA), ,$(FILES))),bench-models)
	LLAMACPP_BIN='$(LLAMACPP_BIN)' tools/bench-compare.pl \
	  --files '$(FILES)' --threads '$(THREADS)' --reps '$(REPS)' \
	  $(if $(QUICK),--quick)

bench-server: $(BUILD)/starling-loadbench module \
              $(if $(filter $(BENCH_DIR)/%,$(SERVER_FILE)),bench-models)
	LLAMACPP_BIN='$(LLAMACPP_BIN)' NGINX_BIN='$(NGINX_BIN)' \
	  STARLING_MODULE='$(CURDIR)/$(MODULE_SO)' tools/bench-server.pl \
	  --file '$(SERVER_FILE)' $(if $(QUICK),--quick)

test-bench-harness: $(BUILD)/starling-bench $(BUILD)/starling-membw \
                    $(BUILD)/starling-loadbench
	ST_ROOT=$(CURDIR) NGINX_BIN=$(NGINX_BIN) prove t/bench/harness.t

EXTRA_TESTS += test-bench-harness
