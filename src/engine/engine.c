/*
 * The engine's public API and lifecycle: create/free, submit, cancel,
 * release, info and stats, and the choice of compute backend. The step
 * loop is engine_step.c, per-sequence output engine_output.c.
 * See include/starling/st_engine.h for the threading rule.
 */
#include "engine/engine_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


void
st_engine_params_default(st_engine_params *p)
{
    memset(p, 0, sizeof(*p));
    p->backend = ST_BACKEND_CPU;
}


const char *
st_finish_reason_str(st_finish_reason r)
{
    switch (r) {
    case ST_FINISH_NONE:      return "none";
    case ST_FINISH_STOP:      return "stop";
    case ST_FINISH_LENGTH:    return "length";
    case ST_FINISH_CANCELLED: return "cancelled";
    case ST_FINISH_ERROR:     return "error";
    }
    return "unknown";
}


/* Picks and creates the compute backend: cuda, cpu, or auto (CUDA when a
 * device is usable, else the CPU with a note saying why). */
static st_status
st_engine_backend_create(st_engine *e, uint32_t n_blocks, st_error *err)
{
    const st_hparams       *hp = &e->model->hp;
    const st_backend_entry *cuda, *cpu;
    st_kv_geometry          geo;
    st_backend_args         args;
    char                    why[160] = "";
    int                     n_dev = 0;
    st_status               rc;

    geo.n_layer = hp->n_layer;
    geo.kv_dim = hp->n_head_kv * hp->head_dim;
    geo.block_tokens = ST_KV_BLOCK_TOKENS;
    geo.n_blocks = n_blocks;
    args.model = e->model;
    args.max_tokens = e->step_tokens;
    args.tp = e->tp;
    args.kv = &geo;
    args.device = -1;

    if (e->params.backend != ST_BACKEND_CPU) {
        cuda = st_backend_find("cuda");
        if (cuda == NULL) {
            snprintf(why, sizeof(why), "this build has no CUDA backend");
        } else {
            n_dev = cuda->device_count(why, sizeof(why));
        }
        if (n_dev > 0) {
            args.device = e->params.device < 0 ? 0 : e->params.device % n_dev;
            rc = cuda->create(&e->be, &args, err);
            if (rc == ST_OK || e->params.backend == ST_BACKEND_CUDA) {
                return rc;
            }
            snprintf(why, sizeof(why), "CUDA backend failed: %.120s",
                     err ? err->msg : "");
        } else if (e->params.backend == ST_BACKEND_CUDA) {
            return st_error_set(err, ST_ERR_UNSUPPORTED,
                                "engine: backend cuda: %s", why);
        }
        snprintf(e->info.backend_note, sizeof(e->info.backend_note),
                 "backend auto: using the CPU (%s)", why);
    }
    cpu = st_backend_find("cpu");
    if (cpu == NULL) {
        return st_error_set(err, ST_ERR_INTERNAL, "engine: no CPU backend");
    }
    return cpu->create(&e->be, &args, err);
}


int
st_engine_backend_built(const char *name)
{
    return st_backend_find(name) != NULL;
}


int
st_engine_cuda_probe(char *why, size_t why_len)
{
    const st_backend_entry *cuda = st_backend_find("cuda");

    if (cuda == NULL) {
        snprintf(why, why_len, "this build of Starling has no CUDA backend");
        return 0;
    }
    return cuda->device_count(why, why_len);
}


const char *
st_engine_backend_health(const st_engine *e)
{
    return e->be->health_json ? e->be->health_json(e->be) : NULL;
}


