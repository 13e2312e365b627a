/*
 * The shim's runtime: fiber scheduler for kernel launches, half/bfloat16
 * conversions, device queries and errors. Streams, graphs, memory and
 * cuBLAS are in st_cuda_shim_stream.cc. See st_cuda_shim.h.
 *
 * Scheduling: a block's threads are fibers started in threadIdx order;
 * each runs until it finishes or waits at a barrier, then control returns
 * to the scheduler, which resumes the next fiber whose barrier has opened.
 * On x86-64 a fiber switch is a few instructions (callee-saved registers
 * and the stack pointer, plus the FP control words); elsewhere ucontext
 * is used (correct, much slower: glibc's swapcontext makes a system call
 * to save the signal mask).
 */
#include "backend/cuda/shim/st_cuda_shim.h"
#include "backend/cuda/shim/st_cuda_shim_internal.h"

#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#include <ucontext.h>
#define ST_SHIM_UCONTEXT 1
#endif

/* Fibers hand control to each other directly; valgrind must know their
 * stacks, or it takes a switch between two nearby stacks for a huge
 * stack frame and reports every later access as invalid. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define ST_SHIM_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER(lo, hi)
#endif
#endif
#if !defined(ST_SHIM_STACK_REGISTER)
#define ST_SHIM_STACK_REGISTER(lo, hi) 0
#endif

thread_local st_shim_fiber *st_shim_cur;
thread_local dim3 st_shim_block_idx, st_shim_block_dim, st_shim_grid_dim;

namespace {

const size_t ST_SHIM_STACK_BYTES = 64 * 1024;
const unsigned ST_SHIM_MAX_THREADS = 1024;

enum { ST_RUNNABLE = 0, ST_WAIT_BLOCK = 1, ST_WAIT_WARP = 2, ST_DONE = 3 };

struct st_shim_sched {
    st_shim_fiber   fibers[ST_SHIM_MAX_THREADS];
    unsigned        n_fibers_ready;       /* fibers with stacks */
    unsigned        n;                    /* threads in this block */
    unsigned        n_live;
    void           *main_sp;              /* scheduler's saved context */
    void           *main_uctx;
    st_shim_body_fn body;
    void           *ctx;
    /* block barrier */
    unsigned        bar_arrived, bar_gen;
    /* warp barriers: arrivals, generation, live lanes; slots double
     * buffered by generation parity */
    unsigned        warp_arrived[ST_SHIM_MAX_THREADS / 32];
    unsigned        warp_gen[ST_SHIM_MAX_THREADS / 32];
    unsigned        warp_live[ST_SHIM_MAX_THREADS / 32];
    uint64_t        slots[2][ST_SHIM_MAX_THREADS];
    void           *smem;
    size_t          smem_cap;
    cudaError_t     error;
};

thread_local st_shim_sched *sched;
/* launches, threads, switches (file-local: the switch counter is bumped
 * on every fiber switch, and a TLS access across files costs a call) */
thread_local st_shim_stats  counts;

}  /* namespace */

thread_local cudaError_t    st_shim_last_error = cudaSuccess;

#if !defined(ST_SHIM_UCONTEXT)
/*
 * st_shim_switch(void **save_sp, void *to_sp): pushes the callee-saved
 * registers and the MXCSR / x87 control words, saves rsp, loads to_sp and
 * pops the other side's. A new fiber's stack is laid out as if it had
 * been switched out just before entering st_shim_fiber_entry.
 */
extern "C" void st_shim_switch(void **save_sp, void *to_sp);
asm(".text\n"
    ".globl st_shim_switch\n"
    ".type st_shim_switch,@function\n"
    "st_shim_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size st_shim_switch, .-st_shim_switch\n");
#endif


static bool st_shim_can_run(st_shim_fiber *f);


/*
 * The running fiber stops (barrier or end). Control goes straight to the
 * next fiber of the scheduler's pass (the first runnable one after this
 * in threadIdx order), or back to the scheduler at the end of the pass:
 * the order of the scheduler's loop, with one switch instead of two.
 */
static void
st_shim_to_sched(void)
{
    st_shim_fiber *f = st_shim_cur;
    unsigned       i;

    counts.switches++;
    for (i = f->linear + 1; i < sched->n; i++) {
        st_shim_fiber *g = &sched->fibers[i];

        if (st_shim_can_run(g)) {
            g->state = ST_RUNNABLE;
            st_shim_cur = g;
#if defined(ST_SHIM_UCONTEXT)
            swapcontext((ucontext_t *) f->uctx, (ucontext_t *) g->uctx);
#else
            st_shim_switch(&f->sp, g->sp);
#endif
            return;
        }
    }
#if defined(ST_SHIM_UCONTEXT)
    swapcontext((ucontext_t *) f->uctx, (ucontext_t *) sched->main_uctx);
#else
    st_shim_switch(&f->sp, sched->main_sp);
#endif
}


