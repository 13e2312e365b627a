/*
 * Turns a stream of token pieces (raw bytes) into text that is safe to
 * send: never splits a UTF-8 sequence, replaces byte sequences that can
 * never become valid UTF-8 with U+FFFD, finds stop strings across token
 * boundaries and holds back any tail that could still be the start of a
 * stop string.
 *
 * Invalid UTF-8 (stray continuation, invalid lead C0/C1/F5..FF,
 * overlong, surrogate, > U+10FFFF, truncated sequence) becomes one
 * U+FFFD per maximal invalid subpart (WHATWG / Unicode best practice);
 * nothing is dropped silently and it is never an error.
 *
 * Stop strings match the normalised output (after U+FFFD replacement;
 * the stop strings are normalised the same way). If several could
 * match, the one that ends first wins; at the same end, the longest;
 * then the lowest index. Cost: O(bytes * n_stop) in total, whatever the
 * piece sizes; at most max(stop length) - 1 bytes are ever held back.
 */
#ifndef ST_TEXTSTREAM_H
#define ST_TEXTSTREAM_H

#include "starling/st_common.h"

typedef struct st_textstream st_textstream;

/* stop: n_stop NUL-terminated strings (copied; empty strings ignored,
 * but keep their index for st_textstream_stop_index). */
st_status st_textstream_create(st_textstream **out, const char *const *stop,
    size_t n_stop, st_error *err);
void st_textstream_free(st_textstream *ts);

/* Feed one piece. Appends releasable text to the internal output buffer.
 * Returns 1 if a stop string matched (text before it has been released,
 * the stop string and anything after it are dropped), else 0. Once
 * stopped, every later push returns 1 and ignores its input. Returns -1
 * if memory ran out (the stream is unusable; st_textstream_status says
 * ST_ERR_NOMEM): a caller testing "!= 0" stops generation either way. */
int st_textstream_push(st_textstream *ts, const char *piece, size_t len);

/* End of generation: release everything still held (incomplete UTF-8
 * becomes U+FFFD). */
void st_textstream_finish(st_textstream *ts);

/* Text released since the last call to st_textstream_take; the pointer is
 * valid until the next push/finish/take (never NULL; *len may be 0). The
 * text is always valid UTF-8 and never ends inside a character. */
const char *st_textstream_take(st_textstream *ts, size_t *len);

/* Index of the stop string that matched, or -1. */
int st_textstream_stop_index(const st_textstream *ts);

/* ST_OK, or ST_ERR_NOMEM once some text could not be buffered. */
st_status st_textstream_status(const st_textstream *ts);

/* Work done so far: stop-automaton steps plus bytes copied. For tests that
 * check the cost per byte instead of timing it. */
uint64_t st_textstream_work(const st_textstream *ts);

#endif /* ST_TEXTSTREAM_H */