st_status
st_engine_create(st_engine **out, const st_engine_params *p, st_error *err)
{
    st_engine        *e;
    st_status         rc;
    const st_hparams *hp;
    uint64_t          n_blocks, per_block;
    long              ncpu;
    int               n_threads;

    *out = NULL;
    if (p == NULL || p->path == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "engine: no model path");
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "engine: out of memory");
    }
    e->params = *p;

    rc = st_model_load(&e->model, p->path, p->sha256, err);
    if (rc != ST_OK) {
        goto fail;
    }
    hp = &e->model->hp;
    rc = st_tokenizer_load(&e->tok, e->model->gguf, err);
    if (rc != ST_OK) {
        goto fail;
    }
    if (st_tokenizer_n_vocab(e->tok) != hp->n_vocab) {
        rc = st_error_set(err, ST_ERR_FORMAT, "engine: tokenizer vocab %u != "
                          "model vocab %u", st_tokenizer_n_vocab(e->tok),
                          hp->n_vocab);
        goto fail;
    }

    e->n_ctx = p->n_ctx ? p->n_ctx : hp->n_ctx_train;
    e->max_seqs = p->max_seqs ? p->max_seqs : 16;
    e->step_tokens = p->step_tokens ? p->step_tokens : 512;
    if (e->step_tokens < e->max_seqs) {
        e->step_tokens = e->max_seqs;
    }
    if (e->n_ctx < 2 || e->n_ctx > (1u << 24) || e->max_seqs > 4096) {
        rc = st_error_set(err, ST_ERR_INVALID,
                          "engine: bad n_ctx %u or max_seqs %u", e->n_ctx,
                          e->max_seqs);
        goto fail;
    }

    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = p->n_threads ? (int) p->n_threads : (ncpu > 0 ? (int) ncpu : 1);
    rc = st_threadpool_create(&e->tp, n_threads, err);
    if (rc != ST_OK) {
        goto fail;
    }

    /* KV pool: the budget in bytes, or every sequence at full context */
    per_block = (uint64_t) ST_KV_BLOCK_TOKENS * hp->n_head_kv * hp->head_dim
                * sizeof(st_f16) * 2 * hp->n_layer;
    if (p->kv_bytes) {
        n_blocks = p->kv_bytes / per_block;
    } else {
        n_blocks = (uint64_t) e->max_seqs
                   * ((e->n_ctx + ST_KV_BLOCK_TOKENS - 1) / ST_KV_BLOCK_TOKENS);
    }
    if (n_blocks == 0 || n_blocks > (1u << 30)) {
        rc = st_error_set(err, ST_ERR_INVALID,
                          "engine: KV budget gives %llu blocks",
                          (unsigned long long) n_blocks);
        goto fail;
    }
    rc = st_engine_backend_create(e, (uint32_t) n_blocks, err);
    if (rc != ST_OK) {
        goto fail;
    }
    rc = st_kv_cache_init(&e->kv, hp->n_layer, hp->n_head_kv * hp->head_dim,
                          ST_KV_BLOCK_TOKENS, (uint32_t) n_blocks,
                          strcmp(e->be->name, "cpu") == 0, err);
    if (rc != ST_OK) {
        goto fail;
    }

    e->batch = calloc(e->step_tokens, sizeof(st_batch_entry));
    e->batch_seq = calloc(e->step_tokens, sizeof(st_seq *));
    e->logits = malloc(sizeof(float) * (size_t) e->max_seqs * hp->n_vocab);
    e->logits_rows = e->max_seqs;
    if (!e->batch || !e->batch_seq || !e->logits) {
        rc = st_error_set(err, ST_ERR_NOMEM, "engine: out of memory");
        goto fail;
    }

    {
        st_model_info  *in = &e->info;
        st_gguf_str     s;
        const char     *slash;

        char note[sizeof(in->backend_note)];

        memcpy(note, in->backend_note, sizeof(note));
        memset(in, 0, sizeof(*in));
        memcpy(in->backend_note, note, sizeof(note));
        if (st_gguf_find(e->model->gguf, "general.name") != NULL
            && st_gguf_get_str(e->model->gguf, "general.name", &s, NULL)
               == ST_OK && s.len > 0)
        {
            snprintf(in->name, sizeof(in->name), "%.*s",
                     (int) (s.len > 127 ? 127 : s.len), s.ptr);
        } else {
            slash = strrchr(p->path, '/');
            snprintf(in->name, sizeof(in->name), "%s",
                     slash ? slash + 1 : p->path);
        }
        snprintf(in->arch, sizeof(in->arch), "%s", hp->arch);
        snprintf(in->quant_kind, sizeof(in->quant_kind), "%s",
                 st_model_quant_name(e->model));
        in->tokenizer_kind = st_tokenizer_kind_name(e->tok);
        in->backend = e->be->name;
        snprintf(in->device, sizeof(in->device), "%s", e->be->device);
        in->device_bytes = e->be->device_bytes;
        in->chat_template = NULL;
        if (st_gguf_find(e->model->gguf, "tokenizer.chat_template") != NULL
            && st_gguf_get_str(e->model->gguf, "tokenizer.chat_template", &s,
                               NULL) == ST_OK)
        {
            /* NUL-terminated copy kept by the model's lifetime */
            char *t = malloc(s.len + 1);
            if (t != NULL) {
                memcpy(t, s.ptr, s.len);
                t[s.len] = '\0';
                in->chat_template = t;
            }
        }
        in->n_vocab = hp->n_vocab;
        in->n_ctx_train = hp->n_ctx_train;
        in->n_ctx = e->n_ctx;
        in->n_layer = hp->n_layer;
        in->n_embd = hp->n_embd;
        in->n_head = hp->n_head;
        in->n_head_kv = hp->n_head_kv;
        in->n_ff = hp->n_ff;
        in->n_params = e->model->n_params;
        in->weight_bytes = e->model->weight_bytes;
        in->kv_bytes = e->kv.bytes;
        in->kv_block_tokens = ST_KV_BLOCK_TOKENS;
        in->kv_blocks_total = e->kv.n_blocks;
    }

    *out = e;
    return ST_OK;

