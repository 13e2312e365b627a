// The playground (html/) in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) against the real module. nginx runs the
// configuration `make run` serves (conf/starling.conf.in) on a free
// loopback port under a temporary prefix, with a longer context so that a
// stream is still running when the test presses Stop. Screenshots go to
// build/browser/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, chmodSync, readFileSync,
         existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(process.env.ST_ROOT ?? join(here, '..', '..'));
const nginx = process.env.NGINX_BIN ?? '/usr/sbin/nginx';
const module = process.env.STARLING_MODULE
    ?? join(root, 'build/nginx/ngx_http_starling_module.so');
const chromiumBin = process.env.CHROMIUM ?? '/usr/bin/chromium';
const shots = join(root, 'build/browser');

let chromium = null;
try {
    ({ chromium } = await import('playwright-core'));
} catch { /* node_modules missing: skipped below */ }

const skip = !existsSync(nginx) ? `no nginx at ${nginx}`
    : !existsSync(module) ? `module not built (make module): ${module}`
    : !existsSync(chromiumBin) ? `no chromium at ${chromiumBin}`
    : !chromium ? 'playwright-core missing (cd t/browser && npm ci)'
    : false;

const MAX_PROMPT_TOKENS = 256;
let prefix, port, base, browser, page;
const requests = [], pageErrors = [];

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

// conf/starling.conf.in as `make run` fills it in, with these lines changed
function conf() {
    let text = readFileSync(join(root, 'conf/starling.conf.in'), 'utf8');
    const edits = [
        ['error_log stderr info;', `error_log ${prefix}/logs/error.log info;`],
        ['access_log /dev/stdout starling;',
         `access_log ${prefix}/logs/access.log starling;`],
        ['listen 127.0.0.1:8080;', `listen 127.0.0.1:${port};`],
        // a long context: a stream of thousands of tokens takes seconds
        ['max_seqs=8;', 'max_seqs=2 ctx=8192;'],
        ['starling_max_tokens 2048;',
         `starling_max_tokens 8000; starling_max_prompt_tokens ${MAX_PROMPT_TOKENS};`],
    ];
    for (const [from, to] of edits) {
        assert.ok(text.includes(from), `conf/starling.conf.in has "${from}"`);
        text = text.replace(from, to);
    }
    return text.replaceAll('@MODULE@', module)
        .replaceAll('@MODEL@', join(root, 'models/stories260K.gguf'))
        .replaceAll('@PREFIX@', prefix)
        .replaceAll('@HTML@', join(root, 'html'));
}

async function health() {
    const r = await fetch(`${base}/health`);
    return r.json();
}

// polls fn() until it returns a truthy value (a deadline, not a timing assert)
async function until(what, fn, ms = 20000) {
    const end = Date.now() + ms;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

const idle = () => page.waitForSelector('body[data-state=idle]');
const outputText = () => page.$eval('#output', (e) => e.textContent).catch(() => '');

async function settings(s) {
    if (!(await page.$eval('#settings', (d) => d.open))) await page.click('#settings summary');
    for (const [k, v] of Object.entries(s)) {
        if (typeof v === 'boolean') await page.setChecked(`#${k}`, v);
        else await page.fill(`#${k}`, String(v));
    }
}

async function sendWithEnter(text) {
    await page.fill('#prompt', text);
    await page.focus('#prompt');
    await page.keyboard.press('Enter');
}

before(async () => {
    if (skip) return;
    prefix = mkdtempSync(join(tmpdir(), 'starling-browser-'));
    chmodSync(prefix, 0o755);
    mkdirSync(join(prefix, 'logs'));
    mkdirSync(shots, { recursive: true });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeFileSync(join(prefix, 'nginx.conf'), conf());
    execFileSync(nginx, nginxArgs());
    await until('/ready', async () => {
        try { return (await fetch(`${base}/ready`)).status === 200; } catch { return false; }
    });
    browser = await chromium.launch({ executablePath: chromiumBin });
    page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
        // Chromium logs the over-long prompt's expected 400 as an error
        if (m.type() === 'error' && !/status of 400/.test(m.text())) pageErrors.push(m.text());
    });
});

after(async () => {
    if (skip || !prefix) return;
    if (browser) await browser.close();
    try { execFileSync(nginx, nginxArgs('-s', 'quit')); } catch { /* gone */ }
    const log = readFileSync(join(prefix, 'logs/error.log'), 'utf8');
    assert.doesNotMatch(log, /\[(alert|emerg|crit)\]/, 'clean error.log');
    if (!process.env.ST_KEEP) rmSync(prefix, { recursive: true, force: true });
});

test('the page loads from nginx and lists the models', { skip }, async () => {
    const res = await page.goto(`${base}/`);   // 302 to /playground/
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).pathname, '/playground/');
    await page.waitForSelector('#model option[value=tiny]', { state: 'attached' });
    assert.equal(await page.$eval('#model', (s) => s.value), 'tiny');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'prompt');
    // every control has a label (keyboard and screen-reader use)
    const unlabelled = await page.$$eval('input, select, textarea',
        (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id || e.name));
    assert.deepEqual(unlabelled, []);
    assert.equal(await page.$eval('#stop', (b) => b.disabled), true);
});

