/*
 * Unit tests of the nginx-free API layer (src/api): JSON escaping, UTF-8
 * helpers, request parsing/validation for every surface, chat rendering.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "starling/st_api.h"


static const st_api_limits  lim = { 2048, 32768 };


static st_api_request *
parse(st_api_kind kind, const char *body)
{
    return st_api_parse(kind, body, strlen(body), &lim);
}


static int
has_error(const st_api_request *r, const char *field, const char *constraint)
{
    size_t  i;

    for (i = 0; i < r->n_errors; i++) {
        if (strcmp(r->errors[i].field, field) == 0
            && (constraint == NULL
                || strcmp(r->errors[i].constraint, constraint) == 0))
        {
            return 1;
        }
    }

    return 0;
}


static void
test_jbuf(void)
{
    st_jbuf  b;

    st_jbuf_init(&b);
    st_jbuf_add_jstr(&b, "a\"b\\c\n\x01", 7);
    ok(strcmp(b.data, "\"a\\\"b\\\\c\\n\\u0001\"") == 0, "escapes: %s",
       b.data);

    st_jbuf_reset(&b);
    st_jbuf_add_jstr(&b, "x\xff" "y\xc3\xa9", 5);
    ok(strcmp(b.data, "\"x\xef\xbf\xbdy\xc3\xa9\"") == 0,
       "invalid byte -> U+FFFD, valid UTF-8 kept");

    st_jbuf_reset(&b);
    st_jbuf_add_jstr(&b, "\xed\xa0\x80", 3);
    ok(strcmp(b.data, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"") == 0,
       "surrogate code point rejected");

    st_jbuf_reset(&b);
    st_jbuf_add_float(&b, -INFINITY);
    st_jbuf_adds(&b, ",");
    st_jbuf_add_float(&b, NAN);
    ok(strcmp(b.data, "-9999.0,null") == 0, "non-finite floats: %s",
       b.data);

    st_jbuf_reset(&b);
    st_jbuf_addf(&b, "%0300d", 7);
    ok(b.len == 300 && !b.failed, "addf grows the buffer");

    st_jbuf_free(&b);
}


static void
test_utf8(void)
{
    ok(st_api_utf8_valid("h\xc3\xa9llo", 6), "valid UTF-8");
    ok(!st_api_utf8_valid("\xc3\x28", 2), "invalid continuation");
    ok(!st_api_utf8_valid("\xc0\xaf", 2), "overlong");
    ok(!st_api_utf8_valid("\xf4\x90\x80\x80", 4), "> U+10FFFF");
    ok(st_api_utf8_chars("h\xc3\xa9\xe2\x82\xac", 6) == 3, "code points");
    ok(st_api_utf8_complete("ab\xe2\x82", 4) == 2, "incomplete tail held");
    ok(st_api_utf8_complete("ab\xe2\x82\xac", 5) == 5, "complete kept");
    ok(st_api_utf8_complete("abc", 3) == 3, "ASCII kept");
}


static void
test_completions(void)
{
    st_api_request  *r;

    r = parse(ST_API_COMPLETIONS,
              "{\"model\":\"tiny\",\"prompt\":\"Once\",\"max_tokens\":5,"
              "\"temperature\":0,\"stream\":true,\"stream_options\":"
              "{\"include_usage\":true},\"stop\":[\"a\",\"bc\"],"
              "\"logit_bias\":{\"12\":-100,\"7\":2.5},\"seed\":-1,"
              "\"logprobs\":2,\"future_field\":{\"x\":[1]},\"user\":null}");
    ok(r != NULL && r->n_errors == 0, "valid completion request");
    ok(strcmp(r->model, "tiny") == 0, "model");
    ok(r->prompt_len == 4 && strcmp(r->prompt, "Once") == 0, "prompt");
    ok(r->max_tokens == 5, "max_tokens");
    ok(r->sampling.temperature == 0, "temperature");
    ok(r->stream && r->include_usage, "stream + include_usage");
    ok(r->n_stop == 2 && strcmp(r->stop[1], "bc") == 0, "stop");
    ok(r->n_logit_bias == 2 && r->logit_bias[0].token == 12
       && isinf(r->logit_bias[0].bias) && r->logit_bias[1].bias == 2.5f,
       "logit_bias (-100 bans)");
    ok(r->sampling.seed == UINT64_MAX, "negative seed wraps (int64)");
    ok(r->logprobs && r->top_logprobs == 2 && r->sampling.n_probs == 2,
       "logprobs");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":[[1,2,3]]}");
    ok(r->n_errors == 0 && r->n_prompt_ids == 3 && r->prompt_ids[2] == 3,
       "token-array prompt");
    ok(r->max_tokens == 16, "default max_tokens 16");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":[\"a\",\"bc\"],\"n\":3}");
    ok(r->n_errors == 0 && r->n_batch == 2 && r->n == 3
       && strcmp(r->batch[1].text, "bc") == 0 && r->prompt == NULL,
       "batch of string prompts, n=3");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":[[1,2],[3]]}");
    ok(r->n_errors == 0 && r->n_batch == 2 && r->batch[0].n_ids == 2
       && r->batch[1].ids[0] == 3 && r->n == 1, "batch of token arrays");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":[\"a\",[]]}");
    ok(has_error(r, "prompt[1]", "type"), "empty token array in a batch");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":[\"a\",\"b\"],\"n\":33}");
    ok(has_error(r, "n", "range"), "n * prompts over %d",
       ST_API_MAX_CHOICES);
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"a\",\"n\":2,"
              "\"best_of\":2,\"echo\":true}");
    ok(r->n_errors == 0 && r->echo && r->n == 2, "echo, best_of = n");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"a\",\"n\":2,"
              "\"best_of\":1}");
    ok(has_error(r, "best_of", "unsupported"), "best_of < n");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"a\",\"best_of\":3}");
    ok(has_error(r, "best_of", "unsupported")
       && strstr(r->errors[0].message, "best_of > n") != NULL,
       "best_of > n: clear 400");
    st_api_request_free(r);

    r = parse(ST_API_EXECUTE, "{\"job_id\":\"j\",\"prompt\":\"a\","
              "\"n\":2}");
    ok(has_error(r, "n", "range"), "worker API: n=2 rejected");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS,
              "{\"prompt\":\"x\",\"temperature\":1e999,\"n\":65,"
              "\"echo\":true,\"logprobs\":1,\"max_tokens\":99999,"
              "\"top_p\":\"1\"}");
    ok(has_error(r, "temperature", "range"), "overflowing number");
    ok(has_error(r, "n", "range"), "n=65");
    ok(!has_error(r, "echo", "unsupported"), "echo with logprobs is "
       "valid (the prompt's logprobs come first)");
    ok(has_error(r, "max_tokens", "range"), "max_tokens over the limit");
    ok(has_error(r, "top_p", "type"), "top_p as string");
    ok(r->n_errors == 4, "all four reported (%zu)", r->n_errors);
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"x\",\"temperature\":NaN}");
    ok(has_error(r, "body", "json"), "NaN is not JSON");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"a\\u0000b\"}");
    ok(has_error(r, "body", "nul"), "\\u0000 rejected");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"\xff\"}");
    ok(has_error(r, "body", "utf8"), "invalid UTF-8 rejected");
    st_api_request_free(r);

    {
        char  deep[200];

        memset(deep, '[', sizeof(deep) - 1);
        deep[sizeof(deep) - 1] = '\0';
        r = parse(ST_API_COMPLETIONS, deep);
        ok(has_error(r, "body", "depth"), "deep nesting rejected early");
        st_api_request_free(r);
    }

    r = parse(ST_API_COMPLETIONS, "");
    ok(has_error(r, "body", "required"), "empty body");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "[1]");
    ok(has_error(r, "body", "type"), "non-object body");
    st_api_request_free(r);
}


static void
test_execute(void)
{
    st_api_request  *r;
    st_jbuf          b;

    r = parse(ST_API_EXECUTE,
              "{\"job_id\":\"j1\",\"prompt\":\"hi\",\"seed\":"
              "18446744073709551615}");
    ok(r->n_errors == 0, "valid execute");
    ok(r->sampling.seed == UINT64_MAX, "seed 2^64-1");
    ok(r->max_tokens == 256, "default max_tokens 256");
    st_api_request_free(r);

    r = parse(ST_API_EXECUTE,
              "{\"job_id\":\"\",\"prompt\":\"\",\"max_tokens\":0,"
              "\"temperature\":-1,\"seed\":-5}");
    ok(r->n_errors == 5, "five errors at once (%zu)", r->n_errors);
    ok(has_error(r, "job_id", "length") && has_error(r, "prompt", "length")
       && has_error(r, "max_tokens", "range")
       && has_error(r, "temperature", "range")
       && has_error(r, "seed", "range"), "each field named");

    st_jbuf_init(&b);
    st_api_write_errors(&b, r);
    ok(strstr(b.data, "\"errors\":[{\"field\":\"job_id\"") != NULL,
       "errors body");
    st_jbuf_free(&b);
    st_api_request_free(r);

    r = parse(ST_API_EXECUTE,
              "{\"job_id\":\"x\",\"prompt\":\"SECRET-TEXT\",\"max_tokens\":"
              "1,\"temperature\":9}");
    st_jbuf_init(&b);
    st_api_write_errors(&b, r);
    ok(strstr(b.data, "SECRET") == NULL, "prompt never echoed");
    st_jbuf_free(&b);
    st_api_request_free(r);

    r = parse(ST_API_EXECUTE, "{\"job_id\":\"x\",\"prompt\":\"ab\","
                              "\"seed\":18446744073709551616}");
    ok(has_error(r, "seed", "range"), "seed 2^64 rejected");
    st_api_request_free(r);

    {
        static const st_api_limits  small = { 8, 3 };

        static const char  body[] =
            "{\"job_id\":\"x\",\"prompt\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}";

        r = st_api_parse(ST_API_EXECUTE, body, sizeof(body) - 1, &small);
        ok(r->n_errors == 0, "3 code points fit a 3-char limit");
        ok(r->max_tokens == 8, "default capped by the limit");
        st_api_request_free(r);
    }
}


static void
test_chat(void)
{
    st_api_request  *r;
    st_jbuf          b;
    st_error         err;
    const char *const *stop;
    size_t           n_stop;

    r = parse(ST_API_CHAT,
              "{\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
              "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
              "\"text\":\"Hel\"},{\"type\":\"text\",\"text\":\"lo\"}]},"
              "{\"role\":\"assistant\",\"content\":null}],"
              "\"logprobs\":true,\"top_logprobs\":3,"
              "\"max_completion_tokens\":7}");
    ok(r->n_errors == 0, "valid chat");
    ok(r->n_messages == 3 && strcmp(r->messages[1].content, "Hello") == 0,
       "text parts joined");
    ok(r->max_tokens == 7, "max_completion_tokens");
    ok(r->sampling.n_probs == 3, "top_logprobs -> n_probs");

    st_jbuf_init(&b);
    ok(st_api_chat_render("chatml", NULL, r->messages, r->n_messages, &b,
                          &stop, &n_stop, &err) == ST_OK,
       "chatml render");
    ok(b.data != NULL && strstr(b.data, "<|im_start|>user\nHello") != NULL,
       "chatml text");
    ok(n_stop >= 1, "chatml stop strings");
    st_jbuf_free(&b);

    st_jbuf_init(&b);
    ok(st_api_chat_render("auto", "{% jinja nobody knows %}", r->messages,
                          r->n_messages, &b, &stop, &n_stop, &err)
       == ST_ERR_UNSUPPORTED, "unknown template refused");
    st_jbuf_free(&b);
    st_api_request_free(r);

    ok(st_api_chat_family_valid("llama3") && st_api_chat_family_valid("auto")
       && !st_api_chat_family_valid("jinja"), "family names");

    r = parse(ST_API_CHAT, "{\"messages\":[{\"role\":\"robot\","
                           "\"content\":\"x\"},{\"role\":\"user\","
                           "\"content\":[{\"type\":\"image_url\"}]}],"
                           "\"top_logprobs\":2}");
    ok(has_error(r, "messages[0].role", "enum"), "bad role");
    ok(has_error(r, "messages[1].content", "unsupported"), "image part");
    ok(has_error(r, "top_logprobs", "dependency"), "top_logprobs alone");
    st_api_request_free(r);

    r = parse(ST_API_CHAT, "{\"messages\":[]}");
    ok(has_error(r, "messages", "min_items"), "empty messages");
    st_api_request_free(r);
}


static void
test_misc(void)
{
    st_api_request  *r;
    st_jbuf          b;

    r = parse(ST_API_TOKENIZE, "{\"content\":\"abc\",\"add_special\":false}");
    ok(r->n_errors == 0 && !r->add_special && r->prompt_len == 3,
       "tokenize");
    st_api_request_free(r);

    r = parse(ST_API_DETOKENIZE, "{\"tokens\":[1,-2]}");
    ok(has_error(r, "tokens", "type"), "negative token id");
    st_api_request_free(r);

    r = parse(ST_API_CANCEL, "{\"job_id\":\"abc\"}");
    ok(r->n_errors == 0 && strcmp(r->job_id, "abc") == 0, "cancel");
    st_api_request_free(r);

    r = parse(ST_API_CHAT, "{\"messages\":[{\"role\":\"user\","
              "\"content\":\"hi\"}],\"session_id\":\"chat 1\"}");
    ok(r->n_errors == 0 && r->session_id
       && strcmp(r->session_id, "chat 1") == 0, "chat: session_id");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"x\",\"session_id\":\"\"}");
    ok(has_error(r, "session_id", "format"), "empty session_id");
    st_api_request_free(r);

    r = parse(ST_API_EXECUTE, "{\"job_id\":\"j\",\"prompt\":\"x\","
              "\"session_id\":\"a\\u0001b\"}");
    ok(has_error(r, "session_id", "format"), "control character in "
       "session_id");
    st_api_request_free(r);

    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"x\",\"session_id\":7}");
    ok(has_error(r, "session_id", "type"), "numeric session_id");
    st_api_request_free(r);

    r = parse(ST_API_SESSION_CLOSE, "{}");
    ok(has_error(r, "session_id", "required"), "close needs session_id");
    st_api_request_free(r);

    r = parse(ST_API_SESSION_CLOSE, "{\"session_id\":\"s\"}");
    ok(r->n_errors == 0 && strcmp(r->session_id, "s") == 0, "close");
    st_api_request_free(r);

    st_jbuf_init(&b);
    st_api_write_openai_error(&b, "bad \"x\"", "invalid_request_error",
                              "temperature", NULL);
    ok(strcmp(b.data, "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":"
              "\"invalid_request_error\",\"param\":\"temperature\","
              "\"code\":null}}\n") == 0, "OpenAI error object");
    st_jbuf_free(&b);
}


/* A full error list drops further errors; it must never reword an entry
 * that belongs to another field (best_of used to do that). */
