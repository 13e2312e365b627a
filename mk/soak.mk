# Soak test (included by the root Makefile).
#
#   make soak        t/soak/soak.t for SOAK_SECONDS (default 300) against
#                    the built module: >= 32 concurrent loopback clients,
#                    streams, cancels, vanishing clients, hostile bodies,
#                    two reloads; then idle/KV/gauge/RSS/error.log checks
#   make test-soak   the same for SOAK_TEST_SECONDS (default 60); part of
#                    make test (EXTRA_TESTS)
#
# SOAK_CLIENTS (default 32) and SOAK_SEED (default 1) pass through. The
# test is not in t/*.t, so test-nginx and test-nginx-asan do not run it.

SOAK_SECONDS      ?= 300
SOAK_TEST_SECONDS ?= 60
SOAK_CLIENTS      ?= 32
SOAK_SEED         ?= 1
SOAK_ENV = ST_ROOT=$(CURDIR) NGINX_BIN=$(NGINX_BIN) \
           STARLING_MODULE=$(CURDIR)/$(MODULE_SO) \
           SOAK_CLIENTS=$(SOAK_CLIENTS) SOAK_SEED=$(SOAK_SEED)

.PHONY: soak test-soak

soak: module
	$(SOAK_ENV) SOAK_SECONDS=$(SOAK_SECONDS) prove -v t/soak/soak.t

test-soak: module
	$(SOAK_ENV) SOAK_SECONDS=$(SOAK_TEST_SECONDS) prove -v t/soak/soak.t

EXTRA_TESTS += test-soak
