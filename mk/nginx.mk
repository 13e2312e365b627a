# nginx module targets (included by the root Makefile).
#
#   make module        build build/nginx/ngx_http_starling_module.so
#                      against the installed nginx (nginx-dev's sources)
#   make module-check  nginx -t with a config that loads the module
#   make run           nginx in the foreground on 127.0.0.1:8080
#   make test-nginx    integration tests (t/*.t) + the openai npm test
#   make test-api      unit test of the nginx-free API layer (src/api)
#   make test-nginx-asan  the integration tests against an ASan+UBSan
#                      build of the module (build/nginx-asan)

NGINX_SRC    ?= /usr/share/nginx/src
NGINX_BIN    ?= /usr/sbin/nginx
NGINX_BUILD  := $(BUILD)/nginx
MODULE_SO    := $(NGINX_BUILD)/ngx_http_starling_module.so
MODULE_SRCS  := config config.make nginx/config nginx/config.make \
                nginx/starling.map $(wildcard nginx/*.c nginx/*.h \
                include/starling/*.h)
RUN_PREFIX   := $(BUILD)/run
RUN_MODEL    ?= models/stories260K.gguf

# The CUDA backend goes into the module when nvcc is available (mk/cuda.mk
# defines NVCC and CUDA_LIB); STARLING_CUDA=0 leaves it out.
STARLING_CUDA ?= 1
MODULE_CUDA_LIB := $(if $(filter 1,$(STARLING_CUDA)),$(if $(NVCC),$(CUDA_LIB)))
MODULE_CUDA_ENV := $(if $(MODULE_CUDA_LIB),STARLING_CUDA_LIB=$(CURDIR)/$(MODULE_CUDA_LIB))
# what the module links besides its own objects (nginx/config)
MODULE_LIBS  := $(LIB) $(API_LIB) $(BACKENDS_CPU) $(BACKENDS_CUDA) $(MODULE_CUDA_LIB)

.PHONY: module module-check run test-nginx test-api module-asan \
        test-nginx-asan

$(NGINX_BUILD)/Makefile: config config.make nginx/config nginx/config.make $(MODULE_CUDA_LIB) \
                         $(NGINX_BUILD)/cuda.$(if $(MODULE_CUDA_LIB),on,off)
	@test -x $(NGINX_SRC)/configure || { \
	  echo "nginx sources not found in $(NGINX_SRC): apt-get install nginx-dev" \
	       "(or run tools/install-deps.sh)"; exit 1; }
	@mkdir -p $(NGINX_BUILD)
	cd $(NGINX_SRC) && . ./conf_flags && $(MODULE_CUDA_ENV) ./configure \
	  --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(MODULE_CC_OPT)" \
	  --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(MODULE_LD_OPT)" \
	  "$${NGX_CONF_FLAGS[@]}" \
	  --add-dynamic-module=$(CURDIR) --builddir=$(CURDIR)/$(NGINX_BUILD) \
	  > $(CURDIR)/$(NGINX_BUILD)/configure.log 2>&1 \
	  || { tail -30 $(CURDIR)/$(NGINX_BUILD)/configure.log; exit 1; }

$(MODULE_SO): $(NGINX_BUILD)/Makefile $(MODULE_SRCS) $(MODULE_LIBS)
	$(MAKE) -f $(CURDIR)/$(NGINX_BUILD)/Makefile -C $(NGINX_SRC) modules

# remembers whether the configured build has CUDA (reconfigure on change)
$(NGINX_BUILD)/cuda.on $(NGINX_BUILD)/cuda.off:
	@mkdir -p $(NGINX_BUILD)
	@rm -f $(NGINX_BUILD)/cuda.on $(NGINX_BUILD)/cuda.off
	@touch $@

module: SHELL := /bin/bash
module: $(MODULE_LIBS) $(MODULE_SO)

$(NGINX_BUILD)/Makefile: SHELL := /bin/bash

module-check: module
	@mkdir -p $(BUILD)/check/logs
	@printf '%s\n' \
	  'load_module $(CURDIR)/$(MODULE_SO);' \
	  'error_log stderr notice;' 'pid $(CURDIR)/$(BUILD)/check/nginx.pid;' \
	  'events { worker_connections 64; }' \
	  'http {' \
	  '  access_log off;' \
	  '  starling_model tiny path=$(CURDIR)/$(RUN_MODEL);' \
	  '  server { listen 127.0.0.1:18080;' \
	  '    location /v1/ { starling openai; }' \
	  '    location / { starling worker; } } }' \
	  > $(BUILD)/check/nginx.conf
	$(NGINX_BIN) -t -p $(CURDIR)/$(BUILD)/check -c $(CURDIR)/$(BUILD)/check/nginx.conf

run: module
	@mkdir -p $(RUN_PREFIX)/logs
	sed -e 's#@MODULE@#$(CURDIR)/$(MODULE_SO)#' -e 's#@MODEL@#$(CURDIR)/$(RUN_MODEL)#' \
	  -e 's#@PREFIX@#$(CURDIR)/$(RUN_PREFIX)#' -e 's#@HTML@#$(CURDIR)/html#' \
	  conf/starling.conf.in > $(RUN_PREFIX)/nginx.conf
	@printf '\n  model       tiny = %s (%s; its architecture and context: the "loaded" line below)\n  playground  %s\n  try         %s\n\n' \
	  '$(RUN_MODEL)' "$$(numfmt --to=iec-i --suffix=B $$(stat -c %s $(RUN_MODEL)))" 'http://127.0.0.1:8080/playground/' \
	  "curl -N http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":32,\"stream\":true}'"
	$(NGINX_BIN) -p $(CURDIR)/$(RUN_PREFIX) -c $(CURDIR)/$(RUN_PREFIX)/nginx.conf \
	  -g 'daemon off;' -e stderr

# the greedy-equality test runs the engine CLI when it is built
GENERATE_BIN := $(patsubst tools/%.c,$(BUILD)/%,$(wildcard tools/starling-generate.c))

# t/*.t in two groups. Each file starts its own nginx on its own port and
# prefix, so files can run side by side; NGINX_T_PAR lists the ones whose
# checks do not depend on how fast the CPU answers (deadlines of seconds
# are only waits), and prove runs TEST_JOBS of them at once. Every other
# file (timeouts of tens of ms, generations that must overlap, queueing,
# fairness ratios, the stress run, and any new file until it is added
# here) then runs alone, one after the other.
NGINX_T_PAR := t/001-config.t t/010-openai.t t/012-body-limit.t \
               t/015-choices.t t/016-apply-template.t t/017-responses.t \
               t/018-embeddings.t t/018-tools-llama3.t \
               t/019-tools-mistral.t t/020-worker.t t/032-cancel-finished.t \
               t/050-reload.t t/060-workers.t t/070-backend.t \
               t/090-nginx-features.t t/095-response-format.t \
               t/100-metrics.t t/100-session.t t/101-json-log.t \
               t/101-session-routing.t t/102-model-check.t \
               t/103-token-limit.t t/104-api-keys.t
NGINX_T_ALL    = $(sort $(wildcard t/*.t))
NGINX_T_PAR_ON = $(filter $(NGINX_T_ALL),$(NGINX_T_PAR))
NGINX_T_SERIAL = $(filter-out $(NGINX_T_PAR_ON),$(NGINX_T_ALL))
# $(1): the environment, $(2): prove's options for the serial group
NGINX_T_JOBS ?= $(TEST_JOBS)
NGINX_PROVE = $(1) prove --timer -j$(NGINX_T_JOBS) $(NGINX_T_PAR_ON) \
              && $(1) prove --timer $(2) $(NGINX_T_SERIAL)
NGINX_T_ENV = ST_ROOT=$(CURDIR) ST_SHARED=$(SHARED) NGINX_BIN=$(NGINX_BIN)

test-nginx: module $(GENERATE_BIN)
	$(call NGINX_PROVE,$(NGINX_T_ENV) STARLING_MODULE=$(CURDIR)/$(MODULE_SO),-v)
	@if [ -d t/openai/node_modules/openai ]; then \
	  ST_ROOT=$(CURDIR) NGINX_BIN=$(NGINX_BIN) \
	  STARLING_MODULE=$(CURDIR)/$(MODULE_SO) node --test t/openai/; \
	else \
	  echo "t/openai: node_modules missing (cd t/openai && npm ci); skipped"; \
	fi

# The API layer (src/api) is nginx-free: its unit test links yajl and the
# engine library (for st_sampling_defaults) only.
API_TEST := $(BUILD)/t/api_test_api
$(API_TEST): t/api/test_api.c t/unit/tap.h $(API_LIB) $(LIB) $(BACKENDS_CPU)
	@mkdir -p $(dir $@)
	$(CC) $(ST_CFLAGS) -It/unit t/api/test_api.c $(API_LIB) $(BACKENDS_CPU) \
	  $(LIB) -lyajl $(ST_LIBS) -o $@

test-api: $(API_TEST)
	prove --exec '' $(API_TEST)

EXTRA_TESTS += test-api test-nginx test-nginx-asan
TEST_BINS   += module module-asan $(GENERATE_BIN) $(API_TEST)

# ASan + UBSan build of the module, loaded into Debian's nginx with the
# runtime preloaded (nginx core itself leaks a little at exit: no leak
# check). Reports land in error.log, which every test checks.
#
# The engine, the API layer and the backend table are built instrumented
# too, by a sub-make into $(ASAN_LIB_BUILD) (same sources and rules, with
# EXTRA_CFLAGS=$(ASAN_FLAGS)), and the module links those through
# nginx/config's STARLING_LIB / STARLING_API_LIB / STARLING_BACKENDS
# overrides (nginx/config.make then adds no rebuild rule of its own: the
# sub-make below is that rule). CUDA is left out (as with STARLING_CUDA=0):
# nvcc-compiled device code cannot be ASan-instrumented, so the ASan
# module links the CPU-only backend table and no CUDA archive; the CUDA
# host code is checked through the shim tests (mk/cuda.mk) instead.
ASAN_BUILD     := $(BUILD)/nginx-asan
ASAN_LIB_BUILD := $(BUILD)/asan
ASAN_FLAGS     := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_LIBS      := $(ASAN_LIB_BUILD)/libstarling.a $(ASAN_LIB_BUILD)/libstarling_api.a \
                  $(ASAN_LIB_BUILD)/backends_cpu.o
ASAN_LIB_ENV   := STARLING_LIB=$(CURDIR)/$(ASAN_LIB_BUILD)/libstarling.a \
                  STARLING_API_LIB=$(CURDIR)/$(ASAN_LIB_BUILD)/libstarling_api.a \
                  STARLING_BACKENDS=$(CURDIR)/$(ASAN_LIB_BUILD)/backends_cpu.o

.PHONY: asan-lib
asan-lib:
	$(MAKE) --no-print-directory BUILD=$(ASAN_LIB_BUILD) \
	  EXTRA_CFLAGS='$(ASAN_FLAGS) $(EXTRA_CFLAGS)' $(ASAN_LIBS)

$(ASAN_BUILD)/Makefile: SHELL := /bin/bash
$(ASAN_BUILD)/Makefile: config config.make nginx/config nginx/config.make mk/nginx.mk
	@mkdir -p $(ASAN_BUILD)
	cd $(NGINX_SRC) && . ./conf_flags && $(ASAN_LIB_ENV) ./configure \
	  --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(ASAN_FLAGS)" \
	  --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(ASAN_FLAGS)" \
	  "$${NGX_CONF_FLAGS[@]}" \
	  --add-dynamic-module=$(CURDIR) --builddir=$(CURDIR)/$(ASAN_BUILD) \
	  > $(CURDIR)/$(ASAN_BUILD)/configure.log 2>&1 \
	  || { tail -30 $(CURDIR)/$(ASAN_BUILD)/configure.log; exit 1; }

module-asan: asan-lib $(ASAN_BUILD)/Makefile
	$(MAKE) -f $(CURDIR)/$(ASAN_BUILD)/Makefile -C $(NGINX_SRC) modules

test-nginx-asan: module-asan $(GENERATE_BIN)
	$(call NGINX_PROVE,LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(NGINX_T_ENV) \
	  STARLING_MODULE=$(CURDIR)/$(ASAN_BUILD)/ngx_http_starling_module.so,)
