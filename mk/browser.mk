# The playground (html/) in headless Chromium (included by the root Makefile).
#
#   make test-browser  t/browser/: node --test, playwright-core driving
#                      Debian's chromium, against the built module; writes
#                      screenshots to build/browser/. Skipped (not failed)
#                      without chromium or t/browser/node_modules.

CHROMIUM ?= /usr/bin/chromium

.PHONY: test-browser

test-browser: module
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "t/browser: $(CHROMIUM) missing (apt-get install chromium, or make deps); skipped"; \
	elif [ ! -d t/browser/node_modules/playwright-core ]; then \
	  echo "t/browser: node_modules missing (cd t/browser && npm ci); skipped"; \
	else \
	  ST_ROOT=$(CURDIR) NGINX_BIN=$(NGINX_BIN) CHROMIUM=$(CHROMIUM) \
	  STARLING_MODULE=$(CURDIR)/$(MODULE_SO) node --test t/browser/; \
	fi

EXTRA_TESTS += test-browser
