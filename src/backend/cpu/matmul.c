/*
 * y (n_rows, n_out) = x (n_rows, n_in) . W^T on the CPU team.
 *
 * 1. Every activation row is converted once to W's vec_dot type
 *    (from_float) into the caller's scratch; rows are split across the
 *    team when there are many.
 * 2. The output is tiled into (chunk of W rows) x (block of activation
 *    rows) work items, handed out dynamically through an atomic counter.
 *    Items are numbered W-chunk-major, so each weight row is streamed
 *    from memory about once per call, and inside an item W rows are the
 *    outer loop, activation rows the inner one (the W chunk and the
 *    activation block stay in L1/L2 — the GEMM shape for prefill).
 * 3. Inside an item, full tiles of nw W rows x na activation rows go to
 *    the level's GEMM microkernel (kernels.h), which shares loads and
 *    weight unpacking between the elements of a tile; the edges, and
 *    calls with fewer rows than a tile (decode), use vec_dot.
 *
 * Batch invariance: every y[r][o] has the bits of one vec_dot call on
 * weight row o and converted row r, with the kernels chosen once per
 * process: the GEMM kernels reproduce vec_dot element for element
 * (test_matmul checks it for every type and level), so n_rows, thread
 * count and tiling only decide who computes a value, never how.
 */
#include "backend/cpu/matmul.h"
#include "backend/cpu/kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ST_MM_ALIGN          64
#define ST_MM_CHUNK_MIN      16      /* W rows per work item, bounds */
#define ST_MM_CHUNK_MAX      64
#define ST_MM_ROW_BLOCK      32      /* activation rows per work item */
#define ST_MM_CONVERT_PAR    (64 * 1024)  /* values: convert in parallel */
/* Below this much weight traffic (bytes x activation rows) a call takes a
 * few microseconds, less than handing work to another core costs (cache
 * lines of the counter, y and xq moving between cores): run on the
 * caller alone. */
#define ST_MM_PAR_MIN_BYTES  (64 * 1024)

typedef struct {
    const st_weight  *w;
    st_vec_dot_fn     vec_dot;
    st_gemm_kernel    gemm;          /* tile kernel, bit-identical */
    st_from_float_fn  from_float;

    const float      *x;             /* (n_rows, n_in) */
    uint8_t          *xq;            /* (n_rows, xq_row_bytes) */
    size_t            xq_row_bytes;
    float            *xs;            /* (n_rows, xs_stride) Q8_0 block
                                        scales as f32, for gemm */
    size_t            xs_stride;
    int32_t          *xsum;          /* (n_rows, xsum_stride) gemm a_sums */
    size_t            xsum_stride;
    int64_t           n_rows;
    float            *y;             /* (n_rows, n_out) */

    int64_t           chunk_rows;    /* W rows per item */
    int64_t           n_chunks;
    int64_t           n_row_blocks;
    int64_t           n_items;
    atomic_llong      next_item;
} st_mm_ctx;


static size_t
st_mm_round(size_t n)
{
    return (n + ST_MM_ALIGN - 1) / ST_MM_ALIGN * ST_MM_ALIGN;
}


static void
st_mm_convert(void *vctx, int ith, int nth)
{
    st_mm_ctx *c = vctx;
    int64_t    per = (c->n_rows + nth - 1) / nth;
    int64_t    r0 = per * ith, r1 = r0 + per, r;

    if (r1 > c->n_rows) {
        r1 = c->n_rows;
    }
    for (r = r0; r < r1; r++) {
        c->from_float(c->x + r * c->w->n_in, c->xq + r * c->xq_row_bytes,
                      c->w->n_in);
        if (c->xs != NULL) {
            const st_block_q8_0 *b = (const st_block_q8_0 *)
                                     (c->xq + r * c->xq_row_bytes);
            float               *d = c->xs + (size_t) r * c->xs_stride;
            size_t               i;

            for (i = 0; i < c->xs_stride; i++) {
                d[i] = st_f16_to_f32(b[i].d);
            }
        }
        if (c->xsum != NULL && (c->gemm.a_scales & ST_GEMM_A_BSUMS)) {
            st_gemm_a_bsums(c->xq + r * c->xq_row_bytes, c->w->n_in,
                            c->xsum + (size_t) r * c->xsum_stride);
        } else if (c->xsum != NULL) {
            st_gemm_a_sums8(c->xq + r * c->xq_row_bytes, c->w->n_in,
                            c->xsum + (size_t) r * c->xsum_stride);
        }
    }
}


void
st_gemm_a_sums8(const void *xq, int64_t n, int32_t *out)
{
    const st_block_q8_0 *b = xq;
    int64_t              i;
    int                  j;

    for (i = 0; i < n / ST_QK8_0; i++) {
        for (j = 0; j < 8; j++) {
            const int8_t *q = b[i].qs + 4 * j;

            out[8 * i + j] = 8 * ((int32_t) q[0] + q[1] + q[2] + q[3]);
        }
    }
}