static void
test_error_list_full(void)
{
    st_api_request *r;
    size_t          i;
    int             clean = 1;

    r = parse(ST_API_COMPLETIONS,
              "{\"model\":\"tiny\",\"prompt\":\"x\",\"temperature\":\"a\","
              "\"top_p\":\"a\",\"top_k\":\"a\",\"min_p\":\"a\","
              "\"repeat_penalty\":\"a\",\"repeat_last_n\":\"a\","
              "\"presence_penalty\":\"a\",\"frequency_penalty\":\"a\","
              "\"seed\":\"a\",\"max_tokens\":\"a\",\"n\":\"a\","
              "\"stream\":\"a\",\"logit_bias\":\"a\",\"stop\":7,"
              "\"ignore_eos\":\"a\",\"logprobs\":\"a\",\"echo\":\"a\","
              "\"best_of\":2}");
    ok(r != NULL && r->n_errors == ST_API_MAX_ERRORS
       && r->n_errors_dropped > 0,
       "error list full: %zu kept, %zu dropped", r ? r->n_errors : 0,
       r ? r->n_errors_dropped : 0);
    for (i = 0; r != NULL && i < r->n_errors; i++) {
        if (strstr(r->errors[i].message, "best_of") != NULL
            && strcmp(r->errors[i].field, "best_of") != 0)
        {
            diag("error %zu (%s) reads: %s", i, r->errors[i].field,
                 r->errors[i].message);
            clean = 0;
        }
    }
    ok(clean, "no other field's error is reworded by best_of");
    st_api_request_free(r);
}


