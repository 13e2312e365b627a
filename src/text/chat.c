/*
 * Chat template detection and native rendering; see chat.h.
 *
 * Each renderer writes the format its family's reference template
 * produces for plain system/user/assistant messages (no tools, no
 * images). Where a family has no system role (llama2, mistral v1/v3,
 * gemma) each system message is folded into the next user turn, as the
 * official templates and llama.cpp do.
 *
 * Fallback for models without a template (ST_CHAT_PLAIN):
 *
 *     System: {content}\n
 *     User: {content}\n
 *     Assistant: {content}\n
 *     Assistant:                      <- generation prompt
 *
 * Why not ChatML like llama.cpp: a model with no template was not trained
 * on any chat markup; "<|im_start|>" is not a token of its vocabulary and
 * would reach it as a handful of meaningless pieces. A labelled
 * transcript is ordinary text that any base model has seen and can
 * continue, and "\nUser:" makes a natural stop string.
 */
#include "starling/st_chat.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char   *p;
    size_t  len;
    size_t  cap;
    int     nomem;
} st_sbuf;


static void
st_sbuf_add(st_sbuf *b, const char *s, size_t len)
{
    size_t cap;
    char  *p;

    if (b->nomem) {
        return;
    }
    if (b->len + len + 1 > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->nomem = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (len > 0) {
        memcpy(b->p + b->len, s, len);
    }
    b->len += len;
    b->p[b->len] = '\0';
}


static void
st_sbuf_str(st_sbuf *b, const char *s)
{
    st_sbuf_add(b, s, strlen(s));
}


static int
st_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}


/* Content without leading/trailing ASCII whitespace (Jinja's trim). */
static void
st_sbuf_trimmed(st_sbuf *b, const char *s, size_t len)
{
    while (len > 0 && st_is_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && st_is_space(s[len - 1])) {
        len--;
    }
    st_sbuf_add(b, s, len);
}


/* ---- names and detection ------------------------------------------------ */

static const char *const st_chat_names[ST_CHAT_N_FAMILIES] = {
    "plain", "chatml", "llama2", "llama3", "mistral-v1", "mistral-v3",
    "mistral-v3-tekken", "mistral-v7", "zephyr", "phi3", "phi4", "gemma"
};


st_chat_family
st_chat_family_from_name(const char *name)
{
    int i;

    if (name == NULL) {
        return ST_CHAT_UNKNOWN;
    }
    for (i = 0; i < ST_CHAT_N_FAMILIES; i++) {
        if (strcmp(name, st_chat_names[i]) == 0) {
            return (st_chat_family) i;
        }
    }
    return ST_CHAT_UNKNOWN;
}


const char *
st_chat_family_name(st_chat_family fam)
{
    if (fam < 0 || fam >= ST_CHAT_N_FAMILIES) {
        return "unknown";
    }
    return st_chat_names[fam];
}


st_chat_family
st_chat_detect(const char *t)
{
    st_chat_family fam;

#define HAS(s) (strstr(t, (s)) != NULL)
    if (t == NULL || t[0] == '\0') {
        return ST_CHAT_PLAIN;
    }
    fam = st_chat_family_from_name(t);
    if (fam != ST_CHAT_UNKNOWN) {
        return fam;
    }
    if (HAS("<|im_start|>")) {
        /* SmolVLM uses <|im_start|> but not ChatML turns */
        if (HAS("<end_of_utterance>")) {
            return ST_CHAT_UNKNOWN;
        }
        return HAS("<|im_sep|>") ? ST_CHAT_PHI4 : ST_CHAT_CHATML;
    }
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) {
        return ST_CHAT_LLAMA3;
    }
    if (strncmp(t, "mistral", 7) == 0 || HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]")) {
            return ST_CHAT_MISTRAL_V7;
        }
        /* Mistral's official v1/v3 templates; Llama 2's has <<SYS>> and
         * no tool block */
        if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
            if (HAS(" [INST]")) {
                return ST_CHAT_MISTRAL_V1;
            }
            if (HAS("\"[INST]\"")) {
                return ST_CHAT_MISTRAL_V3_TEKKEN;
            }
            return ST_CHAT_MISTRAL_V3;
        }
        return ST_CHAT_LLAMA2;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>")) {
        return ST_CHAT_PHI3;
    }
    if (HAS("<|user|>") && (HAS("<|assistant|>") || HAS("<|system|>"))) {
        /* ChatGLM4 / GLM-Edge share the role tags but not the format */
        if (HAS("[gMASK]") || HAS("<|begin_of_image|>")) {
            return ST_CHAT_UNKNOWN;
        }
        return ST_CHAT_ZEPHYR;
    }
    if (HAS("<start_of_turn>")) {
        return ST_CHAT_GEMMA;
    }
    return ST_CHAT_UNKNOWN;
