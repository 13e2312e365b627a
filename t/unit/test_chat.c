/*
 * Chat template unit tests (TAP): detection and exact rendering.
 */
#include "tap.h"
#include "starling/st_chat.h"

#define MSG(r, s) { (r), (s), sizeof(s) - 1 }

static const st_chat_msg conv[3] = {
    MSG(ST_CHAT_SYSTEM, "You are terse."),
    MSG(ST_CHAT_USER, "Hi there"),
    MSG(ST_CHAT_ASSISTANT, "Hello!"),
};


static int
render_is(st_chat_family fam, const st_chat_msg *m, size_t n, int gen,
    const char *want)
{
    char    *out = NULL;
    size_t   len = 0;
    st_error err = { ST_OK, "" };
    int      good;

    if (st_chat_render(fam, m, n, gen, &out, &len, &err) != ST_OK) {
        diag("render %s: %s", st_chat_family_name(fam), err.msg);
        return 0;
    }
    good = len == strlen(want) && memcmp(out, want, len) == 0
           && out[len] == '\0';
    if (!good) {
        diag("got:  \"%s\"", out);
        diag("want: \"%s\"", want);
    }
    free(out);
    return good;
}


static void
test_render(void)
{
    static const struct {
        st_chat_family fam;
        const char    *want;
    } cases[] = {
        { ST_CHAT_PLAIN,
          "System: You are terse.\nUser: Hi there\nAssistant: Hello!\n"
          "Assistant:" },
        { ST_CHAT_CHATML,
          "<|im_start|>system\nYou are terse.<|im_end|>\n"
          "<|im_start|>user\nHi there<|im_end|>\n"
          "<|im_start|>assistant\nHello!<|im_end|>\n"
          "<|im_start|>assistant\n" },
        { ST_CHAT_LLAMA2,
          "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]"
          " Hello! </s>" },
        { ST_CHAT_LLAMA3,
          "<|start_header_id|>system<|end_header_id|>\n\nYou are terse."
          "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there"
          "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
          "Hello!<|eot_id|><|start_header_id|>assistant<|end_header_id|>"
          "\n\n" },
        { ST_CHAT_MISTRAL_V1,
          " [INST] You are terse.\n\nHi there [/INST] Hello!</s>" },
        { ST_CHAT_MISTRAL_V3,
          "[INST] You are terse.\n\nHi there[/INST] Hello!</s>" },
        { ST_CHAT_MISTRAL_V3_TEKKEN,
          "[INST]You are terse.\n\nHi there[/INST]Hello!</s>" },
        { ST_CHAT_MISTRAL_V7,
          "[SYSTEM_PROMPT] You are terse.[/SYSTEM_PROMPT][INST] Hi there"
          "[/INST] Hello!</s>" },
        { ST_CHAT_ZEPHYR,
          "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n"
          "<|assistant|>\nHello!</s>\n<|assistant|>\n" },
        { ST_CHAT_PHI3,
          "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n"
          "<|assistant|>\nHello!<|end|>\n<|assistant|>\n" },
        { ST_CHAT_PHI4,
          "<|im_start|>system<|im_sep|>You are terse.<|im_end|>"
          "<|im_start|>user<|im_sep|>Hi there<|im_end|>"
          "<|im_start|>assistant<|im_sep|>Hello!<|im_end|>"
          "<|im_start|>assistant<|im_sep|>" },
        { ST_CHAT_GEMMA,
          "<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
          "<start_of_turn>model\nHello!<end_of_turn>\n"
          "<start_of_turn>model\n" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(render_is(cases[i].fam, conv, 3, 1, cases[i].want),
            "%s: system/user/assistant + generation prompt",
            st_chat_family_name(cases[i].fam));
    }
    ok((size_t) ST_CHAT_N_FAMILIES == sizeof(cases) / sizeof(cases[0]),
        "every family has a rendering test");

    ok(render_is(ST_CHAT_CHATML, conv + 1, 1, 0,
        "<|im_start|>user\nHi there<|im_end|>\n"),
        "chatml without generation prompt");
    ok(render_is(ST_CHAT_PLAIN, conv + 1, 1, 1,
        "User: Hi there\nAssistant:"), "plain, user only");
}


static void
test_render_details(void)
{
    static const st_chat_msg multi[3] = {
        MSG(ST_CHAT_USER, "One"),
        MSG(ST_CHAT_ASSISTANT, "Two"),
        MSG(ST_CHAT_USER, "Three"),
    };
    static const st_chat_msg spaced[2] = {
        MSG(ST_CHAT_USER, "  padded \n"),
        MSG(ST_CHAT_ASSISTANT, "\tok "),
    };
    static const st_chat_msg sys_only[1] = {
        MSG(ST_CHAT_SYSTEM, "Rules."),
    };
    static const st_chat_msg nul[1] = {
        { ST_CHAT_USER, "a\0b", 3 },
    };
    char    *out;
    size_t   len;

    ok(render_is(ST_CHAT_LLAMA2, multi, 3, 1,
        "[INST] One [/INST] Two </s><s>[INST] Three [/INST]"),
        "llama2 multi-turn: <s> before later turns, none first");
    ok(render_is(ST_CHAT_MISTRAL_V3, multi, 3, 1,
        "[INST] One[/INST] Two</s>[INST] Three[/INST]"),
        "mistral-v3 multi-turn");
    ok(render_is(ST_CHAT_MISTRAL_V1, multi, 3, 0,
        " [INST] One [/INST] Two</s> [INST] Three [/INST]"),
        "mistral-v1 multi-turn");
    ok(render_is(ST_CHAT_LLAMA3, spaced, 2, 0,
        "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nok<|eot_id|>"),
        "llama3 trims content");
    ok(render_is(ST_CHAT_CHATML, spaced, 1, 0,
        "<|im_start|>user\n  padded \n<|im_end|>\n"),
        "chatml keeps content verbatim");
    ok(render_is(ST_CHAT_LLAMA2, sys_only, 1, 1,
        "[INST] <<SYS>>\nRules.\n<</SYS>>\n\n [/INST]"),
        "llama2 lone system message gets a turn");
    ok(render_is(ST_CHAT_GEMMA, sys_only, 1, 1,
        "<start_of_turn>user\nRules.<end_of_turn>\n<start_of_turn>model\n"),
        "gemma lone system message gets a user turn");
    ok(st_chat_render(ST_CHAT_CHATML, nul, 1, 0, &out, &len, NULL) == ST_OK
        && len == strlen("<|im_start|>user\n") + 3 + strlen("<|im_end|>\n")
        && memcmp(out + strlen("<|im_start|>user\n"), "a\0b", 3) == 0,
        "content is length-delimited (embedded NUL kept)");
    free(out);
}


static void
test_errors(void)
{
    st_chat_msg  bad[1] = { MSG(ST_CHAT_USER, "x") };
    st_chat_role role;
    st_error     err;
    char        *out = (char *) 1;
    size_t       len;

    ok(st_chat_render(ST_CHAT_UNKNOWN, conv, 3, 1, &out, &len, &err)
        == ST_ERR_UNSUPPORTED && out == NULL,
        "unknown family -> unsupported (%s)", err.msg);
    ok(st_chat_render(ST_CHAT_CHATML, conv, 0, 1, &out, &len, &err)
        == ST_ERR_INVALID, "no messages -> invalid");
    bad[0].role = (st_chat_role) 7;
    ok(st_chat_render(ST_CHAT_CHATML, bad, 1, 1, &out, &len, &err)
        == ST_ERR_INVALID && strstr(err.msg, "role") != NULL,
        "role outside the enum -> invalid (%s)", err.msg);

    ok(st_chat_role_from_name("user", 4, &role, &err) == ST_OK
        && role == ST_CHAT_USER, "role user");
    ok(st_chat_role_from_name("assistant", 9, &role, &err) == ST_OK
        && role == ST_CHAT_ASSISTANT, "role assistant");
    ok(st_chat_role_from_name("system", 6, &role, &err) == ST_OK
        && role == ST_CHAT_SYSTEM, "role system");
    ok(st_chat_role_from_name("tool", 4, &role, &err) == ST_ERR_INVALID
        && strstr(err.msg, "tool") != NULL, "role tool rejected (%s)",
        err.msg);
    ok(st_chat_role_from_name("User", 4, &role, &err) == ST_ERR_INVALID,
        "roles are case-sensitive");
    ok(st_chat_role_from_name("user", 3, &role, &err) == ST_ERR_INVALID,
        "role compared by length");
    ok(st_chat_role_from_name("\x01\xff", 2, &role, &err) == ST_ERR_INVALID
        && strstr(err.msg, "\xff") == NULL, "odd role bytes not echoed");
}


static void
test_detect(void)
{
    static const struct {
        const char    *tmpl;
        st_chat_family want;
        const char    *name;
    } cases[] = {
        { NULL, ST_CHAT_PLAIN, "no template" },
        { "", ST_CHAT_PLAIN, "empty template" },
        { "llama3", ST_CHAT_LLAMA3, "a family name as template" },
        /* Qwen2.5-Instruct (excerpt) */
        { "{%- for message in messages %}{{- '<|im_start|>' + "
          "message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
          "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>"
          "assistant\\n' }}{%- endif %}", ST_CHAT_CHATML, "Qwen ChatML" },
        /* Phi-4 (excerpt) */
        { "{% for message in messages %}{{'<|im_start|>' + message['role']"
          " + '<|im_sep|>' + message['content'] + '<|im_end|>'}}"
          "{% endfor %}", ST_CHAT_PHI4, "Phi-4" },
        /* Llama 3 instruct (excerpt) */
        { "{{ bos_token }}{% for message in messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>"
          "\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}",
          ST_CHAT_LLAMA3, "Llama 3" },
        /* Llama 2 chat (excerpt) */
        { "{% if loop.index0 == 0 and system_message != false %}{% set "
          "content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
          "message['content'] %}{% endif %}{% if message['role'] == 'user'"
          " %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}",
          ST_CHAT_LLAMA2, "Llama 2" },
        /* Mistral v1 (excerpt) */
        { "{%- if loop.first and system_message is defined %}{{- ' [INST] "
          "' + system_message + '\\n\\n' + message['content'] + ' [/INST]' "
          "}}{%- else %}{{- ' [INST] ' + message['content'] + ' [/INST]' }}",
          ST_CHAT_MISTRAL_V1, "Mistral v1" },
        /* Mistral v3 (excerpt) */
        { "{%- if tools is not none and (message == user_messages[-1]) %}"
          "{{- \"[AVAILABLE_TOOLS] [\" }}{%- endif %}{{- \"[INST] \" + "
          "message[\"content\"] + \"[/INST]\" }}",
          ST_CHAT_MISTRAL_V3, "Mistral v3" },
        /* Mistral v3 tekken (excerpt) */
        { "{{- \"[AVAILABLE_TOOLS]\" }}{{- tools|tojson }}{{- "
          "\"[/AVAILABLE_TOOLS]\" }}{{- \"[INST]\" + message[\"content\"] + "
          "\"[/INST]\" }}", ST_CHAT_MISTRAL_V3_TEKKEN, "Mistral v3 tekken" },
        /* Mistral v7 (excerpt) */
        { "{%- if message['role'] == 'system' %}{{- '[SYSTEM_PROMPT]' + "
          "message['content'] + '[/SYSTEM_PROMPT]' }}{%- elif message['role']"
          " == 'user' %}{{- '[INST]' + message['content'] + '[/INST]' }}",
          ST_CHAT_MISTRAL_V7, "Mistral v7" },
        /* Zephyr 7B beta (excerpt) */
        { "{% for message in messages %}\n{% if message['role'] == 'user' "
          "%}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif "
          "message['role'] == 'system' %}\n{{ '<|system|>\n' + "
          "message['content'] + eos_token }}\n{% endif %}\n{% if loop.last "
          "and add_generation_prompt %}\n{{ '<|assistant|>' }}",
          ST_CHAT_ZEPHYR, "Zephyr" },
        /* Phi-3 mini (excerpt) */
        { "{% if message['role'] == 'user' %}{{'<|user|>' + '\n' + "
          "message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}",
          ST_CHAT_PHI3, "Phi-3" },
        /* Gemma (excerpt) */
        { "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
          "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
          "{{'<start_of_turn>model\n'}}", ST_CHAT_GEMMA, "Gemma" },
        /* Command-R (excerpt): not supported */
        { "{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + "
          "'<|END_OF_TURN_TOKEN|>' }}", ST_CHAT_UNKNOWN, "Command-R" },
        /* ChatGLM4 (excerpt): shares <|user|> but is not zephyr */
        { "[gMASK]<sop>{% for item in messages %}<|{{ item['role'] }}|>"
          "<|user|>\n{{ item['content'] }}<|assistant|>",
          ST_CHAT_UNKNOWN, "ChatGLM4" },
        { "{{ messages }}", ST_CHAT_UNKNOWN, "unrecognised template" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_chat_family got = st_chat_detect(cases[i].tmpl);

        ok(got == cases[i].want, "detect %s -> %s (got %s)", cases[i].name,
            st_chat_family_name(cases[i].want), st_chat_family_name(got));
    }
}


static void
test_names_and_stops(void)
{
    int                fam, round = 1, stops_ok = 1;
    size_t             n, i;
    const char *const *s;

    for (fam = 0; fam < ST_CHAT_N_FAMILIES; fam++) {
        round &= st_chat_family_from_name(
                     st_chat_family_name((st_chat_family) fam)) == fam;
        s = st_chat_stop_strings((st_chat_family) fam, &n);
        stops_ok &= s != NULL && n > 0;
        for (i = 0; s != NULL && i < n; i++) {
            stops_ok &= s[i] != NULL && s[i][0] != '\0';
        }
    }
    ok(round, "family names round-trip");
    ok(stops_ok, "every family has stop strings");
    ok(st_chat_family_from_name("vicuna") == ST_CHAT_UNKNOWN
        && st_chat_family_from_name(NULL) == ST_CHAT_UNKNOWN
        && strcmp(st_chat_family_name(ST_CHAT_UNKNOWN), "unknown") == 0,
        "unknown names");
    s = st_chat_stop_strings(ST_CHAT_CHATML, &n);
    ok(n == 1 && strcmp(s[0], "<|im_end|>") == 0, "chatml stops on "
        "<|im_end|>");
    s = st_chat_stop_strings(ST_CHAT_LLAMA3, &n);
    ok(n >= 1 && strcmp(s[0], "<|eot_id|>") == 0, "llama3 stops on "
        "<|eot_id|>");
    s = st_chat_stop_strings(ST_CHAT_UNKNOWN, &n);
    ok(s == NULL && n == 0, "unknown: no stops");
}


int
main(void)
{
    (void) skip;
    (void) tap_shared_dir;
    (void) tap_root_dir;

    test_render();
    test_render_details();
    test_errors();
    test_detect();
    test_names_and_stops();
    return done_testing();
}