static void
st_shim_fiber_main(void)
{
    st_shim_fiber *f = st_shim_cur;
    unsigned       w = f->linear / 32;

    sched->body(sched->ctx);
    f->state = ST_DONE;
    sched->n_live--;
    sched->warp_live[w]--;
    /* a finished thread no longer holds up barriers of the others */
    if (sched->bar_arrived > 0 && sched->bar_arrived >= sched->n_live) {
        sched->bar_arrived = 0;
        sched->bar_gen++;
    }
    if (sched->warp_arrived[w] > 0
        && sched->warp_arrived[w] >= sched->warp_live[w])
    {
        sched->warp_arrived[w] = 0;
        sched->warp_gen[w]++;
    }
    st_shim_to_sched();
    /* never resumed */
    std::abort();
}


#if !defined(ST_SHIM_UCONTEXT)
extern "C" void st_shim_fiber_entry(void);
asm(".text\n"
    ".globl st_shim_fiber_entry\n"
    ".type st_shim_fiber_entry,@function\n"
    "st_shim_fiber_entry:\n"
    "    call *%r12\n"
    "    ud2\n"
    ".size st_shim_fiber_entry, .-st_shim_fiber_entry\n");
#endif


/* Prepares fiber f to start st_shim_fiber_main on its own stack. */
static int
st_shim_fiber_init(st_shim_fiber *f)
{
    if (f->stack == NULL) {
        void *s = mmap(NULL, ST_SHIM_STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (s == MAP_FAILED) {
            return -1;
        }
        f->stack = s;
        f->stack_bytes = ST_SHIM_STACK_BYTES;
        (void) ST_SHIM_STACK_REGISTER((char *) s,
                                      (char *) s + ST_SHIM_STACK_BYTES);
#if defined(ST_SHIM_UCONTEXT)
        f->uctx = calloc(1, sizeof(ucontext_t));
        if (f->uctx == NULL) {
            return -1;
        }
#endif
    }
#if defined(ST_SHIM_UCONTEXT)
    {
        ucontext_t *u = (ucontext_t *) f->uctx;
        getcontext(u);
        u->uc_stack.ss_sp = f->stack;
        u->uc_stack.ss_size = f->stack_bytes;
        u->uc_link = NULL;
        makecontext(u, st_shim_fiber_main, 0);
    }
#else
    {
        uintptr_t top = ((uintptr_t) f->stack + f->stack_bytes) & ~(uintptr_t) 15;
        uint64_t *sp = (uint64_t *) top;
        uint32_t  mxcsr;
        uint16_t  fpucw;

        __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
        __asm__ volatile("fnstcw %0" : "=m"(fpucw));
        /* "return" address: the ret lands with rsp = top (16-aligned),
         * as the ABI wants before the trampoline's call */
        *--sp = (uint64_t) (uintptr_t) st_shim_fiber_entry;
        *--sp = 0;                                  /* rbp */
        *--sp = 0;                                  /* rbx */
        *--sp = (uint64_t) (uintptr_t) st_shim_fiber_main;  /* r12 */
        *--sp = 0;                                  /* r13 */
        *--sp = 0;                                  /* r14 */
        *--sp = 0;                                  /* r15 */
        *--sp = (uint64_t) mxcsr | ((uint64_t) fpucw << 32);
        f->sp = sp;
    }
#endif
    return 0;
}


/* Waiting fibers whose barrier has opened become runnable. */
static bool
st_shim_can_run(st_shim_fiber *f)
{
    switch (f->state) {
    case ST_RUNNABLE:
        return true;
    case ST_WAIT_BLOCK:
        return sched->bar_gen != f->wait_gen;
    case ST_WAIT_WARP:
        return sched->warp_gen[f->linear / 32] != f->wait_gen;
    default:
        return false;
    }
}


static int
st_shim_run_block(void)
{
    unsigned i, progress;

    for (;;) {
        progress = 0;
        for (i = 0; i < sched->n; i++) {
            st_shim_fiber *f = &sched->fibers[i];

            if (!st_shim_can_run(f)) {
                continue;
            }
            f->state = ST_RUNNABLE;
            st_shim_cur = f;
            counts.switches++;
#if defined(ST_SHIM_UCONTEXT)
            swapcontext((ucontext_t *) sched->main_uctx, (ucontext_t *) f->uctx);
#else
            st_shim_switch(&sched->main_sp, f->sp);
#endif
            /* the fibers handed control on to the end of the pass */
            progress++;
            break;
        }
        if (sched->n_live == 0) {
            return 0;
        }
        if (progress == 0) {
            return -1;        /* every live thread waits: a deadlock */
        }
    }
}


void
st_shim_syncthreads(void)
{
    st_shim_fiber *f = st_shim_cur;

    /* the last to arrive opens the barrier and still yields, so that
     * threads resume in threadIdx order */
    f->wait_gen = sched->bar_gen;
    if (++sched->bar_arrived >= sched->n_live) {
        sched->bar_arrived = 0;
        sched->bar_gen++;
    }
    f->state = ST_WAIT_BLOCK;
    st_shim_to_sched();
}


static void
st_shim_warp_wait(void)
{
    st_shim_fiber *f = st_shim_cur;
    unsigned       w = f->linear / 32;

    f->wait_gen = sched->warp_gen[w];
    if (++sched->warp_arrived[w] >= sched->warp_live[w]) {
        sched->warp_arrived[w] = 0;
        sched->warp_gen[w]++;
    }
    f->state = ST_WAIT_WARP;
    st_shim_to_sched();
}


void
st_shim_syncwarp(void)
{
    st_shim_warp_wait();
}


uint64_t
st_shim_exchange(uint64_t v, unsigned src_lane)
{
    st_shim_fiber *f = st_shim_cur;
    unsigned       w = f->linear / 32;
    unsigned       buf = sched->warp_gen[w] & 1u;
    unsigned       src = w * 32 + src_lane;

    sched->slots[buf][f->linear] = v;
    st_shim_warp_wait();
    /* a lane past the block's last thread gives back the caller's value */
    return src < sched->n ? sched->slots[buf][src] : v;
}


void *
st_shim_dyn_smem(void)
{
    return sched->smem;
}


int
st_shim_check_config(dim3 grid, dim3 block)
{
    unsigned n = block.x * block.y * block.z;

    if (n == 0 || n > ST_SHIM_MAX_THREADS || block.z > 64
        || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535
        || grid.z > 65535)
    {
        st_shim_last_error = cudaErrorInvalidConfiguration;
        return st_shim_last_error;
    }
    return 0;
}


int
st_shim_launch_raw(dim3 grid, dim3 block, size_t shmem_bytes,
    st_shim_body_fn body, void *ctx)
{
    unsigned n = block.x * block.y * block.z, i, w, bx, by, bz;

    if (st_shim_check_config(grid, block) != 0) {
        return st_shim_last_error;
    }
    if (sched == NULL) {
        sched = (st_shim_sched *) calloc(1, sizeof(*sched));
        if (sched == NULL) {
            st_shim_last_error = cudaErrorMemoryAllocation;
            return st_shim_last_error;
        }
#if defined(ST_SHIM_UCONTEXT)
        sched->main_uctx = calloc(1, sizeof(ucontext_t));
        if (sched->main_uctx == NULL) {
            st_shim_last_error = cudaErrorMemoryAllocation;
            return st_shim_last_error;
        }
#endif
    }
    if (shmem_bytes > sched->smem_cap) {
        void *p = realloc(sched->smem, shmem_bytes);
        if (p == NULL) {
            st_shim_last_error = cudaErrorMemoryAllocation;
            return st_shim_last_error;
        }
        sched->smem = p;
        sched->smem_cap = shmem_bytes;
    }
    sched->body = body;
    sched->ctx = ctx;
    sched->n = n;
    counts.launches++;
    st_shim_grid_dim = grid;
    st_shim_block_dim = block;

    for (bz = 0; bz < grid.z; bz++) {
        for (by = 0; by < grid.y; by++) {
            for (bx = 0; bx < grid.x; bx++) {
                st_shim_block_idx = dim3(bx, by, bz);
                for (i = 0; i < n; i++) {
                    st_shim_fiber *f = &sched->fibers[i];

                    if (st_shim_fiber_init(f) != 0) {
                        st_shim_last_error = cudaErrorMemoryAllocation;
                        return st_shim_last_error;
                    }
                    f->linear = i;
                    f->tid = dim3(i % block.x, (i / block.x) % block.y,
                                  i / (block.x * block.y));
                    f->state = ST_RUNNABLE;
                    f->wait_gen = 0;
                }
                for (w = 0; w < (n + 31) / 32; w++) {
                    sched->warp_arrived[w] = 0;
                    sched->warp_gen[w] = 0;
                    sched->warp_live[w] = (w + 1) * 32 <= n ? 32 : n - w * 32;
                }
                sched->n_live = n;
                sched->bar_arrived = 0;
                sched->bar_gen = 0;
                counts.threads += n;
                if (st_shim_run_block() != 0) {
                    fprintf(stderr, "cuda shim: deadlock in block (%u,%u,%u)"
                            " (a barrier not reached by every thread)\n",
                            bx, by, bz);
                    st_shim_last_error = cudaErrorLaunchFailure;
                    return st_shim_last_error;
                }
            }
        }
    }
    st_shim_cur = NULL;
    return 0;
}


void
st_shim_stats_get(st_shim_stats *out)
{
    *out = counts;
    st_shim_graph_counts(&out->graph_launches, &out->graph_nodes);
}


/* ---- half / bfloat16 ------------------------------------------------ */

float
st_shim_h2f(uint16_t h)
{
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;

    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {
            /* subnormal: value = mant * 2^-24, exact in float */
            float f = (float) mant * 5.9604644775390625e-8f;
            return (h & 0x8000) ? -f : f;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112) << 23) | (mant << 13);
    }
    return __uint_as_float(u);
}


