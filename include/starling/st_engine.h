/*
 * Starling engine: the public contract between the inference engine and
 * its front ends (the nginx module, the CLI tools). Plain C11.
 *
 * Threading rule: the engine is owned by exactly one thread at a time.
 * st_engine_step() runs on the engine thread (nginx thread pool); every
 * other call is made by the owner between steps (the nginx event loop).
 * No locks inside: the hand-off itself must be a memory barrier (nginx's
 * thread-pool queue is).
 */
#ifndef ST_ENGINE_H
#define ST_ENGINE_H

#include "starling/st_common.h"
#include "starling/st_sampling.h"
#include "starling/st_tokenizer.h"

typedef struct st_engine st_engine;
typedef struct st_seq    st_seq;

typedef enum {
    ST_BACKEND_CPU = 0,
    ST_BACKEND_CUDA,
    ST_BACKEND_AUTO
} st_backend_kind;

typedef struct {
    const char      *path;                 /* GGUF file */
    const char      *sha256;               /* optional hex digest */
    st_backend_kind  backend;
    uint32_t         n_ctx;                /* per sequence; 0 = model's */
    uint32_t         n_threads;            /* 0 = online cores */
    uint32_t         max_seqs;             /* concurrently active; 0 = 16 */
    uint32_t         step_tokens;          /* token budget per step (prefill
                                              chunking); 0 = 512 */
    uint64_t         kv_bytes;             /* KV cache budget; 0 = enough
                                              for max_seqs full contexts */
    int32_t          device;               /* CUDA: device index hint,
                                              used modulo the device count
                                              (nginx passes the worker
                                              number) */
} st_engine_params;

void st_engine_params_default(st_engine_params *p);

/* Whether the backend named name ("cpu", "cuda") is compiled into this
 * program (touches no device). */
int st_engine_backend_built(const char *name);

/* Usable CUDA devices for backend=cuda: the count, or 0 with the reason in
 * why (no CUDA backend in this build, driver missing, no device...).
 * It initialises the CUDA runtime in the calling process: the nginx module
 * calls it in a short-lived child so that workers fork CUDA-free. */
int st_engine_cuda_probe(char *why, size_t why_len);

typedef struct {
    char        name[128];         /* general.name or file name */
    char        arch[32];          /* "llama", "qwen2" */
    char        quant_kind[32];    /* "F32", "Q8_0", "Q4_K_M", ... */
    const char *tokenizer_kind;    /* "spm" | "bpe" */
    const char *backend;           /* "cpu" | "cuda" */
    char        device[128];       /* kernel set / GPU name */
    uint64_t    device_bytes;      /* VRAM used by weights + KV (0 on CPU) */
    char        backend_note[192]; /* why "auto" fell back to the CPU, or "" */
    const char *chat_template;     /* tokenizer.chat_template or NULL */
    uint32_t    n_vocab;
    uint32_t    n_ctx_train;
    uint32_t    n_ctx;             /* per sequence, as configured */
    uint32_t    n_layer, n_embd, n_head, n_head_kv, n_ff;
    uint64_t    n_params;
    uint64_t    weight_bytes;      /* tensor data bytes */
    uint64_t    kv_bytes;          /* KV cache allocated */
    uint32_t    kv_block_tokens;
    uint32_t    kv_blocks_total;
} st_model_info;

/* What st_engine_check_model() found in a file. */
typedef struct {
    char        arch[32];
    char        quant_kind[32];
    uint32_t    n_vocab;
    uint32_t    n_ctx_train;
    uint32_t    n_layer;
    uint64_t    n_params;
    uint64_t    weight_bytes;
    uint64_t    file_bytes;
} st_model_check;

/* Validates a model file as st_engine_create() would (GGUF structure,
 * architecture, tensor types and shapes, tokenizer; sha256 when not
 * NULL) without reading its weights or creating a backend: for
 * configuration checks (nginx -t). Any thread; out may be NULL. */
st_status st_engine_check_model(const char *path, const char *sha256,
    st_model_check *out, st_error *err);

st_status st_engine_create(st_engine **out, const st_engine_params *p,
    st_error *err);
void st_engine_free(st_engine *e);

const st_model_info *st_engine_info(const st_engine *e);
const st_tokenizer  *st_engine_tokenizer(const st_engine *e);
/* Backend-specific /health members (JSON object members, no braces), or
 * NULL. */
const char          *st_engine_backend_health(const st_engine *e);

typedef enum {
    ST_FINISH_NONE = 0,      /* still running */
    ST_FINISH_STOP,          /* EOS/EOG token, stop string, output
                                constraint complete or at a dead end */
    ST_FINISH_LENGTH,        /* max_tokens or context full */
    ST_FINISH_CANCELLED,
    ST_FINISH_ERROR
} st_finish_reason;

const char *st_finish_reason_str(st_finish_reason r); /* "stop", "length"... */

