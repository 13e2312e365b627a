/*
 * Minimal TAP producer for the engine's C unit tests (run with prove).
 * Header-only; each test program includes it once.
 */
#ifndef ST_TAP_H
#define ST_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n_run, tap_n_failed;

static void __attribute__((unused))
tap_vok(int cond, const char *fmt, va_list ap)
{
    tap_n_run++;
    if (!cond) {
        tap_n_failed++;
        printf("not ");
    }
    printf("ok %d - ", tap_n_run);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

static int __attribute__((unused, format(printf, 2, 3)))
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    return cond;
}

static void __attribute__((unused, format(printf, 1, 2)))
diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void __attribute__((unused, format(printf, 1, 2)))
skip(const char *fmt, ...)
{
    va_list ap;

    tap_n_run++;
    printf("ok %d # skip ", tap_n_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Prints the plan at the end and returns the exit status for main(). */
static int __attribute__((unused))
done_testing(void)
{
    printf("1..%d\n", tap_n_run);
    return tap_n_failed ? 1 : 0;
}

/* $ST_SHARED (default ../shared) and $ST_ROOT (default .) paths. */
static __attribute__((unused)) const char *
tap_shared_dir(void)
{
    const char *s = getenv("ST_SHARED");
    return s ? s : "../shared";
}

static __attribute__((unused)) const char *
tap_root_dir(void)
{
    const char *s = getenv("ST_ROOT");
    return s ? s : ".";
}

#endif /* ST_TAP_H */
