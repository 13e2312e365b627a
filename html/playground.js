// Starling playground: streams /v1/chat/completions or /v1/completions
// (raw mode) with fetch and parses the server-sent events itself; Stop
// aborts the fetch, and the server cancels the sequence on disconnect.
'use strict';

const $ = (id) => document.getElementById(id);
const ui = {
  model: $('model'), system: $('system'), temperature: $('temperature'),
  top_p: $('top_p'), max_tokens: $('max_tokens'), seed: $('seed'),
  ignore_eos: $('ignore_eos'), transcript: $('transcript'), error: $('error'),
  form: $('composer'), prompt: $('prompt'), send: $('send'), stop: $('stop'),
  clear: $('clear'),
  stat: {
    ttft: $('stat-ttft'), tps: $('stat-tps'), tokens: $('stat-tokens'),
    cached: $('stat-cached'), finish: $('stat-finish'),
  },
};

const history = [];   // chat turns sent with the next request
let controller = null;

function mode() {
  return document.querySelector('input[name=mode]:checked').value;
}

// the OpenAI error object's message, or the worker API's error list
function errorText(j, res) {
  if (j && j.error && j.error.message) return j.error.message;
  if (j && Array.isArray(j.errors)) return j.errors.map((e) => e.message).join('; ');
  return res ? `HTTP ${res.status} ${res.statusText}` : 'request failed';
}

function showError(msg) {
  ui.error.textContent = msg;
  ui.error.hidden = !msg;
}

async function loadModels() {
  try {
    const res = await fetch('/v1/models');
    const j = await res.json().catch(() => null);
    if (!res.ok || !j) throw new Error(errorText(j, res));
    ui.model.replaceChildren(...j.data.map((m) => new Option(m.id, m.id)));
  } catch (e) {
    ui.model.replaceChildren(new Option('(default)', ''));
    showError(`/v1/models: ${e.message}`);
  }
}

function number(input, parse) {
  const v = input.value.trim();
  if (v === '') return undefined;
  const n = parse(v);
  return Number.isFinite(n) ? n : undefined;
}

function requestBody(text) {
  const body = {
    stream: true,
    stream_options: { include_usage: true },
    temperature: number(ui.temperature, parseFloat),
    top_p: number(ui.top_p, parseFloat),
    max_tokens: number(ui.max_tokens, (v) => parseInt(v, 10)),
    seed: number(ui.seed, (v) => parseInt(v, 10)),
  };
  if (ui.model.value) body.model = ui.model.value;
  if (ui.ignore_eos.checked) body.ignore_eos = true;
  if (mode() === 'raw') {
    body.prompt = text;
  } else {
    const sys = ui.system.value.trim();
    body.messages = [...(sys ? [{ role: 'system', content: sys }] : []),
                     ...history, { role: 'user', content: text }];
  }
  return body;
}

function bubble(role, text) {
  const el = document.createElement('div');
  el.className = `msg ${role}`;
  el.dataset.role = role;
  if (text) el.append(text);
  ui.transcript.append(el);
  return el;
}

function setStats(s) {
  for (const k of Object.keys(ui.stat)) {
    if (k in s) ui.stat[k].textContent = s[k];
  }
}

function setBusy(busy) {
  document.body.dataset.state = busy ? 'streaming' : 'idle';
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
}

// yields the JSON payload of every `data:` line until [DONE]
async function* sse(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return;
      yield JSON.parse(data);
    }
  }
}

async function send() {
  const text = ui.prompt.value;
  if (controller || !text.trim()) return;
  const raw = mode() === 'raw';
  const body = requestBody(text);
  const url = raw ? '/v1/completions' : '/v1/chat/completions';

  showError('');
  setStats({ ttft: '…', tps: '…', tokens: '0', cached: '…', finish: '…' });
  const userEl = raw ? null : bubble('user', text);
  $('output')?.removeAttribute('id');
  const out = bubble('assistant');
  out.id = 'output';   // the reply being streamed
  if (raw) {
    out.dataset.role = 'completion';
    const p = document.createElement('span');
    p.className = 'prompt';
    p.textContent = text;
    out.append(p);
  }
  const gen = document.createTextNode('');
  out.append(gen);
  out.classList.add('streaming');
  ui.prompt.value = '';

  controller = new AbortController();
  setBusy(true);
  const t0 = performance.now();
  let tFirst = 0, tLast = 0, n = 0, finish = null, usage = null, frame = 0;
  // keep the newest text in view unless the reader scrolled up
  let follow = true;
  const onScroll = () => {
    const t = ui.transcript;
    follow = t.scrollHeight - t.scrollTop - t.clientHeight < 40;
  };
  ui.transcript.addEventListener('scroll', onScroll, { passive: true });
  ui.transcript.scrollTop = ui.transcript.scrollHeight;

  const render = () => {
    frame = 0;
    const s = { tokens: String(usage ? usage.completion_tokens : n) };
    if (tFirst) s.ttft = `${Math.round(tFirst - t0)} ms`;
    const count = usage ? usage.completion_tokens : n;
    if (count > 1 && tLast > tFirst) s.tps = ((count - 1) * 1000 / (tLast - tFirst)).toFixed(1);
    if (usage) s.cached = String(usage.prompt_tokens_details?.cached_tokens ?? 0);
    else if (finish === 'stopped') s.cached = '–';   // usage comes last: none
    if (finish) s.finish = finish;
    setStats(s);
    if (follow) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  };

  try {
    const res = await fetch(url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!res.ok) {
      const j = await res.json().catch(() => null);
      throw new Error(errorText(j, res));
    }
    for await (const chunk of sse(res)) {
      if (chunk.error) throw new Error(errorText(chunk));
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices && chunk.choices[0];
      if (c) {
        const piece = raw ? c.text : c.delta && c.delta.content;
        if (piece) {
          tLast = performance.now();
          if (!tFirst) tFirst = tLast;
          n++;
          gen.appendData(piece);
        }
        if (c.finish_reason) finish = c.finish_reason;
      }
      if (!frame) frame = requestAnimationFrame(render);
    }
    render();
    if (!raw) history.push({ role: 'user', content: text },
                           { role: 'assistant', content: gen.data });
  } catch (e) {
    if (e.name === 'AbortError') {
      finish = 'stopped';
      render();
      if (!raw) history.push({ role: 'user', content: text },
                             { role: 'assistant', content: gen.data });
    } else {
      // nothing was generated: take the turn back, keep the text to edit
      if (userEl) userEl.remove();
      out.remove();
      if (!ui.prompt.value) ui.prompt.value = text;
      setStats({ finish: 'error', tps: '–', tokens: '–', cached: '–', ttft: '–' });
      showError(e.message);
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    ui.transcript.removeEventListener('scroll', onScroll);
    out.classList.remove('streaming');
    controller = null;
    setBusy(false);
  }
}

function stop() {
  if (controller) controller.abort();
}

ui.form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && controller) {
    e.preventDefault();
    stop();
  }
});
ui.stop.addEventListener('click', stop);
ui.clear.addEventListener('click', () => {
  stop();
  history.length = 0;
  ui.transcript.replaceChildren();
  showError('');
  setStats({ ttft: '–', tps: '–', tokens: '–', cached: '–', finish: '–' });
  ui.prompt.focus();
});
for (const r of document.querySelectorAll('input[name=mode]')) {
  r.addEventListener('change', () => {
    document.body.classList.toggle('raw', mode() === 'raw');
  });
}

setBusy(false);
loadModels();
ui.prompt.focus();