#undef HAS
}


st_status
st_chat_role_from_name(const char *name, size_t len, st_chat_role *out,
    st_error *err)
{
    static const struct {
        const char  *name;
        st_chat_role role;
    } roles[] = {
        { "system", ST_CHAT_SYSTEM },
        { "user", ST_CHAT_USER },
        { "assistant", ST_CHAT_ASSISTANT },
    };
    size_t i;

    for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (len == strlen(roles[i].name)
            && memcmp(name, roles[i].name, len) == 0)
        {
            *out = roles[i].role;
            return ST_OK;
        }
    }
    /* the role is client text: print it only if short and plain */
    for (i = 0; i < len && i < 32; i++) {
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"') {
            break;
        }
    }
    if (i == len) {
        return st_error_set(err, ST_ERR_INVALID,
            "role \"%.*s\" is not supported (system, user, assistant)",
            (int) len, name);
    }
    return st_error_set(err, ST_ERR_INVALID,
        "role is not supported (system, user, assistant)");
}


/* ---- renderers ---------------------------------------------------------- */

static const char *
st_role_str(st_chat_role r)
{
    return r == ST_CHAT_SYSTEM ? "system"
           : r == ST_CHAT_USER ? "user" : "assistant";
}


/* <open>role<mid>content<close> for every message, then the opening of an
 * assistant turn: ChatML, Phi-3/4, Zephyr, Llama 3 share this shape. */
static void
st_render_tagged(st_sbuf *b, const st_chat_msg *m, size_t n, int gen,
    const char *open, const char *mid, const char *close, int trim)
{
    size_t i;

    for (i = 0; i < n; i++) {
        st_sbuf_str(b, open);
        st_sbuf_str(b, st_role_str(m[i].role));
        st_sbuf_str(b, mid);
        if (trim) {
            st_sbuf_trimmed(b, m[i].content, m[i].content_len);
        } else {
            st_sbuf_add(b, m[i].content, m[i].content_len);
        }
        st_sbuf_str(b, close);
    }
    if (gen) {
        st_sbuf_str(b, open);
        st_sbuf_str(b, "assistant");
        st_sbuf_str(b, mid);
    }
}


/* Opens a Llama 2 user turn, with a pending system message if any. */
static void
st_llama2_open(st_sbuf *b, int *first, const st_chat_msg *sys)
{
    st_sbuf_str(b, *first ? "[INST] " : "<s>[INST] ");
    *first = 0;
    if (sys != NULL) {
        st_sbuf_str(b, "<<SYS>>\n");
        st_sbuf_trimmed(b, sys->content, sys->content_len);
        st_sbuf_str(b, "\n<</SYS>>\n\n");
    }
}


/* Llama 2 chat (meta-llama/Llama-2-*-chat-hf): user turns are
 * "<s>[INST] {user} [/INST]", the first with its <<SYS>> block and without
 * the <s> (the tokenizer's BOS); assistant turns " {answer} </s>". A
 * system message with no user message after it gets a turn of its own. */
static void
st_render_llama2(st_sbuf *b, const st_chat_msg *m, size_t n)
{
    const st_chat_msg *sys = NULL;
    size_t             i;
    int                first = 1;

    for (i = 0; i < n; i++) {
        switch (m[i].role) {
        case ST_CHAT_SYSTEM:
            if (sys != NULL) {
                st_llama2_open(b, &first, sys);
                st_sbuf_str(b, " [/INST]");
            }
            sys = &m[i];
            break;
        case ST_CHAT_USER:
            st_llama2_open(b, &first, sys);
            sys = NULL;
            st_sbuf_trimmed(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, " [/INST]");
            break;
        default:
            if (sys != NULL) {
                st_llama2_open(b, &first, sys);
                st_sbuf_str(b, " [/INST]");
                sys = NULL;
            }
            first = 0;
            st_sbuf_str(b, " ");
            st_sbuf_trimmed(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, " </s>");
            break;
        }
    }
    if (sys != NULL) {
        st_llama2_open(b, &first, sys);
        st_sbuf_str(b, " [/INST]");
    }
}


/* Mistral v1 / v3 / v3-tekken, following Mistral's tokenization cookbook
 * as llama.cpp renders them: "[INST]" opens a turn that collects system
 * text ("{system}\n\n") and the user message; the answer ends it with
 * "</s>". v1 puts a space before [INST] and [/INST]; v1 and v3 put one
 * after [INST] and before the answer; tekken has no spaces; v3 trims the
 * answer. */