/* README: suffix "" or null is accepted, anything else is unsupported. */
static void
test_suffix(void)
{
    static const char *ok_bodies[] = {
        "{\"prompt\":\"x\",\"suffix\":\"\"}",
        "{\"prompt\":\"x\",\"suffix\":null}",
    };
    st_api_request *r;
    size_t          i;

    for (i = 0; i < 2; i++) {
        r = parse(ST_API_COMPLETIONS, ok_bodies[i]);
        ok(r != NULL && r->n_errors == 0, "accepted: %s", ok_bodies[i]);
        st_api_request_free(r);
    }
    r = parse(ST_API_COMPLETIONS, "{\"prompt\":\"x\",\"suffix\":\"end\"}");
    ok(r != NULL && has_error(r, "suffix", "unsupported"),
       "a non-empty suffix is refused as unsupported");
    st_api_request_free(r);
}


/* Chat content gets the strict UTF-8 check the prompt gets (yajl lets an
 * encoded surrogate through). */
static void
test_chat_utf8(void)
{
    st_api_request *r;

    r = parse(ST_API_CHAT, "{\"messages\":[{\"role\":\"user\","
              "\"content\":\"a\xed\xa0\x80" "b\"}]}");
    ok(r != NULL && has_error(r, "messages[0].content", "utf8"),
       "chat: an encoded surrogate in content is refused");
    st_api_request_free(r);
    r = parse(ST_API_CHAT, "{\"messages\":[{\"role\":\"user\","
              "\"content\":[{\"type\":\"text\",\"text\":\"\xed\xa0\x80\"}]}]}");
    ok(r != NULL && has_error(r, "messages[0].content", "utf8"),
       "chat: the same in a text content part");
    st_api_request_free(r);
    r = parse(ST_API_CHAT, "{\"messages\":[{\"role\":\"user\","
              "\"content\":\"h\xc3\xa9\"}]}");
    ok(r != NULL && r->n_errors == 0, "chat: valid UTF-8 content accepted");
    st_api_request_free(r);
}



