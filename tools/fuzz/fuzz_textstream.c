/*
 * libFuzzer target: the UTF-8 text stream with stop strings
 * (src/text/textstream.h). Arbitrary stop strings and pieces; checks the
 * header's promises: released text is always valid UTF-8 and never ends
 * inside a character, a stop string (valid UTF-8 ones; invalid ones are
 * normalised first) never appears in the released text, and the result
 * (text and stop index) does not depend on how the bytes were cut into
 * pieces (fed as given, byte by byte, and all at once).
 *
 * Input: byte 0 = number of stop strings (mod 5); each stop string is a
 * length byte (mod 16) and that many bytes; the rest are pieces, each a
 * length byte (mod 32) and that many bytes.
 */
#include "text/textstream.h"

#include "starling/st_api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 4

typedef struct {
    char  *p;
    size_t n, cap;
} buf_t;


static void
take(st_textstream *ts, buf_t *b)
{
    size_t      len;
    const char *s = st_textstream_take(ts, &len);

    if (s == NULL || !st_api_utf8_valid(s, len)) {
        abort();
    }
    if (b->n + len > b->cap) {
        b->cap = (b->n + len) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) {
            abort();
        }
    }
    if (len > 0) {
        memcpy(b->p + b->n, s, len);
    }
    b->n += len;
}

/* mode 0: pieces as given, 1: byte by byte, 2: everything at once */
static int
run(const char *const *stop, size_t n_stop, const uint8_t *d, size_t size,
    int mode, buf_t *out)
{
    st_textstream *ts;
    size_t         i = 0;
    int            idx;

    if (st_textstream_create(&ts, stop, n_stop, NULL) != ST_OK) {
        abort();
    }
    if (mode == 2) {
        char  *all = malloc(size + 1);
        size_t n = 0;
        while (i < size) {
            size_t len = d[i++] % 32;
            if (len > size - i) len = size - i;
            memcpy(all + n, d + i, len);
            n += len;
            i += len;
        }
        if (st_textstream_push(ts, all, n) < 0) abort();
        take(ts, out);
        free(all);
    } else {
        while (i < size) {
            size_t len = d[i++] % 32, k;
            if (len > size - i) len = size - i;
            if (mode == 0) {
                if (st_textstream_push(ts, (const char *) d + i, len) < 0) abort();
                take(ts, out);
            } else {
                for (k = 0; k < len; k++) {
                    if (st_textstream_push(ts, (const char *) d + i + k, 1) < 0) abort();
                    take(ts, out);
                }
            }
            i += len;
        }
    }
    st_textstream_finish(ts);
    take(ts, out);
    if (st_textstream_status(ts) != ST_OK) abort();
    idx = st_textstream_stop_index(ts);
    st_textstream_free(ts);
    return idx;
}

static int
contains(const buf_t *b, const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > b->n) return 0;
    for (i = 0; i + n <= b->n; i++) {
        if (memcmp(b->p + i, s, n) == 0) return 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        stops[MAX_STOP][16];
    const char *sp[MAX_STOP];
    size_t      n_stop, i = 0, k, m;
    buf_t       out[3] = {{0}};
    int         idx[3];

    if (size < 1) {
        return 0;
    }
    n_stop = data[i++] % (MAX_STOP + 1);
    for (k = 0; k < n_stop; k++) {
        size_t len = i < size ? data[i++] % 16 : 0;
        if (len > size - i) len = size - i;
        memcpy(stops[k], data + i, len);
        stops[k][len] = '\0';   /* a NUL inside ends the string early */
        sp[k] = stops[k];
        i += len;
    }
    for (m = 0; m < 3; m++) {
        idx[m] = run(sp, n_stop, data + i, size - i, m, &out[m]);
    }
    for (m = 1; m < 3; m++) {
        if (idx[m] != idx[0] || out[m].n != out[0].n
            || (out[0].n && memcmp(out[m].p, out[0].p, out[0].n) != 0))
        {
            abort();   /* the result depends on how the bytes were cut */
        }
    }
    if (idx[0] < -1 || idx[0] >= (int) n_stop
        || (idx[0] >= 0 && sp[idx[0]][0] == '\0'))
    {
        abort();
    }
    for (k = 0; k < n_stop; k++) {
        if (st_api_utf8_valid(sp[k], strlen(sp[k]))
            && contains(&out[0], sp[k]))
        {
            abort();   /* a stop string got through */
        }
    }
    for (m = 0; m < 3; m++) free(out[m].p);
    return 0;
}