static void
st_render_mistral(st_sbuf *b, const st_chat_msg *m, size_t n,
    st_chat_family fam)
{
    const char *lead = fam == ST_CHAT_MISTRAL_V1 ? " " : "";
    const char *trail = fam == ST_CHAT_MISTRAL_V3_TEKKEN ? "" : " ";
    int         in_turn = 0;
    size_t      i;

    for (i = 0; i < n; i++) {
        if (!in_turn) {
            st_sbuf_str(b, lead);
            st_sbuf_str(b, "[INST]");
            st_sbuf_str(b, trail);
            in_turn = 1;
        }
        if (m[i].role == ST_CHAT_SYSTEM) {
            st_sbuf_add(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "\n\n");
        } else if (m[i].role == ST_CHAT_USER) {
            st_sbuf_add(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, lead);
            st_sbuf_str(b, "[/INST]");
        } else {
            st_sbuf_str(b, trail);
            if (fam == ST_CHAT_MISTRAL_V3) {
                st_sbuf_trimmed(b, m[i].content, m[i].content_len);
            } else {
                st_sbuf_add(b, m[i].content, m[i].content_len);
            }
            st_sbuf_str(b, "</s>");
            in_turn = 0;
        }
    }
}


/* Mistral v7 (Mistral Large 2411 and later): system prompts have their
 * own [SYSTEM_PROMPT] block. */
static void
st_render_mistral_v7(st_sbuf *b, const st_chat_msg *m, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (m[i].role == ST_CHAT_SYSTEM) {
            st_sbuf_str(b, "[SYSTEM_PROMPT] ");
            st_sbuf_add(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "[/SYSTEM_PROMPT]");
        } else if (m[i].role == ST_CHAT_USER) {
            st_sbuf_str(b, "[INST] ");
            st_sbuf_add(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "[/INST]");
        } else {
            st_sbuf_str(b, " ");
            st_sbuf_add(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "</s>");
        }
    }
}


/* Gemma: roles user/model, no system role (each system message is
 * folded into the next user turn as "{system}\n\n"), trimmed content. */
static void
st_render_gemma(st_sbuf *b, const st_chat_msg *m, size_t n, int gen)
{
    st_sbuf sys = { NULL, 0, 0, 0 };
    size_t  i;

    for (i = 0; i < n; i++) {
        if (m[i].role == ST_CHAT_SYSTEM) {
            st_sbuf_trimmed(&sys, m[i].content, m[i].content_len);
            st_sbuf_str(&sys, "\n\n");
        } else if (m[i].role == ST_CHAT_USER) {
            st_sbuf_str(b, "<start_of_turn>user\n");
            st_sbuf_add(b, sys.p, sys.len);
            sys.len = 0;
            st_sbuf_trimmed(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "<end_of_turn>\n");
        } else {
            st_sbuf_str(b, "<start_of_turn>model\n");
            st_sbuf_trimmed(b, m[i].content, m[i].content_len);
            st_sbuf_str(b, "<end_of_turn>\n");
        }
    }
    if (sys.len > 0) {
        /* system text with no user turn after it: a user turn of its own */
        st_sbuf_str(b, "<start_of_turn>user\n");
        st_sbuf_add(b, sys.p, sys.len - 2);
        st_sbuf_str(b, "<end_of_turn>\n");
    }
    if (sys.nomem) {
        b->nomem = 1;
    }
    free(sys.p);
    if (gen) {
        st_sbuf_str(b, "<start_of_turn>model\n");
    }
}


static void
st_render_plain(st_sbuf *b, const st_chat_msg *m, size_t n, int gen)
{
    size_t i;

    for (i = 0; i < n; i++) {
        st_sbuf_str(b, m[i].role == ST_CHAT_SYSTEM ? "System: "
                       : m[i].role == ST_CHAT_USER ? "User: "
                       : "Assistant: ");
        st_sbuf_add(b, m[i].content, m[i].content_len);
        st_sbuf_str(b, "\n");
    }
    if (gen) {
        /* no trailing space: SentencePiece vocabularies attach the space
         * to the next word ("▁Once") */
        st_sbuf_str(b, "Assistant:");
    }
}