/* tools: fields, the Qwen2.5 (ChatML/Hermes) rendering byte for byte,
 * calls parsed back out of generated text */
static void
test_tools(void)
{
    st_api_request    *r;
    st_jbuf            b;
    st_error           err;
    const char *const *stop;
    size_t             n_stop, content_len;
    st_api_tool_call  *calls;
    int                n;
    static const char  qwen[] = "{%- else %}{{- 'You are Qwen, created by "
        "Alibaba Cloud. You are a helpful assistant.' }}<|im_start|>";
    static const char  tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Get weather\",\"parameters\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
        "\"string\"}},\"required\":[\"city\"]}}}]";
    static const char  sys[] =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are "
        "a helpful assistant.\n\n# Tools\n\nYou may call one or more "
        "functions to assist with the user query.\n\nYou are provided with "
        "function signatures within <tools></tools> XML tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
        "\"description\": \"Get weather\", \"parameters\": {\"type\": "
        "\"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, "
        "\"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, "
        "return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
        "<|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n";
    char               body[2048], want[2048];

    snprintf(body, sizeof(body), "{%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"Weather in Paris?\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(r->n_errors == 0 && r->n_tools == 1
       && strcmp(r->tools[0].name, "get_weather") == 0
       && r->tool_choice == ST_API_TOOLS_AUTO && r->parallel_tool_calls,
       "tools parsed, tool_choice auto, parallel by default");
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("chatml", qwen, r, &b, &stop, &n_stop, &err)
       == ST_OK, "render with tools");
    snprintf(want, sizeof(want), "%s<|im_start|>assistant\n", sys);
    ok(b.data != NULL && strcmp(b.data, want) == 0,
       "Qwen2.5 tool prompt, byte for byte");
    st_jbuf_free(&b);
    st_api_request_free(r);

    /* the call and its result in the history */
    snprintf(body, sizeof(body), "{%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"Weather in Paris?\"},{\"role\":\"assistant\","
             "\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
             "\"function\",\"function\":{\"name\":\"get_weather\","
             "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":"
             "\"22C\"},{\"role\":\"tool\",\"tool_call_id\":\"call_2\","
             "\"content\":\"sunny\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(r->n_errors == 0 && r->messages[1].n_tool_calls == 1
       && strcmp(r->messages[2].tool_call_id, "call_1") == 0,
       "assistant tool_calls and tool messages parsed");
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("chatml", qwen, r, &b, &stop, &n_stop, &err)
       == ST_OK, "render the history");
    snprintf(want, sizeof(want), "%s<|im_start|>assistant\n<tool_call>\n"
             "{\"name\": \"get_weather\", \"arguments\": {\"city\": "
             "\"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n"
             "<tool_response>\n22C\n</tool_response>\n<tool_response>\n"
             "sunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
             sys);
    ok(b.data != NULL && strcmp(b.data, want) == 0,
       "Qwen2.5 history with a call and two results, byte for byte");
    st_jbuf_free(&b);

    /* calls out of generated text */
    snprintf(want, sizeof(want), "I will check.\n<tool_call>\n{\"name\": "
             "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
             "</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
             "\"arguments\": {\"city\": \"Rome\"}}\n</tool_call>");
    n = st_api_tool_calls_parse(want, strlen(want), r->tools, r->n_tools,
            "x", &calls, &content_len);
    ok(n == 2 && strcmp(calls[0].name, "get_weather") == 0
       && strcmp(calls[0].arguments, "{\"city\":\"Paris\"}") == 0
       && strcmp(calls[1].arguments, "{\"city\":\"Rome\"}") == 0
       && strcmp(calls[1].id, "call_x_1") == 0,
       "two calls parsed, arguments as compact JSON text");
    ok(content_len == strlen("I will check.\n"), "content before the calls");
    st_api_tool_calls_free(calls, n > 0 ? (size_t) n : 0);

    n = st_api_tool_calls_parse("<tool_call>{\"name\":\"rm_rf\","
            "\"arguments\":{}}</tool_call>", 48, r->tools, r->n_tools, "x",
            &calls, &content_len);
    ok(n == 0 && content_len == 48, "a function not in tools: plain text");
    n = st_api_tool_calls_parse("<tool_call>{\"name\":\"get_we", 26,
            r->tools, r->n_tools, "x", &calls, &content_len);
    ok(n == 0 && content_len == 26, "a cut call: plain text");
    n = st_api_tool_calls_parse("no calls", 8, r->tools, r->n_tools, "x",
            &calls, &content_len);
    ok(n == 0 && calls == NULL, "no calls");
    st_api_request_free(r);

    /* tool_choice */
    snprintf(body, sizeof(body), "{%s,\"tool_choice\":{\"type\":"
             "\"function\",\"function\":{\"name\":\"get_weather\"}},"
             "\"parallel_tool_calls\":false,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"x\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(r->n_errors == 0 && r->tool_choice == ST_API_TOOLS_NAMED
       && strcmp(r->tool_choice_name, "get_weather") == 0
       && !r->parallel_tool_calls, "named tool_choice, parallel off");
    st_api_request_free(r);

    snprintf(body, sizeof(body), "{%s,\"tool_choice\":{\"type\":"
             "\"function\",\"function\":{\"name\":\"nope\"}},\"messages\":"
             "[{\"role\":\"user\",\"content\":\"x\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(has_error(r, "tool_choice", "unknown_tool"), "unknown named tool");
    st_api_request_free(r);

    r = parse(ST_API_CHAT, "{\"tool_choice\":\"required\",\"messages\":"
              "[{\"role\":\"user\",\"content\":\"x\"}]}");
    ok(has_error(r, "tool_choice", "dependency"), "required without tools");
    st_api_request_free(r);

    r = parse(ST_API_CHAT, "{\"tools\":[{\"type\":\"function\",\"function\":"
              "{\"name\":\"bad name\"}}],\"messages\":[{\"role\":\"user\","
              "\"content\":\"x\"}]}");
    ok(has_error(r, "tools[0]", "name"), "bad function name");
    st_api_request_free(r);

    r = parse(ST_API_CHAT, "{\"tools\":[{\"type\":\"retrieval\"}],"
              "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    ok(has_error(r, "tools[0]", "type"), "non-function tool");
    st_api_request_free(r);
}


/* /v1/responses onto a chat request */
static int
l3_parse(const st_api_request *r, const char *text, st_api_tool_call **calls,
    size_t *content_len)
{
    return st_api_tool_calls_parse_llama3(text, strlen(text), r->tools,
                                          r->n_tools, "x", calls,
                                          content_len);
}


/* Llama 3 tool prompts, byte for byte what Meta's Llama 3.1/3.2 Jinja
 * template renders (jinja2 with transformers' tojson, bos_token empty,
 * no strftime_now), and its call format parsed back */
static void
test_tools_llama3(void)
{
    st_api_request     *r;
    st_jbuf             b;
    st_error            err;
    const char *const  *stop;
    size_t              n_stop, content_len;
    int                 n;
    st_api_tool_call   *calls;
    static const char   tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Weather of a city\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":"
        "{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"enum\":"
        "[1,2]}},\"required\":[\"city\"],\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\","
        "\"parameters\":{}}}]";
    static const char   want1[] =
        "<|start_header_id|>system<|end_header_id|>\n"
        "\n"
        "Environment: ipython\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n"
        "\n"
        "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "Given the following functions, please respond with a JSON for "
        "a function call with its proper arguments that best answers the "
        "given prompt.\n"
        "\n"
        "Respond in the format {\"name\": function name, \"parameters\": "
        "dictionary of argument name and its value}.Do not use variables.\n"
        "\n"
        "{\n"
        "    \"type\": \"function\",\n"
        "    \"function\": {\n"
        "        \"name\": \"get_weather\",\n"
        "        \"description\": \"Weather of a city\",\n"
        "        \"parameters\": {\n"
        "            \"type\": \"object\",\n"
        "            \"properties\": {\n"
        "                \"city\": {\n"
        "                    \"type\": \"string\"\n"
        "                },\n"
        "                \"days\": {\n"
        "                    \"type\": \"integer\",\n"
        "                    \"enum\": [\n"
        "                        1,\n"
        "                        2\n"
        "                    ]\n"
        "                }\n"
        "            },\n"
        "            \"required\": [\n"
        "                \"city\"\n"
        "            ],\n"
        "            \"additionalProperties\": false\n"
        "        }\n"
        "    }\n"
        "}\n"
        "\n"
        "{\n"
        "    \"type\": \"function\",\n"
        "    \"function\": {\n"
        "        \"name\": \"now\",\n"
        "        \"parameters\": {}\n"
        "    }\n"
        "}\n"
        "\n"
        "Weather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n"
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n"
        "\n"
        "\"22C\"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n"
        "It is 22C.<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "Thanks<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n";
    static const char   want2[] =
        "<|start_header_id|>system<|end_header_id|>\n"
        "\n"
        "Environment: ipython\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n"
        "\n"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\n"
        "Given the following functions, please respond with a JSON for "
        "a function call with its proper arguments that best answers the "
        "given prompt.\n"
        "\n"
        "Respond in the format {\"name\": function name, \"parameters\": "
        "dictionary of argument name and its value}.Do not use variables.\n"
        "\n"
        "{\n"
        "    \"type\": \"function\",\n"
        "    \"function\": {\n"
        "        \"name\": \"now\",\n"
        "        \"parameters\": {}\n"
        "    }\n"
        "}\n"
        "\n"
        "Hi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n";
    char                body[2048];

    snprintf(body, sizeof(body), "{%s,\"messages\":["
             "{\"role\":\"system\",\"content\":\"Be brief. \"},"
             "{\"role\":\"user\",\"content\":\" Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
             "\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
             "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"22C\"},"
             "{\"role\":\"assistant\",\"content\":\"It is 22C.\"},"
             "{\"role\":\"user\",\"content\":\"Thanks\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(r->n_errors == 0, "llama3: request parsed");
    ok(st_api_tools_style_of("llama3", NULL) == ST_API_TOOLS_STYLE_LLAMA3
       && st_api_tools_style_of("auto", "{{ '<|start_header_id|>' + "
                                "role + '<|end_header_id|>' }}")
          == ST_API_TOOLS_STYLE_LLAMA3
       && st_api_tools_style_of("chatml", NULL) == ST_API_TOOLS_STYLE_HERMES,
       "llama3: style from the family");
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("llama3", NULL, r, &b, &stop, &n_stop, &err)
       == ST_OK && b.data != NULL && strcmp(b.data, want1) == 0,
       "llama3: system, tools in the first user turn, a call, its result, "
       "byte for byte");
    if (b.data != NULL && strcmp(b.data, want1) != 0) {
        printf("# got: %s\n", b.data);
    }
    ok(n_stop > 0, "llama3: stop strings");
    st_jbuf_free(&b);

    /* calls parsed back */
    n = l3_parse(r, " {\"name\": \"get_weather\", \"parameters\": "
                 "{\"city\": \"Rome\"}}", &calls, &content_len);
    ok(n == 1 && strcmp(calls[0].name, "get_weather") == 0
       && strcmp(calls[0].arguments, "{\"city\":\"Rome\"}") == 0
       && strcmp(calls[0].id, "call_x_0") == 0 && content_len == 0,
       "llama3: a {name, parameters} reply is one call");
    st_api_tool_calls_free(calls, n > 0 ? (size_t) n : 0);
    n = l3_parse(r, "<|python_tag|>{\"name\": \"now\", \"parameters\": {}}",
                 &calls, &content_len);
    ok(n == 1 && strcmp(calls[0].name, "now") == 0
       && strcmp(calls[0].arguments, "{}") == 0,
       "llama3: after <|python_tag|>");
    st_api_tool_calls_free(calls, n > 0 ? (size_t) n : 0);
    n = l3_parse(r, "{\"name\": \"rm\", \"parameters\": {}}", &calls,
                 &content_len);
    ok(n == 0 && calls == NULL && content_len == 32,
       "llama3: a function not in tools: text");
    n = l3_parse(r, "It is {\"name\": \"now\"}", &calls, &content_len);
    ok(n == 0 && content_len == 21, "llama3: a call not the whole reply: "
       "text");
    n = l3_parse(r, "{\"name\": \"now\", \"param", &calls, &content_len);
    ok(n == 0 && content_len == 22, "llama3: a cut call: text");

    /* forced: the schema's arguments key is "parameters" */
    st_api_request_free(r);
    snprintf(body, sizeof(body), "{%s,\"tool_choice\":\"required\","
             "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_tools_call_schema(r, ST_API_TOOLS_STYLE_LLAMA3, &b) == 1
       && strstr(b.data, "\"required\":[\"name\",\"parameters\"]") != NULL
       && strstr(b.data, "\"arguments\"") == NULL,
       "llama3: a forced call's schema uses parameters");
    st_jbuf_free(&b);
    st_api_request_free(r);

    /* a named tool_choice lists that tool only */
    snprintf(body, sizeof(body), "{%s,\"tool_choice\":{\"type\":\"function\","
             "\"function\":{\"name\":\"now\"}},\"messages\":[{\"role\":"
             "\"user\",\"content\":\"Hi\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("llama3", NULL, r, &b, &stop, &n_stop, &err)
       == ST_OK && b.data != NULL && strcmp(b.data, want2) == 0,
       "llama3: a named tool only, no system message, byte for byte");
    st_jbuf_free(&b);
    st_api_request_free(r);

    /* the template takes one call per assistant turn */
    snprintf(body, sizeof(body), "{%s,\"messages\":["
             "{\"role\":\"user\",\"content\":\"x\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
             "{\"id\":\"a\",\"type\":\"function\",\"function\":{\"name\":"
             "\"now\",\"arguments\":\"{}\"}},"
             "{\"id\":\"b\",\"type\":\"function\",\"function\":{\"name\":"
             "\"now\",\"arguments\":\"{}\"}}]}]}", tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("llama3", NULL, r, &b, &stop, &n_stop, &err)
       == ST_ERR_INVALID && strstr(err.msg, "one tool call") != NULL,
       "llama3: two calls in one turn: a clear error");
    st_jbuf_free(&b);
    st_api_request_free(r);
}

/* Mistral v3 tool prompts, byte for byte what Mistral-7B-Instruct-v0.3's
 * Jinja template renders (jinja2 with transformers' tojson, bos_token
 * empty), and [TOOL_CALLS] parsed back */
static void
test_tools_mistral(void)
{
    st_api_request     *r;
    st_jbuf             b;
    st_error            err;
    const char *const  *stop;
    size_t              n_stop, content_len;
    int                 n;
    st_api_tool_call   *calls;
    const char         *t;
    static const char   tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"description\":\"Weather of a city\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":"
        "{\"type\":\"string\"},\"days\":{\"type\":\"integer\",\"enum\":"
        "[1,2]}},\"required\":[\"city\"],\"additionalProperties\":false}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\","
        "\"parameters\":{}}}]";
    static const char   want1[] =
        "[INST] Weather in Paris?[/INST][TOOL_CALLS] [{\"name\": \"get_weather\","
        " \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}]"
        "</s>[TOOL_RESULTS] {\"content\": 22C, \"call_id\": \"abcDEF123\"}[/TOOL_RESULTS]"
        " It is 22C.</s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": "
        "{\"name\": \"get_weather\", \"description\": \"Weather of a city\","
        " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
        "{\"type\": \"string\"}, \"days\": {\"type\": \"integer\", \"enum\": "
        "[1, 2]}}, \"required\": [\"city\"], \"additionalProperties\": "
        "false}}}, {\"type\": \"function\", \"function\": {\"name\": \"now\","
        " \"parameters\": {}}}][/AVAILABLE_TOOLS][INST] Be brief.\n\nThanks[/INST]";
    static const char   want2[] =
        "[INST] Hi[/INST] Yo</s>[AVAILABLE_TOOLS] [{\"type\": \"function\","
        " \"function\": {\"name\": \"now\", \"parameters\": {}}}][/AVAILABLE_TOOLS]"
        "[INST] Now?[/INST] ok</s>";
    char                body[2048];

    ok(st_api_tools_style_of("mistral-v3", NULL) == ST_API_TOOLS_STYLE_MISTRAL
       && st_api_tools_style_of("mistral-v7", NULL)
          == ST_API_TOOLS_STYLE_HERMES,
       "mistral: v3 has its own style");

    snprintf(body, sizeof(body), "{%s,\"messages\":["
             "{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
             "\"id\":\"call_abcDEF123\",\"type\":\"function\",\"function\":"
             "{\"name\":\"get_weather\",\"arguments\":"
             "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"call_abcDEF123\","
             "\"content\":\"22C\"},"
             "{\"role\":\"assistant\",\"content\":\" It is 22C. \"},"
             "{\"role\":\"user\",\"content\":\"Thanks\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    ok(r->n_errors == 0, "mistral: request parsed");
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("mistral-v3", NULL, r, &b, &stop, &n_stop,
                                &err) == ST_OK
       && b.data != NULL && strcmp(b.data, want1) == 0,
       "mistral: a call (id cut to 9), its result, tools before the last "
       "user turn with the system text, byte for byte");
    if (b.data != NULL && strcmp(b.data, want1) != 0) {
        printf("# got: %s\n", b.data);
    }
    st_jbuf_free(&b);

    t = "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": "
        "\"Rome\"}, \"id\": \"abcDEF123\"}, {\"name\": \"now\", "
        "\"arguments\": {}}]";
    n = st_api_tool_calls_parse_mistral(t, strlen(t), r->tools, r->n_tools,
                                        "x", &calls, &content_len);
    ok(n == 2 && strcmp(calls[0].name, "get_weather") == 0
       && strcmp(calls[0].arguments, "{\"city\":\"Rome\"}") == 0
       && strcmp(calls[1].name, "now") == 0
       && strcmp(calls[1].id, "call_x_1") == 0 && content_len == 0,
       "mistral: [TOOL_CALLS] with two calls parsed");
    st_api_tool_calls_free(calls, n > 0 ? (size_t) n : 0);
    t = "Sure. [TOOL_CALLS] [{\"name\": \"rm\", \"arguments\": {}}]";
    n = st_api_tool_calls_parse_mistral(t, strlen(t), r->tools, r->n_tools,
                                        "x", &calls, &content_len);
    ok(n == 0 && content_len == strlen(t), "mistral: unknown function: text");
    t = "[TOOL_CALLS] [{\"name\": \"now\", \"argu";
    n = st_api_tool_calls_parse_mistral(t, strlen(t), r->tools, r->n_tools,
                                        "x", &calls, &content_len);
    ok(n == 0 && content_len == strlen(t), "mistral: a cut call: text");
    st_api_request_free(r);

    /* no call: the system text is dropped unless the last message is a
     * user turn (as the template does) */
    snprintf(body, sizeof(body), "{%s,\"tool_choice\":{\"type\":"
             "\"function\",\"function\":{\"name\":\"now\"}},\"messages\":["
             "{\"role\":\"system\",\"content\":\"S\"},"
             "{\"role\":\"user\",\"content\":\"Hi\"},"
             "{\"role\":\"assistant\",\"content\":\"Yo\"},"
             "{\"role\":\"user\",\"content\":\"Now?\"},"
             "{\"role\":\"assistant\",\"content\":\"ok\"}]}", tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("mistral-v3", NULL, r, &b, &stop, &n_stop,
                                &err) == ST_OK
       && b.data != NULL && strcmp(b.data, want2) == 0,
       "mistral: a named tool only, before the last user turn, byte for "
       "byte");
    if (b.data != NULL && strcmp(b.data, want2) != 0) {
        printf("# got: %s\n", b.data);
    }
    st_jbuf_free(&b);
    st_api_request_free(r);

    /* the template's checks: alternation, 9-character ids */
    snprintf(body, sizeof(body), "{%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}",
             tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("mistral-v3", NULL, r, &b, &stop, &n_stop,
                                &err) == ST_ERR_INVALID
       && strstr(err.msg, "alternate") != NULL,
       "mistral: two user turns in a row: a clear error");
    st_jbuf_free(&b);
    st_api_request_free(r);
    snprintf(body, sizeof(body), "{%s,\"messages\":[{\"role\":\"user\","
             "\"content\":\"a\"},{\"role\":\"assistant\",\"content\":null,"
             "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
             "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}]}",
             tools);
    r = parse(ST_API_CHAT, body);
    st_jbuf_init(&b);
    ok(st_api_chat_render_tools("mistral-v3", NULL, r, &b, &stop, &n_stop,
                                &err) == ST_ERR_INVALID
       && strstr(err.msg, "9 characters") != NULL,
       "mistral: a call id shorter than 9: a clear error");
    st_jbuf_free(&b);
    st_api_request_free(r);
}

static void
test_responses(void)
{
    st_api_request  *r;

    r = parse(ST_API_RESPONSES, "{\"model\":\"m\",\"input\":\"Hi\","
              "\"instructions\":\"Be brief.\",\"max_output_tokens\":7,"
              "\"temperature\":0.5,\"top_p\":0.9,\"stream\":true,"
              "\"store\":false}");
    ok(r->n_errors == 0 && r->n_messages == 2
       && strcmp(r->messages[0].role, "system") == 0
       && strcmp(r->messages[0].content, "Be brief.") == 0
       && strcmp(r->messages[1].role, "user") == 0
       && strcmp(r->messages[1].content, "Hi") == 0,
       "instructions + text input -> system + user");
    ok(r->max_tokens == 7 && r->stream && r->sampling.temperature == 0.5f
       && fabsf(r->sampling.top_p - 0.9f) < 1e-6f, "sampling fields");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":[{\"role\":\"user\",\"content\":"
              "[{\"type\":\"input_text\",\"text\":\"a\"},{\"type\":"
              "\"input_text\",\"text\":\"b\"}]},{\"type\":\"function_call\","
              "\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
              "{\"type\":\"function_call_output\",\"call_id\":\"c1\","
              "\"output\":\"42\"}],\"tools\":[{\"type\":\"function\","
              "\"name\":\"f\",\"description\":\"d\",\"parameters\":{}}]}");
    ok(r->n_errors == 0 && r->n_messages == 3
       && strcmp(r->messages[0].content, "ab") == 0
       && r->messages[1].n_tool_calls == 1
       && strcmp(r->messages[2].role, "tool") == 0
       && strcmp(r->messages[2].content, "42") == 0,
       "message list with a call and its output");
    ok(r->n_tools == 1 && strcmp(r->tools[0].json, "{\"type\": \"function\", "
       "\"function\": {\"name\": \"f\", \"description\": \"d\", "
       "\"parameters\": {}}}") == 0, "flat tool -> chat tool shape");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"previous_response_id\":"
              "\"resp_1\"}");
    ok(has_error(r, "previous_response_id", "unsupported"),
       "previous_response_id: 400");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"json_schema\"}}}");
    ok(has_error(r, "text.format.schema", "required"),
       "json_schema without schema: 400");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"json_schema\",\"name\":\"p\",\"strict\":true,"
              "\"schema\":{\"type\":\"object\",\"properties\":{\"a\":"
              "{\"type\":\"integer\"}},\"required\":[\"a\"]}}}}");
    ok(r->n_errors == 0 && r->constraint != NULL && r->text_format != NULL
       && strstr(r->text_format, "\"name\":\"p\"") != NULL,
       "json_schema: compiled, the format kept to echo");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"json_object\"}}}");
    ok(r->n_errors == 0 && r->constraint != NULL, "json_object: compiled");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"text\"}}}");
    ok(r->n_errors == 0 && r->constraint == NULL && r->text_format == NULL,
       "text: unconstrained");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"json_schema\",\"name\":\"p\",\"schema\":"
              "{\"type\":\"string\",\"pattern\":\"(a)\\\\1\"}}}}");
    ok(has_error(r, "text.format.schema", "unsupported"),
       "unsupported regex feature: 400 on text.format.schema");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":\"x\",\"text\":{\"format\":"
              "{\"type\":\"yaml\"}}}");
    ok(has_error(r, "text.format.type", "enum"), "unknown type: 400");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":[]}");
    ok(has_error(r, "input", "length"), "empty input");
    st_api_request_free(r);

    r = parse(ST_API_RESPONSES, "{\"input\":[{\"type\":\"image\"}]}");
    ok(has_error(r, "input[0]", "unsupported"), "unknown item type");
    st_api_request_free(r);
}

