#!/bin/sh
# Installs what Starling needs to build and test on Debian/Ubuntu:
# compiler, nginx + nginx-dev (sources/headers to build the dynamic module
# against the packaged binary), yajl, PCRE2, Perl/prove, valgrind, curl,
# Node.js + npm (the openai client test), clang (libFuzzer: make fuzz,
# make test-fuzz), prometheus (promtool for the metrics test). Then the node test's packages.
# Needs root (or sudo) for apt-get.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi

missing=
need() {
    # need PACKAGE CHECK...: CHECK is a command name or a file path
    pkg=$1; shift
    for c in "$@"; do
        case $c in
            /*) [ -e "$c" ] && return 0 ;;
            *)  command -v "$c" >/dev/null 2>&1 && return 0 ;;
        esac
    done
    missing="$missing $pkg"
}

need build-essential cc
need make make
need pkg-config pkg-config
need nginx /usr/sbin/nginx
need nginx-dev /usr/share/nginx/src/configure
need libyajl-dev /usr/include/yajl/yajl_tree.h
need libpcre2-dev /usr/include/pcre2.h
need perl prove
need valgrind valgrind
need clang clang
# libFuzzer and the sanitizer runtimes are only Recommended by clang's
# packages (and apt-get runs with --no-install-recommends below)
rt=$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
need libclang-rt-dev "${rt:-/nonexistent}"
need curl curl
need openssl openssl
need nodejs node
need npm npm
need chromium chromium
need dpkg-dev dpkg-buildflags
# promtool (t/100-metrics.t lints /metrics with it)
need prometheus promtool

if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
else
    echo "system packages: all present"
fi

if [ -f "$here/t/openai/package-lock.json" ]; then
    # the openai client test; without network it is skipped, not fatal
    (cd "$here/t/openai" && npm ci --no-audit --no-fund) \
        || echo "warning: npm ci failed in t/openai; the openai test will be skipped"

fi

if [ -f "$here/t/browser/package-lock.json" ]; then
    # the playground test (playwright-core drives Debian's chromium)
    (cd "$here/t/browser" && npm ci --no-audit --no-fund) \
        || echo "warning: npm ci failed in t/browser; the browser test will be skipped"
fi

echo "done: 'make module' builds the nginx module, 'make test' runs the tests"