st_status
st_chat_render(st_chat_family fam, const st_chat_msg *msgs, size_t n,
    int add_generation_prompt, char **out, size_t *out_len, st_error *err)
{
    st_sbuf b = { NULL, 0, 0, 0 };
    size_t  i;
    int     gen = add_generation_prompt != 0;

    *out = NULL;
    if (out_len != NULL) {
        *out_len = 0;
    }
    if (fam == ST_CHAT_UNKNOWN || fam < 0 || fam >= ST_CHAT_N_FAMILIES) {
        return st_error_set(err, ST_ERR_UNSUPPORTED,
            "chat template not recognised; configure a template family "
            "(chatml, llama2, llama3, mistral-v1/v3/v3-tekken/v7, zephyr, "
            "phi3, phi4, gemma, plain)");
    }
    if (n == 0 || msgs == NULL) {
        return st_error_set(err, ST_ERR_INVALID, "messages: empty");
    }
    for (i = 0; i < n; i++) {
        if (msgs[i].role != ST_CHAT_SYSTEM && msgs[i].role != ST_CHAT_USER
            && msgs[i].role != ST_CHAT_ASSISTANT)
        {
            return st_error_set(err, ST_ERR_INVALID,
                "messages[%zu]: invalid role %d", i, (int) msgs[i].role);
        }
        if (msgs[i].content == NULL && msgs[i].content_len > 0) {
            return st_error_set(err, ST_ERR_INVALID,
                "messages[%zu]: content missing", i);
        }
    }

    /* every buffer write starts from an allocated, NUL-terminated string */
    st_sbuf_add(&b, "", 0);

    switch (fam) {
    case ST_CHAT_PLAIN:
        st_render_plain(&b, msgs, n, gen);
        break;
    case ST_CHAT_CHATML:
        st_render_tagged(&b, msgs, n, gen, "<|im_start|>", "\n",
                         "<|im_end|>\n", 0);
        break;
    case ST_CHAT_PHI4:
        st_render_tagged(&b, msgs, n, gen, "<|im_start|>", "<|im_sep|>",
                         "<|im_end|>", 0);
        break;
    case ST_CHAT_LLAMA3:
        st_render_tagged(&b, msgs, n, gen, "<|start_header_id|>",
                         "<|end_header_id|>\n\n", "<|eot_id|>", 1);
        break;
    case ST_CHAT_ZEPHYR:
        st_render_tagged(&b, msgs, n, gen, "<|", "|>\n", "</s>\n", 0);
        break;
    case ST_CHAT_PHI3:
        st_render_tagged(&b, msgs, n, gen, "<|", "|>\n", "<|end|>\n", 0);
        break;
    case ST_CHAT_LLAMA2:
        st_render_llama2(&b, msgs, n);
        break;
    case ST_CHAT_MISTRAL_V1:
    case ST_CHAT_MISTRAL_V3:
    case ST_CHAT_MISTRAL_V3_TEKKEN:
        st_render_mistral(&b, msgs, n, fam);
        break;
    case ST_CHAT_MISTRAL_V7:
        st_render_mistral_v7(&b, msgs, n);
        break;
    case ST_CHAT_GEMMA:
        st_render_gemma(&b, msgs, n, gen);
        break;
    default:
        break;
    }

    if (b.nomem) {
        free(b.p);
        return st_error_set(err, ST_ERR_NOMEM, "chat: out of memory");
    }
    *out = b.p;
    if (out_len != NULL) {
        *out_len = b.len;
    }
    return ST_OK;
}


const char *const *
st_chat_stop_strings(st_chat_family fam, size_t *n)
{
    static const char *const plain[] = { "\nUser:" };
    static const char *const chatml[] = { "<|im_end|>" };
    static const char *const eos[] = { "</s>" };
    static const char *const llama3[] = { "<|eot_id|>", "<|eom_id|>" };
    static const char *const phi3[] = { "<|end|>", "<|endoftext|>" };
    static const char *const gemma[] = { "<end_of_turn>" };

#define RET(a) do { *n = sizeof(a) / sizeof(a[0]); return a; } while (0)
    switch (fam) {
    case ST_CHAT_PLAIN:             RET(plain);
    case ST_CHAT_CHATML:
    case ST_CHAT_PHI4:              RET(chatml);
    case ST_CHAT_LLAMA2:
    case ST_CHAT_MISTRAL_V1:
    case ST_CHAT_MISTRAL_V3:
    case ST_CHAT_MISTRAL_V3_TEKKEN:
    case ST_CHAT_MISTRAL_V7:
    case ST_CHAT_ZEPHYR:            RET(eos);
    case ST_CHAT_LLAMA3:            RET(llama3);
    case ST_CHAT_PHI3:              RET(phi3);
    case ST_CHAT_GEMMA:             RET(gemma);
    default:
        *n = 0;
        return NULL;
    }
#undef RET
}