uint16_t
st_shim_f2h(float f)
{
    uint32_t u = __float_as_uint(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t au = u & 0x7fffffffu;
    int32_t  exp;
    uint32_t mant, r, half_ulp, rem;

    if (au >= 0x7f800000u) {                       /* inf or NaN */
        return (uint16_t) (sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0));
    }
    if (au >= 0x477ff000u) {                       /* rounds to >= 65536 */
        return (uint16_t) (sign | 0x7c00);
    }
    exp = (int32_t) (au >> 23) - 127;
    if (exp >= -14) {                              /* normal half */
        mant = au & 0x7fffff;
        r = ((uint32_t) (exp + 15) << 10) | (mant >> 13);
        rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) {
            r++;                                   /* may carry into exp */
        }
        return (uint16_t) (sign | r);
    }
    if (exp < -25) {                               /* below half of 2^-24 */
        return (uint16_t) sign;
    }
    /* subnormal half: value / 2^-24, rounded to nearest even */
    mant = (au & 0x7fffff) | 0x800000;
    {
        /* value = mant * 2^(exp-23); in units of 2^-24: mant * 2^(exp+1) */
        int shift = -(exp + 1);
        r = mant >> shift;
        half_ulp = 1u << (shift - 1);
        rem = mant & ((1u << shift) - 1);
        if (rem > half_ulp || (rem == half_ulp && (r & 1))) {
            r++;
        }
    }
    return (uint16_t) (sign | r);
}