fail:
    st_engine_free(e);
    return rc;
}


void
st_seq_destroy(st_seq *s)
{
    st_kv_seq_free(&s->kv);
    st_sampler_free(s->sampler);
    st_textstream_free(s->ts);
    st_grammar_matcher_free(s->gm);
    free(s->gmask);
    st_constraint_free(s->constraint);
    free(s->tokens);
    free(s->out);
    free(s->out_text_off);
    free(s->tops);
    free(s->text);
    free(s->embed_acc);
    free(s->embed_vec);
    st_seq_prompt_lp_free(s);
    free(s);
}


static void
st_list_destroy(st_engine *e, st_seq_list *l)
{
    st_seq *s, *next;

    for (s = l->head; s; s = next) {
        next = s->next;
        st_kv_seq_release(&e->kv, &s->kv);
        st_seq_destroy(s);
    }
    l->head = l->tail = NULL;
    l->n = 0;
}


void
st_engine_free(st_engine *e)
{
    if (e == NULL) {
        return;
    }
    st_list_destroy(e, &e->queued);
    st_list_destroy(e, &e->active);
    st_list_destroy(e, &e->done);
    st_sessions_free(e);
    st_fq_free(&e->fq);
    if (e->be != NULL) {
        e->be->free(e->be);
    }
    st_threadpool_free(e->tp);
    st_kv_cache_free(&e->kv);
    st_grammar_vocab_free(e->gvocab);
    st_tokenizer_free(e->tok);
    st_model_free(e->model);
    free((char *) e->info.chat_template);
    free(e->batch);
    free(e->hidden);
    free(e->batch_seq);
    free(e->logits);
    free(e);
}


const st_model_info *
st_engine_info(const st_engine *e)
{
    return &e->info;
}


const st_tokenizer *
st_engine_tokenizer(const st_engine *e)
{
    return e->tok;
}


