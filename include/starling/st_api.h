/*
 * Starling API layer: nginx-free JSON request parsing/validation (yajl)
 * and JSON/SSE text building for the OpenAI-compatible and worker API
 * surfaces. Built into the nginx module (not into libstarling.a) so that
 * the engine library stays free of yajl; unit-testable without nginx.
 *
 * Memory: everything here is heap memory (malloc) owned by the returned
 * object; the nginx glue copies what it sends into request pools.
 */
#ifndef ST_API_H
#define ST_API_H

#include <stddef.h>
#include <stdint.h>

#include "starling/st_engine.h"


/* ---- growable byte buffer ------------------------------------------ */

typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      failed;        /* sticky: an allocation failed */
} st_jbuf;

void st_jbuf_init(st_jbuf *b);
void st_jbuf_free(st_jbuf *b);
void st_jbuf_reset(st_jbuf *b);
void st_jbuf_add(st_jbuf *b, const char *s, size_t len);
void st_jbuf_adds(st_jbuf *b, const char *s);
void st_jbuf_addf(st_jbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* JSON string literal with quotes; invalid UTF-8 becomes U+FFFD. */
void st_jbuf_add_jstr(st_jbuf *b, const char *s, size_t len);
/* A float as JSON (non-finite values become null). */
void st_jbuf_add_float(st_jbuf *b, double v);


/* ---- validation errors ---------------------------------------------- */

typedef struct {
    char   field[64];       /* "temperature", "messages[1].content" */
    char   constraint[32];  /* "range", "type", "required", ... */
    char   message[192];
    char   value[96];       /* JSON text of the bad value, "" = omit */
} st_api_error;

#define ST_API_MAX_ERRORS  16


/* ---- parsed request -------------------------------------------------- */

typedef enum {
    ST_API_COMPLETIONS = 0,     /* POST /v1/completions */
    ST_API_CHAT,                /* POST /v1/chat/completions */
    ST_API_EXECUTE,             /* POST /execute (worker API) */
    ST_API_TOKENIZE,            /* POST /tokenize */
    ST_API_DETOKENIZE,          /* POST /detokenize */
    ST_API_CANCEL,              /* POST /cancel */
    ST_API_SESSION_CLOSE,       /* POST /v1/session/close */
    ST_API_RESPONSES,           /* POST /v1/responses (st_api_responses.c):
                                   input/instructions -> messages */
    ST_API_EMBEDDINGS           /* POST /v1/embeddings
                                   (st_api_embeddings.c) */
} st_api_kind;

/* a function call: what an assistant message carries in its history,
 * or what was parsed from generated text */
typedef struct {
    char    *id;                /* "call_..." */
    char    *name;
    char    *arguments;         /* JSON text (OpenAI sends a string) */
} st_api_tool_call;

typedef struct {
    char             *role;     /* "system" | "user" | "assistant" | ... */
    char             *content;  /* text parts joined */
    size_t            content_len;
    char             *tool_call_id;     /* role "tool" */
    st_api_tool_call *tool_calls;       /* role "assistant" */
    size_t            n_tool_calls;
} st_api_message;

/* "tools": [{"type":"function","function":{name, description,
 * parameters}}] */
typedef struct {
    char    *name;
    char    *json;              /* the whole tool object, re-serialised
                                   as the chat templates' tojson does */
    char    *parameters;        /* its JSON Schema, compact JSON text */
} st_api_tool;

typedef enum {
    ST_API_TOOLS_AUTO = 0,      /* default with tools */
    ST_API_TOOLS_NONE,
    ST_API_TOOLS_REQUIRED,
    ST_API_TOOLS_NAMED          /* tool_choice {"function":{"name"}} */
} st_api_tool_choice;

/* one prompt of a completions batch ("prompt": ["a", "b"] or
 * [[1, 2], [3]]): text or token ids */
typedef struct {
    char    *text;              /* NUL-terminated, or NULL */
    size_t   len;
    int32_t *ids;               /* or NULL */
    size_t   n_ids;
} st_api_prompt;

/* embeddings: at most this many inputs in one request (OpenAI's) */
#define ST_API_MAX_EMBED_INPUTS  2048

/* "n" * prompts: at most this many choices in one request */
#define ST_API_MAX_CHOICES  64

typedef struct {
    uint32_t max_tokens_limit;  /* starling_max_tokens */
    uint32_t max_prompt_chars;  /* worker API prompt limit (32768) */
} st_api_limits;

typedef struct {
    st_api_kind         kind;

    char               *model;          /* NULL: the location's model */
    char               *job_id;         /* worker API / cancel */

    char               *prompt;         /* text prompt (NUL-terminated) */
    size_t              prompt_len;
    int32_t            *prompt_ids;     /* or pre-tokenized prompt */
    size_t              n_prompt_ids;

    st_api_message     *messages;       /* chat */
    size_t              n_messages;
    st_api_tool        *tools;          /* chat: tools (st_api_tools.c) */
    size_t              n_tools;
    st_api_tool_choice  tool_choice;
    char               *tool_choice_name;   /* ST_API_TOOLS_NAMED */
    int                 parallel_tool_calls;
    char               *instructions;   /* responses: echoed back */
    char               *text_format;    /* responses: text.format JSON,
                                           echoed back (NULL: text) */

    uint32_t            max_tokens;     /* 0: not given */
    st_sampling_params  sampling;
    st_logit_bias      *logit_bias;
    size_t              n_logit_bias;
    char              **stop;
    size_t              n_stop;
    int                 ignore_eos;
    st_constraint      *constraint;     /* response_format / grammar, or
                                           NULL; freed with the request
                                           (st_constraint_ref to keep it) */

    int                 stream;
    int                 include_usage;
    int                 logprobs;       /* chat: bool; completions: n */
    int                 top_logprobs;   /* 0..20 */
    uint32_t            n;              /* choices per prompt, >= 1 */
    st_api_prompt      *batch;          /* completions: >= 2 prompts, */
    size_t              n_batch;        /* else NULL / 0 (prompt above) */
    int                 echo;           /* completions: prompt + text */
    int                 add_special;    /* tokenize: add BOS */
    int                 with_pieces;    /* tokenize: pieces + offsets */
    char               *session_id;     /* chat, completions, execute,
                                           session close; NULL: none */
    st_api_prompt      *inputs;         /* embeddings: >= 1 */
    size_t              n_inputs;
    int                 encoding_base64;    /* embeddings */
    uint32_t            dimensions;     /* embeddings: 0 = not given */
    int                 normalize;      /* embeddings: L2 (default 1) */

    st_api_error        errors[ST_API_MAX_ERRORS];
    size_t              n_errors;
    size_t              n_errors_dropped;
} st_api_request;

/*
 * Parses and validates body[0..len) for the given surface. Returns NULL
 * only when out of memory. All validation problems are collected in
 * req->errors (n_errors > 0 means "reply 400"); unknown fields are
 * ignored, as OpenAI's API does for forward compatibility.
 */
st_api_request *st_api_parse(st_api_kind kind, const char *body, size_t len,
    const st_api_limits *limits);
void st_api_request_free(st_api_request *req);

/* Worker-API error body: {"errors":[{field,constraint,message,value}]} */
void st_api_write_errors(st_jbuf *b, const st_api_request *req);
/* OpenAI error object {"error":{"message","type","param","code"}} */
void st_api_write_openai_error(st_jbuf *b, const char *message,
    const char *type, const char *param, const char *code);

/* UTF-8 helpers */
int    st_api_utf8_valid(const char *s, size_t len);
size_t st_api_utf8_chars(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) that ends on a UTF-8
 * character boundary (so that JSON text never splits a character). */
size_t st_api_utf8_complete(const char *s, size_t len);


/*
 * Chat prompt rendering (the engine's chat module does the formats).
 * family: a name from chat.h ("chatml", "llama3", ...) or "auto"/NULL
 * (detect from the model's template; a model without one gets "plain").
 * out receives the prompt text (to be tokenized with add_special and
 * parse_special); stop/n_stop the family's end-of-turn strings (static).
 */
int st_api_chat_family_valid(const char *family);
st_status st_api_chat_render(const char *family, const char *model_template,
    const st_api_message *msgs, size_t n_msgs, st_jbuf *out,
    const char *const **stop, size_t *n_stop, st_error *err);


/*
 * Tools (st_api_tools.c, st_api_tools_llama3.c, st_api_tools_mistral.c).
 * Llama 3 templates get Meta's own tool prompt (the tools as JSON in the
 * first user turn, a call answered as a bare {"name", "parameters"}
 * object); Mistral v3 its [AVAILABLE_TOOLS] / [TOOL_CALLS] /
 * [TOOL_RESULTS] format. Every other family gets the Hermes convention that Qwen's
 * ChatML template uses (tools in the system turn inside <tools></tools>,
 * calls as <tool_call>{"name", "arguments"}</tool_call>, results as
 * <tool_response> in a user turn), in its own turns; see README "Tools".
 *
 * st_api_chat_render_tools: as st_api_chat_render, with req's tools and
 * tool/assistant-tool_calls messages.
 */
typedef enum {
    ST_API_TOOLS_STYLE_HERMES = 0,  /* <tool_call>{...}</tool_call> */
    ST_API_TOOLS_STYLE_LLAMA3,      /* the whole reply: {"name",
                                       "parameters"} */
    ST_API_TOOLS_STYLE_MISTRAL      /* [TOOL_CALLS] [{"name",
                                       "arguments"}, ...] (Mistral v3) */
} st_api_tools_style;

/* the tool format for a configured family ("auto"/NULL: detected from
 * the model's template) */
st_api_tools_style st_api_tools_style_of(const char *family,
    const char *model_template);

st_status st_api_chat_render_tools(const char *family,
    const char *model_template, const st_api_request *req, st_jbuf *out,
    const char *const **stop, size_t *n_stop, st_error *err);

/*
 * Function calls in generated text: every <tool_call>{json}</tool_call>
 * whose JSON has a "name" among tools (or any name when n_tools == 0)
 * and object "arguments" (or "parameters"). *calls (malloc'd, free with
 * st_api_tool_calls_free) gets them with ids "call_<id_prefix>_<i>";
 * *content_len the length of the text before the first call (the
 * message's content). Returns the number of calls (0: plain text), or -1
 * when out of memory.
 */
int st_api_tool_calls_parse(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len);
void st_api_tool_calls_free(st_api_tool_call *calls, size_t n);

/* The Llama 3 form: the whole text (after blanks and an optional
 * <|python_tag|>) one JSON object {"name", "parameters" (or
 * "arguments")} naming one of tools; 1 call with content_len 0, else 0
 * (plain text), -1 out of memory. */
int st_api_tool_calls_parse_llama3(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len);

/* The Mistral form: "[TOOL_CALLS]" then a JSON array of {"name",
 * "arguments"} objects naming tools; content_len is the text before it.
 * Returns the number of calls, 0 (plain text), -1 (out of memory). */
int st_api_tool_calls_parse_mistral(const char *text, size_t len,
    const st_api_tool *tools, size_t n_tools, const char *id_prefix,
    st_api_tool_call **calls, size_t *content_len);

/*
 * tool_choice "required" or a named function: the JSON Schema of the one
 * call the model must write, {"name": <const>, "arguments": <the tool's
 * parameters>} (the key "parameters" in the Llama 3 style; anyOf over
 * the tools for "required"), for constrained decoding. Returns 1 (out
 * holds it), 0 (nothing to enforce), -1 (out of memory). The output is
 * then that bare JSON object: st_api_tool_calls_parse it wrapped as one
 * <tool_call> (Hermes), st_api_tool_calls_parse_llama3 it as it is.
 */
int st_api_tools_call_schema(const st_api_request *req,
    st_api_tools_style style, st_jbuf *out);

struct yajl_val_s;

/* /v1/responses: its fields onto req (messages, tools, sampling) */
void st_api_responses_fields(st_api_request *req, struct yajl_val_s *root,
    const st_api_limits *lim, int *nomem);

/* /v1/embeddings: input, encoding_format, dimensions, normalize, user */
void st_api_embeddings_fields(st_api_request *req, struct yajl_val_s *root,
    int *nomem);
/* The embeddings response object: n vectors of n_embd floats, as JSON
 * numbers (9 significant digits, exact for float32) or base64 of their
 * little-endian float32 bytes. */
void st_api_embeddings_write(st_jbuf *b, const char *model,
    const float *const *vecs, size_t n, uint32_t n_embd, int base64,
    uint64_t prompt_tokens);

/* Parses "tools", "tool_choice", "parallel_tool_calls" and the messages'
 * tool fields (called by the chat parser). */
void st_api_tools_fields(st_api_request *req, struct yajl_val_s *root,
    int *nomem);
void st_api_tools_message(st_api_request *req, struct yajl_val_s *m,
    st_api_message *out, size_t index, int *nomem);

#endif /* ST_API_H */