float
st_shim_bf2f(uint16_t h)
{
    return __uint_as_float((uint32_t) h << 16);
}


uint16_t
st_shim_f2bf(float f)
{
    uint32_t u = __float_as_uint(f);

    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t) ((u >> 16) | 64);        /* quiet NaN */
    }
    return (uint16_t) ((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}


/* ---- runtime API ---------------------------------------------------- */

const char *
cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    }
    return "unknown error";
}


const char *
cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    }
    return "cudaErrorUnknown";
}


cudaError_t
cudaGetLastError(void)
{
    cudaError_t e = st_shim_last_error;

    st_shim_last_error = cudaSuccess;
    return e;
}


cudaError_t cudaPeekAtLastError(void) { return st_shim_last_error; }


/* ST_SHIM_DEVICES=0 lets tests take the "no device" path. */
cudaError_t
cudaGetDeviceCount(int *n)
{
    const char *s = getenv("ST_SHIM_DEVICES");

    if (s != NULL && atoi(s) == 0) {
        *n = 0;
        return cudaErrorNoDevice;
    }
    *n = 1;
    return cudaSuccess;
}


cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDevice(int *dev) { *dev = 0; return cudaSuccess; }


static size_t
st_shim_host_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

    return pages > 0 && page > 0 ? (size_t) pages * (size_t) page
                                 : (size_t) 1 << 32;
}


cudaError_t
cudaGetDeviceProperties(cudaDeviceProp *p, int dev)
{
    if (dev != 0) {
        return cudaErrorInvalidValue;
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "shim (CUDA kernels on the CPU)");
    p->totalGlobalMem = st_shim_host_bytes();
    p->major = 0;
    p->minor = 0;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}


cudaError_t cudaRuntimeGetVersion(int *v) { *v = 0; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = 0; return cudaSuccess; }


/* ST_SHIM_VRAM_BYTES pretends the device has that much memory free (to
 * test the "model does not fit" error). */
cudaError_t
cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    const char *s = getenv("ST_SHIM_VRAM_BYTES");
    size_t      total = s ? (size_t) strtoull(s, NULL, 10) : st_shim_host_bytes();

    *free_bytes = total;
    *total_bytes = total;
    return cudaSuccess;
}