st_status
st_engine_submit(st_engine *e, const st_request *req, st_seq **out,
    st_error *err)
{
    st_seq    *s;
    st_status  rc;
    size_t     i;

    *out = NULL;
    if (req->n_prompt == 0) {
        return st_error_set(err, ST_ERR_INVALID, "prompt is empty");
    }
    if (req->embedding && req->n_prompt > e->n_ctx) {
        return st_error_set(err, ST_ERR_CONTEXT,
                            "input has %zu tokens, the context holds %u",
                            req->n_prompt, e->n_ctx);
    }
    if (!req->embedding && req->max_tokens == 0) {
        return st_error_set(err, ST_ERR_INVALID, "max_tokens must be >= 1");
    }
    if (!req->embedding && req->n_prompt + 1 > e->n_ctx) {
        return st_error_set(err, ST_ERR_CONTEXT,
                            "prompt has %zu tokens, the context holds %u",
                            req->n_prompt, e->n_ctx);
    }
    for (i = 0; i < req->n_prompt; i++) {
        if (req->prompt[i] < 0
            || (uint32_t) req->prompt[i] >= e->info.n_vocab)
        {
            return st_error_set(err, ST_ERR_INVALID,
                                "prompt token %zu: id %d out of range", i,
                                req->prompt[i]);
        }
    }
    if (!req->embedding) {
        rc = st_sampling_validate(&req->sampling, e->info.n_vocab, err);
        if (rc != ST_OK) {
            return rc;
        }
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    s->cap_tokens = (uint32_t) req->n_prompt + 16;
    s->tokens = malloc(sizeof(int32_t) * s->cap_tokens);
    if (s->tokens == NULL) {
        st_seq_destroy(s);
        return st_error_set(err, ST_ERR_NOMEM, "out of memory");
    }
    memcpy(s->tokens, req->prompt, sizeof(int32_t) * req->n_prompt);
    s->n_tokens = s->n_prompt = (uint32_t) req->n_prompt;
    s->max_tokens = req->max_tokens;
    s->ignore_eos = req->ignore_eos;
    s->n_probs = req->sampling.n_probs;
    s->stop_index = -1;

    if (req->embedding) {
        rc = st_seq_embed_init(e, s, req, err);
        if (rc != ST_OK) {
            st_seq_destroy(s);
            return rc;
        }
        goto queue;
    }
    rc = st_sampler_create(&s->sampler, &req->sampling, e->info.n_vocab, err);
    if (rc == ST_OK) {
        st_sampler_accept_prompt(s->sampler, req->prompt, req->n_prompt);
        rc = st_textstream_create(&s->ts, req->stop, req->n_stop, err);
    }
    if (rc == ST_OK && req->session_id != NULL) {
        rc = st_session_begin(e, s, req->session_id, req->session_id_len,
                              err);
    }
    if (rc == ST_OK && req->constraint != NULL) {
        rc = st_seq_constrain(e, s, req->constraint, err);
    }
    if (rc == ST_OK && req->prompt_logprobs) {
        rc = st_seq_prompt_lp_init(e, s, err);
    }
    if (rc != ST_OK) {
        st_seq_destroy(s);
        return rc;
    }
queue:
    rc = st_fq_join(&e->fq, s, req->tenant, req->weight, req->priority, err);
    if (rc != ST_OK) {
        st_seq_destroy(s);
        return rc;
    }
    s->t_submit_ms = st_now_ms();
    s->state = ST_SEQ_QUEUED;
    st_list_push(&e->queued, s);
    *out = s;
    return ST_OK;
}


void
st_seq_cancel(st_seq *s)
{
    s->cancelled = 1;
}


void
st_seq_finish(st_engine *e, st_seq *s, st_finish_reason why)
{
    if (s->state == ST_SEQ_DONE) {
        return;
    }
    s->finish = why;
    st_session_end_turn(e, s, why);    /* keeps the blocks, if a session */
    st_fq_leave(&e->fq, s);
    st_kv_seq_release(&e->kv, &s->kv);
    st_list_remove(s->state == ST_SEQ_QUEUED ? &e->queued : &e->active, s);
    s->state = ST_SEQ_DONE;
    if (s->released) {
        st_seq_destroy(s);
        return;
    }
    st_list_push(&e->done, s);
}


void
st_seq_release(st_engine *e, st_seq *s)
{
    s->released = 1;
    s->cancelled = 1;
    if (s->state == ST_SEQ_DONE) {
        st_list_remove(&e->done, s);
        st_seq_destroy(s);
    }
    /* otherwise it is retired (and freed) at the next step */
}


int
st_engine_has_work(const st_engine *e)
{
    return e->queued.n > 0 || e->active.n > 0;
}


void
st_engine_get_stats(const st_engine *e, st_engine_stats *out)
{
    *out = e->stats;
    out->seqs_active = e->active.n;
    out->seqs_queued = e->queued.n;
    out->kv_blocks_total = e->kv.n_blocks;
    out->kv_blocks_free = st_kv_available(&e->kv);
    out->kv_blocks_cached = e->kv.n_registered;
    out->prefix_hit_tokens = e->kv.hits_tokens;
    out->kv_evictions = e->kv.evictions;
    st_sessions_get_stats(e, out);
}