void
st_gemm_a_bsums(const void *xq, int64_t n, int32_t *out)
{
    const st_block_q8_0 *b = xq;
    int64_t              i;
    int                  j;

    for (i = 0; i < n / ST_QK8_0; i++) {
        int32_t sum = 0;

        for (j = 0; j < ST_QK8_0; j++) {
            sum += b[i].qs[j];
        }
        out[i] = -8 * sum;
    }
}


/* y[r][o] for o in [o0, o1), r in [r0, r1), one vec_dot each */
static void
st_mm_item_dots(const st_mm_ctx *c, int64_t o0, int64_t o1, int64_t r0,
    int64_t r1)
{
    const st_weight *w = c->w;
    int64_t          o, r;

    for (o = o0; o < o1; o++) {
        const uint8_t *wrow = (const uint8_t *) w->data
                              + (size_t) o * w->row_bytes;

        /* the next row, while this one is worked on (kernels.h) */
        st_prefetch_part(wrow + w->row_bytes, w->row_bytes, 0, 1);
        for (r = r0; r < r1; r++) {
            c->vec_dot(w->n_in, c->y + r * w->n_out + o, wrow,
                       c->xq + (size_t) r * c->xq_row_bytes);
        }
    }
}


static void
st_mm_item(const st_mm_ctx *c, int64_t item)
{
    const st_weight *w = c->w;
    int64_t          ch = item / c->n_row_blocks;
    int64_t          rb = item % c->n_row_blocks;
    int64_t          o0 = ch * c->chunk_rows, o1 = o0 + c->chunk_rows;
    int64_t          r0 = rb * ST_MM_ROW_BLOCK, r1 = r0 + ST_MM_ROW_BLOCK;
    int64_t          o;

    if (o1 > w->n_out) {
        o1 = w->n_out;
    }
    if (r1 > c->n_rows) {
        r1 = c->n_rows;
    }
    o = o0;
    if (c->gemm.fn != NULL && r1 - r0 >= c->gemm.na) {
        st_gemm_args g;
        int64_t      nw = c->gemm.nw;

        /* full tiles; what is left over goes to vec_dot below, which
         * gives the same bits */
        g.n = w->n_in;
        g.out_stride = (size_t) w->n_out;
        g.w_stride = w->row_bytes;
        g.a = c->xq + (size_t) r0 * c->xq_row_bytes;
        g.a_stride = c->xq_row_bytes;
        g.a_scales = c->xs ? c->xs + (size_t) r0 * c->xs_stride : NULL;
        g.as_stride = c->xs_stride;
        g.a_sums = c->xsum ? c->xsum + (size_t) r0 * c->xsum_stride : NULL;
        g.sums_stride = c->xsum_stride;
        g.n_a = (r1 - r0) / c->gemm.na * c->gemm.na;
        for (; o + nw <= o1; o += nw) {
            g.out = c->y + r0 * w->n_out + o;
            g.w = (const uint8_t *) w->data + (size_t) o * w->row_bytes;
            c->gemm.fn(&g);
        }
        st_mm_item_dots(c, o0, o, r0 + g.n_a, r1);
    }
    st_mm_item_dots(c, o, o1, r0, r1);
}


static void
st_mm_compute(void *vctx, int ith, int nth)
{
    st_mm_ctx *c = vctx;
    int64_t    item;

    (void) ith;
    (void) nth;
    for ( ;; ) {
        item = atomic_fetch_add_explicit(&c->next_item, 1,
                                         memory_order_relaxed);
        if (item >= c->n_items) {
            return;
        }
        st_mm_item(c, item);
    }
}


