/*
 * Chat templates: messages (role + UTF-8 content) -> prompt text.
 *
 * GGUF files carry a Jinja template (tokenizer.chat_template). Starling
 * does not run Jinja: it recognises the template's family by distinctive
 * substrings (the approach of llama.cpp's llm_chat_detect_template) and
 * renders that family natively. A family can also be chosen by name
 * (configuration), e.g. "chatml", "llama3".
 *
 * BOS: no renderer writes the BOS text of the first turn. Tokenize the
 * result with st_tokenize(add_special = 1, parse_special = 1): the
 * tokenizer adds BOS when the vocabulary says so, and parse_special turns
 * marker text such as "<|im_start|>" or "</s>" into their control tokens.
 * (Later-turn "<s>" of the llama2 family is part of the format and is
 * written.) Message content is copied verbatim, so content that contains
 * marker text is parsed as markers too, as in llama.cpp.
 *
 * Roles: system, user, assistant. "tool" (and anything else) is rejected
 * with ST_ERR_INVALID: no supported family has a native tool turn, and
 * silently relabelling tool output as user text would change its meaning.
 */
#ifndef ST_CHAT_H
#define ST_CHAT_H

#include "starling/st_common.h"

typedef enum {
    ST_CHAT_UNKNOWN = -1,      /* a template we do not recognise */
    ST_CHAT_PLAIN = 0,         /* no template: plain transcript (below) */
    ST_CHAT_CHATML,            /* Qwen, Yi, many fine-tunes */
    ST_CHAT_LLAMA2,            /* Llama 2 chat, [INST] + <<SYS>> */
    ST_CHAT_LLAMA3,            /* Llama 3.x instruct */
    ST_CHAT_MISTRAL_V1,        /* " [INST] ... [/INST]" */
    ST_CHAT_MISTRAL_V3,        /* "[INST] ...[/INST]" */
    ST_CHAT_MISTRAL_V3_TEKKEN, /* "[INST]...[/INST]" */
    ST_CHAT_MISTRAL_V7,        /* [SYSTEM_PROMPT] ... [INST] ... */
    ST_CHAT_ZEPHYR,            /* <|user|>\n...</s>\n */
    ST_CHAT_PHI3,              /* <|user|>\n...<|end|>\n */
    ST_CHAT_PHI4,              /* <|im_start|>user<|im_sep|>...<|im_end|> */
    ST_CHAT_GEMMA,             /* <start_of_turn>user\n...<end_of_turn>\n */
    ST_CHAT_N_FAMILIES         /* count of valid families (not one) */
} st_chat_family;

typedef enum {
    ST_CHAT_SYSTEM = 0,
    ST_CHAT_USER,
    ST_CHAT_ASSISTANT
} st_chat_role;

typedef struct {
    st_chat_role role;
    const char  *content;      /* UTF-8 bytes, not NUL-terminated */
    size_t       content_len;
} st_chat_msg;

/* Family of a GGUF tokenizer.chat_template string. NULL or "" ->
 * ST_CHAT_PLAIN (the model has no template); a template that is exactly
 * a family name ("chatml") -> that family; an unrecognised template ->
 * ST_CHAT_UNKNOWN (the caller decides: configure a family by name, or
 * refuse chat requests; guessing a format silently degrades output). */
st_chat_family st_chat_detect(const char *tmpl);

/* "chatml", "llama2", "llama3", "mistral-v1", "mistral-v3",
 * "mistral-v3-tekken", "mistral-v7", "zephyr", "phi3", "phi4", "gemma",
 * "plain" -> family; anything else (or NULL) -> ST_CHAT_UNKNOWN. */
st_chat_family st_chat_family_from_name(const char *name);
/* Inverse of the above; "unknown" for ST_CHAT_UNKNOWN / out of range. */
const char    *st_chat_family_name(st_chat_family fam);

/* "system" | "user" | "assistant" (exact, lower case) -> role; returns
 * ST_ERR_INVALID (message names the role) for anything else, "tool"
 * included. */
st_status st_chat_role_from_name(const char *name, size_t len,
    st_chat_role *out, st_error *err);

/* Renders msgs[0..n) into a malloc'd NUL-terminated string (*out, free()
 * it; *out_len excludes the NUL). add_generation_prompt appends the
 * opening of an assistant turn where the family has one (llama2 and the
 * mistral families end a user turn with [/INST], which already is it).
 * Families without a system role (llama2, mistral v1/v3, gemma) fold
 * each system message into the next user turn. Content is trimmed where
 * the family's template trims it (llama2, llama3, gemma, mistral-v3
 * answers). Roles need not alternate.
 * Errors: ST_ERR_INVALID (n == 0, a role outside the enum, NULL content
 * with content_len > 0), ST_ERR_UNSUPPORTED (ST_CHAT_UNKNOWN),
 * ST_ERR_NOMEM. */
st_status st_chat_render(st_chat_family fam, const st_chat_msg *msgs,
    size_t n, int add_generation_prompt, char **out, size_t *out_len,
    st_error *err);

/* Text that ends an assistant turn in this family: the server should stop
 * on these (as control tokens found with st_tokenizer_find, since control
 * tokens are usually not rendered into the text, and as stop strings).
 * Returns a static array of *n strings (n may be 0). */
const char *const *st_chat_stop_strings(st_chat_family fam, size_t *n);

#endif /* ST_CHAT_H */