test('a chat reply streams; usage gives TTFT, tokens/s and cached tokens', { skip }, async () => {
    const system = 'You are a storyteller. You tell short, happy stories about '
        + 'a little girl called Lily and her dog, who live in a small house by the sea.';
    await settings({ system, temperature: 0, max_tokens: 24, seed: 7 });
    for (const round of [1, 2]) {
        await page.click('#clear');
        await sendWithEnter('Tell me a story.');
        await idle();
        assert.equal(await page.$eval('#error', (e) => e.hidden), true);
        const text = await outputText();
        assert.ok(text.length > 0, 'reply text');
        assert.match(await page.textContent('#stat-finish'), /^(stop|length)$/);
        assert.match(await page.textContent('#stat-ttft'), /^\d+ ms$/);
        assert.match(await page.textContent('#stat-tokens'), /^\d+$/);
        const cached = Number(await page.textContent('#stat-cached'));
        assert.ok(Number.isInteger(cached), 'cached count shown');
        // the second request reuses the system prompt's KV blocks
        if (round === 2) assert.ok(cached > 0, `cached tokens on the repeat: ${cached}`);
    }
    assert.match(await page.textContent('#stat-tps'), /^\d+(\.\d)?$/);
    assert.equal(await page.$$eval('.msg.user', (m) => m.length), 1);
});

test('tokens arrive incrementally; Escape stops and /health frees the sequence', { skip }, async () => {
    await page.click('#clear');
    await settings({ system: '', temperature: 0.8, max_tokens: 8000, seed: '', ignore_eos: true });
    await sendWithEnter('Once upon a time');
    // the reply grows over several observations while the stream runs
    const lengths = [];
    await until('the reply to grow', async () => {
        const streaming = await page.$('body[data-state=streaming]');
        assert.ok(streaming, 'still streaming while the reply grows');
        const n = (await outputText()).length;
        if (n > 0 && n !== lengths.at(-1)) lengths.push(n);
        return lengths.length >= 4;
    }, 30000);
    for (let i = 1; i < lengths.length; i++) assert.ok(lengths[i] > lengths[i - 1]);
    const h = await health();
    assert.ok(h.active_sequences + h.queued_sequences >= 1, 'a sequence runs on the server');
    assert.equal(await page.$eval('#stop', (b) => b.disabled), false);

    await page.keyboard.press('Escape');
    await idle();
    assert.equal(await page.textContent('#stat-finish'), 'stopped');
    assert.equal(await page.$eval('#error', (e) => e.hidden), true);
    const stopped = await until('/health idle', async () => {
        const x = await health();
        return x.active_sequences === 0 && x.queued_sequences === 0
            && x.live_requests === 0 && x;
    });
    assert.equal(stopped.kv_blocks_free, stopped.kv_blocks_total);
    const n = (await outputText()).length;
    await page.waitForTimeout(300);
    assert.equal((await outputText()).length, n, 'nothing arrives after Stop');
    await page.screenshot({ path: join(shots, 'playground.png') });
    const access = readFileSync(join(prefix, 'logs/access.log'), 'utf8');
    assert.match(access, /"POST \/v1\/chat\/completions HTTP\/1.1" 499 /,
                 'the server saw the disconnect (499)');
});

test('an over-long prompt shows the OpenAI error message', { skip }, async () => {
    await page.click('#clear');
    await settings({ ignore_eos: false, max_tokens: 16 });
    const long = 'Once upon a time there was a little dog. '.repeat(60);
    await sendWithEnter(long);
    await idle();
    await page.waitForSelector('#error:not([hidden])');
    const msg = await page.textContent('#error');
    assert.match(msg, new RegExp(`^the prompt is \\d+ tokens; .*limit for prompts: ${MAX_PROMPT_TOKENS}\\)`));
    assert.equal(await page.$$eval('.msg', (m) => m.length), 0, 'the turn is taken back');
    assert.equal(await page.inputValue('#prompt'), long, 'the text is kept to edit');
    assert.equal(await page.textContent('#stat-finish'), 'error');
});

test('raw completion mode streams what /v1/completions returns', { skip }, async () => {
    await page.click('#clear');
    await page.fill('#prompt', '');
    await page.check('input[name=mode][value=raw]');
    assert.equal(await page.isVisible('#system'), false, 'no system prompt in raw mode');
    await settings({ temperature: 0, max_tokens: 20, seed: 1 });
    await sendWithEnter('Once upon a time');
    await idle();
    const shown = await outputText();
    const r = await fetch(`${base}/v1/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 20,
                               temperature: 0, top_p: 0.95, seed: 1 }),
    });
    const j = await r.json();
    assert.equal(shown, 'Once upon a time' + j.choices[0].text);
    assert.equal(await page.textContent('#stat-tokens'), String(j.usage.completion_tokens));
    await page.check('input[name=mode][value=chat]');
});

test('on a phone screen: no horizontal scrolling, a reply streams', { skip }, async () => {
    const ctx = await browser.newContext({
        viewport: { width: 390, height: 844 }, deviceScaleFactor: 2,
        isMobile: true, hasTouch: true,
    });
    const phone = await ctx.newPage();
    phone.on('request', (r) => requests.push(r.url()));
    await phone.goto(`${base}/playground/`);
    await phone.waitForSelector('#model option[value=tiny]', { state: 'attached' });
    await phone.fill('#prompt', 'Tell me a story about a cat.');
    await phone.tap('#send');
    await phone.waitForSelector('body[data-state=idle] #output');
    assert.ok((await phone.textContent('#output')).length > 0);
    const [sw, iw] = await phone.evaluate(() =>
        [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(sw <= iw, `page fits the phone's width (${sw} <= ${iw})`);
    await phone.screenshot({ path: join(shots, 'playground-phone.png'), fullPage: true });
    await ctx.close();
});

test('no external resource, no script error', { skip }, () => {
    assert.ok(requests.length > 0);
    const foreign = requests.filter((u) => !u.startsWith(base + '/'));
    assert.deepEqual(foreign, []);
    assert.deepEqual(pageErrors, []);
});