st_status
st_matmul(st_threadpool *tp, st_matmul_scratch *scratch, const st_weight *w,
    const float *x, int64_t n_rows, float *y)
{
    const st_type_traits *wt, *vt;
    st_cpu_level          level;
    st_mm_ctx             c;
    uint64_t              xq_row_bytes;
    size_t                need, xs_off, xsum_off;
    int                   nth;
    int64_t               chunk;

    if (w == NULL || x == NULL || y == NULL || n_rows < 0 || w->n_in <= 0
        || w->n_out < 0)
    {
        return ST_ERR_INVALID;
    }
    if (n_rows == 0 || w->n_out == 0) {
        return ST_OK;
    }
    wt = st_type_traits_get(w->type);
    if (wt == NULL || !wt->supported) {
        return ST_ERR_UNSUPPORTED;
    }
    vt = st_type_traits_get(wt->vec_dot_type);
    if (vt == NULL || st_row_bytes(w->type, (uint64_t) w->n_in)
                      != w->row_bytes)
    {
        return ST_ERR_INVALID;
    }
    xq_row_bytes = st_row_bytes(wt->vec_dot_type, (uint64_t) w->n_in);
    if (xq_row_bytes == 0) {
        return ST_ERR_INVALID;     /* n_in not a multiple of the blocks */
    }

    memset(&c, 0, sizeof(c));
    level = st_cpu_level_selected();
    c.w = w;
    c.vec_dot = st_cpu_vec_dot(level, w->type);
    c.from_float = st_cpu_from_float(level, wt->vec_dot_type);
    c.gemm = st_cpu_gemm(level, w->type);
    if (w->n_in > c.gemm.max_n || n_rows < c.gemm.na) {
        /* decode rows: the one-row kernel, or one vec_dot each */
        c.gemm = st_cpu_gemv(level, w->type);
        if (c.gemm.fn == NULL || w->n_in > c.gemm.max_n) {
            c.gemm.fn = NULL;
        }
    }
    if (c.vec_dot == NULL || c.from_float == NULL) {
        return ST_ERR_UNSUPPORTED;
    }
    c.x = x;
    c.n_rows = n_rows;
    c.y = y;
    c.xq_row_bytes = (size_t) xq_row_bytes;
    nth = st_threadpool_size(tp);
    if ((double) w->row_bytes * (double) w->n_out * (double) n_rows
        < (double) ST_MM_PAR_MIN_BYTES)
    {
        nth = 1;
        tp = NULL;
    }

    /* 1. activations -> vec_dot type (F32 weights read x directly) */
    if (wt->vec_dot_type == ST_TYPE_F32) {
        c.xq = (uint8_t *) (uintptr_t) x;
    } else {
        /* xq plus its extras stay below 3x xq (+ alignment) */
        if ((uint64_t) n_rows > (SIZE_MAX / 4) / xq_row_bytes) {
            return ST_ERR_NOMEM;
        }
        /* xq | xs (f32 scales) | xsum (int32 x 8 per block), each
         * part 64-byte aligned; the extras are smaller than xq per row
         * (4 resp. 32 bytes per 34-byte block) */
        need = (size_t) n_rows * c.xq_row_bytes;
        xs_off = xsum_off = need = st_mm_round(need);
        if (c.gemm.fn != NULL && c.gemm.a_scales) {
            c.xs_stride = (size_t) (w->n_in / ST_QK8_0);
            need += (size_t) n_rows * c.xs_stride * sizeof(float);
            xsum_off = need = st_mm_round(need);
        }
        if (c.gemm.fn != NULL
            && (c.gemm.a_scales & (ST_GEMM_A_SUMS | ST_GEMM_A_BSUMS)))
        {
            c.xsum_stride = (size_t) (w->n_in / ST_QK8_0)
                            * (c.gemm.a_scales & ST_GEMM_A_SUMS ? 8 : 1);
            need += (size_t) n_rows * c.xsum_stride * sizeof(int32_t);
        }
        if (scratch->cap < need) {
            void  *buf;
            size_t cap = (need + ST_MM_ALIGN - 1) / ST_MM_ALIGN * ST_MM_ALIGN;

            buf = aligned_alloc(ST_MM_ALIGN, cap);
            if (buf == NULL) {
                return ST_ERR_NOMEM;
            }
            free(scratch->buf);
            scratch->buf = buf;
            scratch->cap = cap;
        }
        c.xq = scratch->buf;
        if (c.xs_stride != 0) {
            c.xs = (float *) (void *) (c.xq + xs_off);
        }
        if (c.xsum_stride != 0) {
            c.xsum = (int32_t *) (void *) (c.xq + xsum_off);
        }
        if (nth > 1 && n_rows > 1 && n_rows * w->n_in >= ST_MM_CONVERT_PAR) {
            st_threadpool_run(tp, st_mm_convert, &c);
        } else {
            st_mm_convert(&c, 0, 1);
        }
    }

    /* 2. work items: enough W chunks for every thread to get several, so
     * the dynamic hand-out balances uneven thread speed */
    chunk = w->n_out / ((int64_t) nth * 8);
    if (chunk < ST_MM_CHUNK_MIN) {
        chunk = ST_MM_CHUNK_MIN;
    }
    if (chunk > ST_MM_CHUNK_MAX) {
        chunk = ST_MM_CHUNK_MAX;
    }
    if (c.gemm.fn != NULL && c.gemm.nw > 1) {
        /* whole tiles: the rest of a chunk would go to vec_dot */
        chunk = (chunk + c.gemm.nw - 1) / c.gemm.nw * c.gemm.nw;
    }
    c.chunk_rows = chunk;
    c.n_chunks = (w->n_out + chunk - 1) / chunk;
    c.n_row_blocks = (n_rows + ST_MM_ROW_BLOCK - 1) / ST_MM_ROW_BLOCK;
    c.n_items = c.n_chunks * c.n_row_blocks;
    atomic_init(&c.next_item, 0);

    if (nth > 1 && c.n_items > 1) {
        st_threadpool_run(tp, st_mm_compute, &c);
    } else {
        st_mm_compute(&c, 0, 1);
    }
    return ST_OK;
}


void
st_matmul_scratch_free(st_matmul_scratch *s)
{
    if (s == NULL) {
        return;
    }
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}
