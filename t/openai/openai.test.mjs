// The official `openai` npm client against Starling: completions, chat,
// responses and embeddings, streaming and not. Starts its own nginx
// (Debian's binary + the built module) on a free loopback port under a
// temporary prefix.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, chmodSync, readFileSync,
         existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(process.env.ST_ROOT ?? join(here, '..', '..'));
const nginx = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
const module = process.env.STARLING_MODULE
    ?? join(root, 'build/nginx/ngx_http_starling_module.so');
const skip = !existsSync(nginx) || !existsSync(module);

let prefix, port, client;

function freePort() {
    return new Promise((res, rej) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => {
            const p = s.address().port;
            s.close(() => res(p));
        });
        s.on('error', rej);
    });
}

function nginxArgs(...extra) {
    return ['-p', prefix + '/', '-c', join(prefix, 'nginx.conf'),
            '-e', join(prefix, 'logs/error.log'), ...extra];
}

before(async () => {
    if (skip) return;
    prefix = mkdtempSync(join(tmpdir(), 'starling-openai-'));
    chmodSync(prefix, 0o755);
    mkdirSync(join(prefix, 'logs'));
    port = await freePort();
    writeFileSync(join(prefix, 'nginx.conf'), `
load_module ${module};
worker_processes 1;
error_log ${prefix}/logs/error.log info;
pid ${prefix}/nginx.pid;
events { worker_connections 64; }
http {
    access_log ${prefix}/logs/access.log;
    client_body_temp_path ${prefix}/body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;
    starling_model tiny path=${root}/models/stories260K.gguf;
    starling_model q8 path=${root}/models/TinyStories-656K-Q8_0.gguf;
    starling_model l3 path=${root}/models/stories260K.gguf chat_template=llama3;
    starling_model mi path=${root}/models/stories260K.gguf chat_template=mistral-v3;
    server {
        listen 127.0.0.1:${port};
        location /v1/ { starling openai; }
        location / { starling worker; }
    }
}
`);
    execFileSync(nginx, nginxArgs());
    for (let i = 0; i < 200; i++) {
        try {
            const r = await fetch(`http://127.0.0.1:${port}/ready`);
            if (r.status === 200) break;
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 50));
    }
    client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`,
                          apiKey: 'unused', maxRetries: 0 });
});

after(() => {
    if (skip || !prefix) return;
    try { execFileSync(nginx, nginxArgs('-s', 'quit')); } catch { /* gone */ }
    const log = readFileSync(join(prefix, 'logs/error.log'), 'utf8');
    assert.doesNotMatch(log, /\[(alert|emerg|crit)\]/, 'clean error.log');
    if (!process.env.ST_KEEP) rmSync(prefix, { recursive: true, force: true });
});

test('models.list', { skip }, async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['tiny', 'q8', 'l3', 'mi']);
});

test('completions, non-streaming', { skip }, async () => {
    const r = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 16, temperature: 0,
    });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices.length, 1);
    assert.ok(r.choices[0].text.length > 0);
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 16);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 16);
});

test('completions, streaming equals non-streaming', { skip }, async () => {
    const full = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 16, temperature: 0,
    });
    const stream = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 16, temperature: 0,
        stream: true, stream_options: { include_usage: true },
    });
    let text = '', finish = null, usage = null;
    for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            text += c.text;
            if (c.finish_reason) finish = c.finish_reason;
        }
    }
    assert.equal(text, full.choices[0].text);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 16);
});

test('chat, non-streaming', { skip }, async () => {
    const r = await client.chat.completions.create({
        model: 'q8', max_tokens: 8, temperature: 0,
        messages: [{ role: 'system', content: 'You tell stories.' },
                   { role: 'user', content: 'Tell me a story.' }],
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.prompt_tokens > 0);
});

test('chat, streaming', { skip }, async () => {
    const stream = await client.chat.completions.create({
        model: 'q8', max_tokens: 8, temperature: 0, stream: true,
        messages: [{ role: 'user', content: 'Tell me a story.' }],
    });
    let text = '', role = null, finish = null, n = 0;
    for await (const chunk of stream) {
        n++;
        const d = chunk.choices[0]?.delta ?? {};
        if (d.role) role = d.role;
        if (d.content) text += d.content;
        if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
    }
    assert.equal(role, 'assistant');
    assert.ok(n >= 2);
    assert.ok(['stop', 'length'].includes(finish));
    const full = await client.chat.completions.create({
        model: 'q8', max_tokens: 8, temperature: 0,
        messages: [{ role: 'user', content: 'Tell me a story.' }],
    });
    assert.equal(text, full.choices[0].message.content);
});

test('errors surface as OpenAI APIError', { skip }, async () => {
    await assert.rejects(
        client.completions.create({ model: 'tiny', prompt: 'x', temperature: 9 }),
        (e) => e instanceof OpenAI.BadRequestError && e.status === 400
               && e.param === 'temperature');
    await assert.rejects(
        client.completions.create({ model: 'nope', prompt: 'x' }),
        (e) => e instanceof OpenAI.NotFoundError && e.status === 404);
});

test('n: 3, completions and chat, streaming and not', { skip }, async () => {
    const r = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 8,
        temperature: 1, seed: 3, n: 3,
    });
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    assert.equal(r.usage.completion_tokens, 24);
    // choice i is sampled with seed + i
    const one = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 8,
        temperature: 1, seed: 5,
    });
    assert.equal(r.choices[2].text, one.choices[0].text);

    const messages = [{ role: 'user', content: 'Tell me a story.' }];
    const full = await client.chat.completions.create({
        model: 'q8', max_tokens: 6, temperature: 0.9, seed: 8, n: 3, messages,
    });
    assert.equal(full.choices.length, 3);
    const stream = await client.chat.completions.create({
        model: 'q8', max_tokens: 6, temperature: 0.9, seed: 8, n: 3, messages,
        stream: true, stream_options: { include_usage: true },
    });
    const text = ['', '', ''];
    const finish = [null, null, null];
    let usage = null;
    for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            text[c.index] += c.delta?.content ?? '';
            if (c.finish_reason) finish[c.index] = c.finish_reason;
        }
    }
    assert.deepEqual(text, full.choices.map((c) => c.message.content));
    assert.ok(finish.every((f) => f === 'stop' || f === 'length'));
    assert.equal(usage.completion_tokens, full.usage.completion_tokens);
});

test('prompt batches and echo (with logprobs)', { skip }, async () => {
    const r = await client.completions.create({
        model: 'tiny', prompt: ['Once upon a time', 'The dog'], max_tokens: 4,
        temperature: 0, echo: true,
    });
    assert.equal(r.choices.length, 2);
    assert.ok(r.choices[0].text.startsWith('Once upon a time'));
    assert.ok(r.choices[1].text.startsWith('The dog'));
    // echo + logprobs: the prompt's tokens first, the first one null
    const lp = await client.completions.create({
        model: 'tiny', prompt: 'Once upon a time', max_tokens: 3,
        temperature: 0, echo: true, logprobs: 1,
    });
    const l = lp.choices[0].logprobs;
    const total = lp.usage.prompt_tokens + lp.usage.completion_tokens;
    assert.equal(l.tokens.length, total);
    assert.equal(l.token_logprobs[0], null);
    assert.equal(l.top_logprobs[0], null);
    assert.ok(l.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0));
    assert.equal(l.text_offset[0], 0);
    await assert.rejects(
        client.completions.create({ model: 'tiny', prompt: 'x', n: 2, best_of: 3 }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === 'best_of');
});

test('responses.create, non-streaming and streaming', { skip }, async () => {
    const r = await client.responses.create({
        model: 'tiny', input: 'Once upon a time', instructions: 'Tell a story.',
        max_output_tokens: 8, temperature: 0,
    });
    assert.equal(r.object, 'response');
    assert.equal(r.status, 'incomplete');
    assert.equal(r.incomplete_details.reason, 'max_output_tokens');
    assert.equal(r.output[0].type, 'message');
    assert.ok(r.output_text.length > 0);
    assert.equal(r.usage.output_tokens, 8);
    assert.equal(r.instructions, 'Tell a story.');

    const stream = await client.responses.create({
        model: 'tiny', input: 'Once upon a time', instructions: 'Tell a story.',
        max_output_tokens: 8, temperature: 0, stream: true,
    });
    const types = [];
    let text = '', final = null;
    for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === 'response.output_text.delta') text += ev.delta;
        if (ev.type === 'response.incomplete' || ev.type === 'response.completed') {
            final = ev.response;
        }
    }
    assert.equal(types[0], 'response.created');
    assert.ok(types.includes('response.output_text.done'));
    assert.equal(types.at(-1), 'response.incomplete');
    assert.equal(text, r.output_text);
    assert.equal(final.output[0].content[0].text, r.output_text);

    await assert.rejects(
        client.responses.create({ model: 'tiny', input: 'x',
                                  previous_response_id: 'resp_1' }),
        (e) => e instanceof OpenAI.BadRequestError
               && e.param === 'previous_response_id');
});

test('responses.create with text.format json_schema, streaming and not', { skip }, async () => {
    const format = {
        type: 'json_schema', name: 'pet', strict: true,
        schema: { type: 'object', additionalProperties: false, required: ['kind', 'age'],
                  properties: { kind: { enum: ['cat', 'dog'] },
                                age: { type: 'integer', minimum: 0, maximum: 30 } } },
    };
    const body = { model: 'tiny', input: 'A pet:', max_output_tokens: 200,
                   temperature: 1, seed: 4, text: { format } };
    const r = await client.responses.create(body);
    assert.equal(r.status, 'completed');
    assert.equal(r.text.format.type, 'json_schema');
    const v = JSON.parse(r.output_text);
    assert.deepEqual(Object.keys(v).sort(), ['age', 'kind']);
    assert.ok(['cat', 'dog'].includes(v.kind));
    assert.ok(Number.isInteger(v.age) && v.age >= 0 && v.age <= 30);

    const stream = await client.responses.create({ ...body, stream: true });
    let text = '', last = null;
    for await (const ev of stream) {
        if (ev.type === 'response.output_text.delta') text += ev.delta;
        last = ev;
    }
    assert.equal(last.type, 'response.completed');
    assert.equal(text, r.output_text);

    // json_object: a story model's strings run long; cut by the limit, the
    // text still opens the object
    const o = await client.responses.create({ ...body, text: { format: { type: 'json_object' } } });
    assert.equal(o.text.format.type, 'json_object');
    if (o.status === 'completed') {
        const p = JSON.parse(o.output_text);
        assert.ok(p !== null && typeof p === 'object' && !Array.isArray(p));
    } else {
        assert.equal(o.incomplete_details.reason, 'max_output_tokens');
        assert.match(o.output_text, /^\s?\{/);
    }
    await assert.rejects(
        client.responses.create({ ...body, text: { format: { type: 'json_schema', name: 'x' } } }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === 'text.format.schema');
});

test('tools: accepted, history with a call and its result', { skip }, async () => {
    const tools = [{ type: 'function', function: {
        name: 'get_weather', description: 'Weather of a city',
        parameters: { type: 'object', properties: { city: { type: 'string' } },
                      required: ['city'] } } }];
    const r = await client.chat.completions.create({
        model: 'q8', max_tokens: 6, temperature: 0, tools,
        messages: [
            { role: 'user', content: 'Weather in Paris?' },
            { role: 'assistant', content: null, tool_calls: [{
                id: 'call_1', type: 'function',
                function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
            { role: 'tool', tool_call_id: 'call_1', content: '22C' },
        ],
    });
    // these tiny story models write no calls: content, not tool_calls
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
    await assert.rejects(
        client.chat.completions.create({ model: 'q8', tools,
            tool_choice: { type: 'function', function: { name: 'nope' } },
            messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice');
});

test('tools: a named tool_choice, the stream reassembled by the client', { skip }, async () => {
    const tools = [{ type: 'function', function: {
        name: 'get_weather',
        parameters: { type: 'object', additionalProperties: false, required: ['city'],
                      properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } } } } }];
    const body = {
        model: "tiny", max_tokens: 400, temperature: 1, seed: 2, tools,
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        messages: [{ role: 'user', content: 'Weather in Paris?' }],
    };
    const full = await client.chat.completions.create(body);
    const call = full.choices[0].message.tool_calls[0];
    assert.equal(full.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.ok(['Paris', 'Rome'].includes(JSON.parse(call.function.arguments).city));

    // the SDK's stream helper accumulates tool_calls deltas
    const stream = client.chat.completions.stream(body);
    const done = await stream.finalChatCompletion();
    const scall = done.choices[0].message.tool_calls[0];
    assert.equal(done.choices[0].finish_reason, 'tool_calls');
    assert.match(scall.id, /^call_/);
    assert.equal(scall.function.name, 'get_weather');
    assert.equal(scall.function.arguments, call.function.arguments);
});

test('embeddings.create: float, base64 and the SDK default agree', { skip }, async () => {
    const input = ['Once upon a time', 'The cat sat on the mat'];
    const fl = await client.embeddings.create({ model: 'tiny', input,
                                                encoding_format: 'float' });
    assert.equal(fl.object, 'list');
    assert.equal(fl.model, 'tiny');
    assert.equal(fl.data.length, 2);
    assert.deepEqual(fl.data.map((d) => d.index), [0, 1]);
    assert.equal(fl.data[0].object, 'embedding');
    assert.equal(fl.data[0].embedding.length, 64);
    const n2 = fl.data[0].embedding.reduce((s, x) => s + x * x, 0);
    assert.ok(Math.abs(n2 - 1) < 1e-5, `unit length (${n2})`);
    assert.ok(fl.usage.prompt_tokens > 0);
    assert.equal(fl.usage.total_tokens, fl.usage.prompt_tokens);

    // base64 asked for explicitly: the SDK hands the string over as is
    const b64 = await client.embeddings.create({ model: 'tiny', input,
                                                 encoding_format: 'base64' });
    for (let i = 0; i < 2; i++) {
        const buf = Buffer.from(b64.data[i].embedding, 'base64');
        const f32 = Array.from(new Float32Array(buf.buffer, buf.byteOffset,
                                                buf.length / 4));
        assert.deepEqual(f32, fl.data[i].embedding.map(Math.fround),
                         `input ${i}: base64 bytes == float values`);
    }

    // no encoding_format: this SDK asks for base64 and decodes it itself
    const dflt = await client.embeddings.create({ model: 'tiny', input: input[0] });
    assert.deepEqual(Array.from(dflt.data[0].embedding),
                     fl.data[0].embedding.map(Math.fround));

    await assert.rejects(
        client.embeddings.create({ model: 'tiny', input: 'x', dimensions: 8 }),
        (e) => e instanceof OpenAI.BadRequestError && e.param === 'dimensions');
    await assert.rejects(
        client.embeddings.create({ model: 'tiny', input: '' }),
        (e) => e instanceof OpenAI.BadRequestError);
});

test('tools in the Llama 3 and Mistral v3 formats, streamed and not', { skip }, async () => {
    const tools = [{ type: 'function', function: {
        name: 'get_weather',
        parameters: { type: 'object', additionalProperties: false, required: ['city'],
                      properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } } } } }];
    for (const model of ['l3', 'mi']) {
        const body = {
            model, max_tokens: 200, temperature: 1, seed: 5, tools,
            tool_choice: { type: 'function', function: { name: 'get_weather' } },
            messages: [{ role: 'user', content: 'Weather in Paris?' }],
        };
        const full = await client.chat.completions.create(body);
        const call = full.choices[0].message.tool_calls[0];
        assert.equal(full.choices[0].finish_reason, 'tool_calls', model);
        assert.equal(call.function.name, 'get_weather');
        assert.ok(['Paris', 'Rome'].includes(JSON.parse(call.function.arguments).city));
        const done = await client.chat.completions.stream(body).finalChatCompletion();
        assert.equal(done.choices[0].message.tool_calls[0].function.arguments,
                     call.function.arguments, model);
    }
});