/*
 * Output constraints (constrained decoding). A constraint is a compiled
 * grammar: immutable, reference counted, shareable by any number of
 * requests and threads. Build one per request (or cache one per schema),
 * put it in st_request.constraint, submit, then st_constraint_free() it:
 * the sequence holds its own reference. Sampling then only draws tokens
 * that keep the output a prefix of a sentence of the grammar; EOS is
 * allowed only once the sentence is complete, and the sequence finishes
 * (ST_FINISH_STOP) as soon as nothing more can follow.
 * Errors: ST_ERR_INVALID (bad GBNF / bad JSON, message has line:column),
 * ST_ERR_UNSUPPORTED (schema keyword not supported, message has its
 * JSON pointer), ST_ERR_NOMEM.
 */
typedef struct st_constraint st_constraint;

/* GBNF text (llama.cpp `grammar` syntax); root rule "root" */
st_status st_constraint_from_gbnf(st_constraint **out, const char *text,
    size_t len, st_error *err);
/* JSON Schema (JSON text); what is supported: src/engine/json_schema.h */
st_status st_constraint_from_json_schema(st_constraint **out,
    const char *schema, size_t len, st_error *err);
/* any JSON object (response_format {"type": "json_object"}) */
st_status st_constraint_json_object(st_constraint **out, st_error *err);
/* another reference to c */
st_constraint *st_constraint_ref(st_constraint *c);
void st_constraint_free(st_constraint *c);   /* drops one reference */

/* Embedding pooling over the prompt's final hidden states. MODEL is the
 * model's GGUF <arch>.pooling_type (1 mean, 2 cls, 3 last; mean when
 * absent); a model declaring another kind (none, rank) is refused with
 * ST_ERR_UNSUPPORTED. */
typedef enum {
    ST_POOLING_MODEL = 0,
    ST_POOLING_MEAN,
    ST_POOLING_CLS,             /* first token */
    ST_POOLING_LAST             /* last token */
} st_pooling;

typedef struct {
    const int32_t      *prompt;       /* copied at submit */
    size_t              n_prompt;
    uint32_t            max_tokens;   /* >= 1 */
    st_sampling_params  sampling;     /* logit_bias copied */
    const char *const  *stop;         /* copied */
    size_t              n_stop;
    int                 ignore_eos;
    const char         *session_id;   /* optional, copied: 1..128
                                         printable ASCII; NULL = none */
    size_t              session_id_len;
    st_constraint      *constraint;   /* NULL: none; referenced at submit */
    /* also the prompt's token logprobs (st_seq_output.prompt_tokens):
     * each prompt token's given those before it, with sampling.n_probs
     * alternatives; the prompt is then computed whole (no prefix reuse) */
    int                 prompt_logprobs;
    /* fair queueing across tenants (engine/fair_queue.c): 0 is the
     * default tenant; weight 0 counts as 1; lower priority values are
     * admitted first within a tenant */
    uint64_t            tenant;
    uint32_t            weight;
    int32_t             priority;
    /* Embedding request: the prompt is prefilled (no prefix reuse, no
     * sampling: max_tokens, sampling, stop, session and constraint are
     * ignored), its final hidden states after the output norm are
     * pooled, and it finishes (ST_FINISH_STOP) with
     * st_seq_output.embedding; its KV blocks are released at once. The
     * prompt may fill the whole context. */
    int                 embedding;
    st_pooling          pooling;      /* ST_POOLING_MODEL: the model's */
    int                 normalize;    /* L2-normalise the pooled vector */
} st_request;

/* Sessions (see st_engine_session_* below). */
#define ST_SESSION_ID_MAX 128

typedef enum {
    ST_SESSION_NONE = 0,      /* the request named no session */
    ST_SESSION_MISS,          /* new session, or nothing kept was usable */
    ST_SESSION_HIT,           /* resumed from blocks kept in memory */
    ST_SESSION_RESTORED       /* resumed from the spill store */
} st_session_result;

const char *st_session_result_str(st_session_result r); /* "hit"... */

/* Queue a request (validated: ids in vocab, prompt non-empty and
 * n_prompt + 1 <= n_ctx). The sequence starts at a later step. */
st_status st_engine_submit(st_engine *e, const st_request *req, st_seq **out,
    st_error *err);

/* Between steps only. Cancel: the sequence finishes with
 * ST_FINISH_CANCELLED at the next step and its KV memory is freed then,
 * whatever state it was in (queued, prefilling, decoding). Idempotent. */
void st_seq_cancel(st_seq *s);
/* The owner is done with s (after or before it finished). The engine
 * frees it once it is no longer in a step. s must not be used after. */
void st_seq_release(st_engine *e, st_seq *s);

/* One engine step (engine thread): admit queued sequences, one batched
 * forward over every active sequence (prefill chunks and decode tokens
 * mixed), sample, retire finished ones. A failure here is an engine
 * failure (e.g. out of memory), reported to every active sequence as
 * ST_FINISH_ERROR; the engine stays usable. */
st_status st_engine_step(st_engine *e, st_error *err);

/* Anything queued or running? (the owner posts another step if so) */
int st_engine_has_work(const st_engine *e);

typedef struct {
    int32_t          token;        /* -1 for a text-only tail entry */
    uint32_t         index;        /* 0-based position in the completion */
    const char      *text;         /* text released with this token (may be
                                      empty: held for UTF-8 or stop match) */
    size_t           text_len;
    float            logprob;      /* when n_probs > 0 */
    uint32_t         n_top;
    const st_token_logprob *top;   /* n_top alternatives, best first */
} st_token_out;