/* /v1/embeddings: the four input shapes, encoding_format, dimensions,
 * normalize, errors; the response writer's float and base64 forms */
static void
test_embeddings(void)
{
    st_api_request  *r;
    st_jbuf          b;
    const float      v0[3] = { 1.0f, -0.5f, 0.1f }, v1[3] = { 0, 0, 2.5f };
    const float     *vecs[2] = { v0, v1 };

    r = parse(ST_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"hello\"}");
    ok(r->n_errors == 0 && r->n_inputs == 1
       && strcmp(r->inputs[0].text, "hello") == 0 && r->normalize == 1
       && !r->encoding_base64 && r->dimensions == 0,
       "embeddings: one string, defaults");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[\"a\",\"bc\"],"
              "\"encoding_format\":\"base64\",\"dimensions\":64,"
              "\"user\":\"u1\",\"normalize\":false}");
    ok(r->n_errors == 0 && r->n_inputs == 2
       && strcmp(r->inputs[1].text, "bc") == 0 && r->encoding_base64
       && r->dimensions == 64 && r->normalize == 0,
       "embeddings: strings, base64, dimensions, normalize false");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[1,2,3]}");
    ok(r->n_errors == 0 && r->n_inputs == 1 && r->inputs[0].n_ids == 3
       && r->inputs[0].ids[2] == 3, "embeddings: one array of token ids");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[[1,2],[3]]}");
    ok(r->n_errors == 0 && r->n_inputs == 2 && r->inputs[0].n_ids == 2
       && r->inputs[1].ids[0] == 3, "embeddings: arrays of token ids");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{}");
    ok(has_error(r, "input", "required"), "embeddings: input required");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":\"\"}");
    ok(has_error(r, "input", "length"), "embeddings: empty string");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[]}");
    ok(has_error(r, "input", "length"), "embeddings: empty array");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[\"a\",\"\"]}");
    ok(has_error(r, "input[1]", "length"), "embeddings: empty item names "
       "its index");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[[1],[]]}");
    ok(has_error(r, "input[1]", "length"), "embeddings: empty id array");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[\"a\",5]}");
    ok(has_error(r, "input[1]", "type"), "embeddings: mixed item types");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":[1,-2]}");
    ok(has_error(r, "input", "type"), "embeddings: negative token id");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":{\"a\":1}}");
    ok(has_error(r, "input", "type"), "embeddings: object input");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":\"a\",\"encoding_format\":"
              "\"int8\"}");
    ok(has_error(r, "encoding_format", "enum"),
       "embeddings: unknown encoding_format");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":\"a\",\"dimensions\":0}");
    ok(has_error(r, "dimensions", NULL), "embeddings: dimensions 0");
    st_api_request_free(r);

    r = parse(ST_API_EMBEDDINGS, "{\"input\":\"a\",\"normalize\":1}");
    ok(has_error(r, "normalize", NULL), "embeddings: normalize not a bool");
    st_api_request_free(r);

    st_jbuf_init(&b);
    st_api_embeddings_write(&b, "m", vecs, 2, 3, 0, 7);
    ok(!b.failed && strcmp(b.data, "{\"object\":\"list\",\"data\":["
       "{\"object\":\"embedding\",\"index\":0,\"embedding\":"
       "[1,-0.5,0.100000001]},{\"object\":\"embedding\",\"index\":1,"
       "\"embedding\":[0,0,2.5]}],\"model\":\"m\",\"usage\":"
       "{\"prompt_tokens\":7,\"total_tokens\":7}}\n") == 0,
       "embeddings: float response (9 digits)");
    st_jbuf_reset(&b);
    /* 1.0f = 00 00 80 3f, -0.5f = 00 00 00 bf, 0.1f = cd cc cc 3d */
    st_api_embeddings_write(&b, "m", vecs, 1, 3, 1, 2);
    ok(!b.failed && strstr(b.data, "\"embedding\":\"AACAPwAAAL/NzMw9\"")
       != NULL, "embeddings: base64 of little-endian float32");
    st_jbuf_reset(&b);
    st_api_embeddings_write(&b, "m", vecs, 1, 1, 1, 2);
    ok(!b.failed && strstr(b.data, "\"embedding\":\"AACAPw==\"") != NULL,
       "embeddings: base64 padding");
    st_jbuf_free(&b);
}


int
main(void)
{
    test_jbuf();
    test_utf8();
    test_completions();
    test_execute();
    test_chat();
    test_misc();
    test_error_list_full();
    test_suffix();
    test_chat_utf8();
    test_tools();
    test_tools_llama3();
    test_tools_mistral();
    test_responses();
    test_embeddings();
    return done_testing();
}