typedef struct {
    const st_token_out *tokens;    /* new since the previous take */
    size_t              n_tokens;
    st_finish_reason    finish;    /* NONE while running */
    int                 stop_index;/* matched stop string or -1 */
    int                 dead_end;  /* ST_FINISH_STOP because the output
                                      constraint allowed no token (none
                                      of the vocabulary continues it, or
                                      logit_bias bans all that do): the
                                      text is a prefix of a document */
    char                error[128];/* when finish == ST_FINISH_ERROR */
    uint32_t            n_prompt_tokens;
    uint32_t            n_cached_tokens;
    uint32_t            n_generated;
    double              queue_ms;    /* submit -> first step */
    double              ttft_ms;     /* submit -> first token */
    double              decode_ms;   /* first token -> last token */
    st_session_result   session;     /* set once the sequence started */
    const float        *embedding;   /* embedding request, once finished
                                        with ST_FINISH_STOP: (n_embd) */
    uint32_t            n_embd;
    /* prompt_logprobs: once, at the first take after the prompt is in:
     * prompt tokens 1..n_prompt-1 (token 0 has no logprob) with their
     * logprob and n_top alternatives (text empty) */
    int                 prompt_logprobs;
    const st_token_out *prompt_tokens;
    size_t              n_prompt_out;
} st_seq_output;

/* Between steps: new output of s since the previous take. Pointers are
 * valid until the next st_engine_step() or st_seq_release(). */
void st_seq_take(st_seq *s, st_seq_output *out);

/* KV / scheduler accounting for /health and /metrics. */
typedef struct {
    uint32_t seqs_active;
    uint32_t seqs_queued;
    uint32_t kv_blocks_total;
    uint32_t kv_blocks_free;      /* free or evictable (cached, unused) */
    uint32_t kv_blocks_cached;    /* registered for prefix reuse */
    uint64_t prefix_hit_tokens;   /* prompt tokens served from the cache */
    uint64_t kv_evictions;
    uint64_t steps;
    uint64_t tokens_prefilled;
    uint64_t tokens_generated;
    uint32_t sessions_resident;
    uint32_t sessions_spilled;
    uint32_t session_blocks;      /* KV blocks pinned by idle sessions */
    uint64_t session_hits;
    uint64_t session_misses;
    uint64_t session_restores;
    uint64_t session_restore_failures; /* bad/missing file: recomputed */
    uint64_t session_spills;
    uint64_t session_spill_bytes;
    uint64_t session_restore_bytes;
    double   session_restore_ms;  /* total time spent restoring */
    uint64_t session_evictions;   /* idle sessions evicted for memory */
    uint64_t session_expired;     /* spilled sessions removed (max_idle
                                     or store size) */
    uint64_t session_store_bytes; /* spill files now on disk */
    uint64_t preemptions;         /* sequences preempted (KV ran out) */
} st_engine_stats;

void st_engine_get_stats(const st_engine *e, st_engine_stats *out);

/*
 * Sessions. A request with a session_id keeps its KV blocks (prompt +
 * generated tokens) after it finishes; the session's next turn whose
 * tokens start with them computes only the rest (n_cached_tokens). Idle
 * sessions count against the KV budget and are evicted least recently
 * used first when running sequences need blocks; with a store they are
 * spilled to files (per-block SHA-256) and restored exactly. A second turn
 * submitted while one is in flight is refused (ST_ERR_INVALID).
 */
typedef enum {
    ST_SESSION_RESIDENT = 0,
    ST_SESSION_SPILLED,
    ST_SESSION_EMPTY          /* known, nothing kept (turn in flight or
                                 evicted without a store) */
} st_session_state;

typedef struct {
    char             id[ST_SESSION_ID_MAX + 1];
    st_session_state state;
    int              busy;          /* a turn is in flight */
    uint32_t         n_tokens;      /* positions kept */
    uint64_t         bytes;         /* KV bytes held (memory or file) */
    double           idle_ms;
} st_session_info;

/* Spill store: dir must exist and be writable; max_bytes bounds the
 * files (oldest removed first), spilled sessions idle longer than
 * max_idle_ms are removed (0 = never). Files are this process's own and
 * removed by st_engine_free(). */
st_status st_engine_session_store(st_engine *e, const char *dir,
    uint64_t max_bytes, double max_idle_ms, st_error *err);

/* Between steps: frees the session's blocks or file. 1 if it existed, 0
 * if not (idempotent). A turn in flight finishes normally and its
 * blocks are dropped then. */
int st_engine_session_close(st_engine *e, const char *id, size_t id_len);

/* Between steps: up to cap sessions, most recently used first; returns
 * how many there are in all. Expired spilled sessions are removed
 * first. */
size_t st_engine_sessions_list(st_engine *e, st_session_info *out,
    size_t cap);

/* Whether id is a valid session id (1..128 printable ASCII). */
int st_session_id_valid(const char *id, size_t len);

#endif /* ST_ENGINE_H */
