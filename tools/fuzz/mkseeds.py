#!/usr/bin/env python3
"""Writes the checked-in seed GGUFs of tools/fuzz/corpus_model and
corpus_gguf: tiny llama / qwen2 models (F32, 1 layer, n_embd 8, vocab 8)
with SPM / BPE tokenizer metadata and a chat template, a few KB each.
Run from the repository root: python3 tools/fuzz/mkseeds.py"""
import os
import struct

U32, I32, F32, BOOL, STR, ARR = 4, 5, 6, 7, 8, 9


def s(x):
    b = x.encode()
    return struct.pack('<Q', len(b)) + b


def kv(key, typ, val):
    out = s(key) + struct.pack('<I', typ)
    if typ == U32:
        out += struct.pack('<I', val)
    elif typ == I32:
        out += struct.pack('<i', val)
    elif typ == F32:
        out += struct.pack('<f', val)
    elif typ == BOOL:
        out += struct.pack('<B', val)
    elif typ == STR:
        out += s(val)
    elif typ == ARR:
        et, items = val
        out += struct.pack('<IQ', et, len(items))
        for it in items:
            if et == STR:
                out += s(it)
            elif et == F32:
                out += struct.pack('<f', it)
            elif et == I32:
                out += struct.pack('<i', it)
    return out


def gguf(kvs, tensors, align=32):
    hdr = b'GGUF' + struct.pack('<IQQ', 3, len(tensors), len(kvs))
    body = b''.join(kv(*k) for k in kvs)
    info = b''
    data = b''
    for name, ne in tensors:
        n = 1
        for d in ne:
            n *= d
        off = len(data)
        info += s(name) + struct.pack('<I', len(ne)) \
            + b''.join(struct.pack('<Q', d) for d in ne) \
            + struct.pack('<IQ', 0, off)
        data += b''.join(struct.pack('<f', 0.01 * ((i * 7) % 13 - 6))
                         for i in range(n))
        data += b'\0' * (-len(data) % align)
    head = hdr + body + info
    head += b'\0' * (-len(head) % align)
    return head + data


def model(arch, tok, tmpl, bias, tied):
    E, H, HKV, FF, V = 8, 2, 1, 8, 8
    hd = E // H
    kvs = [('general.architecture', STR, arch),
           ('general.file_type', U32, 0),
           (arch + '.context_length', U32, 64),
           (arch + '.embedding_length', U32, E),
           (arch + '.block_count', U32, 1),
           (arch + '.feed_forward_length', U32, FF),
           (arch + '.attention.head_count', U32, H),
           (arch + '.attention.head_count_kv', U32, HKV),
           (arch + '.rope.freq_base', F32, 10000.0),
           (arch + '.attention.layer_norm_rms_epsilon', F32, 1e-5)]
    if tok == 'spm':
        toks = ['<unk>', '<s>', '</s>', '<0x41>', '\u2581a', 'b', '\u2581', 'ab']
        kvs += [('tokenizer.ggml.model', STR, 'llama'),
                ('tokenizer.ggml.tokens', ARR, (STR, toks)),
                ('tokenizer.ggml.scores', ARR, (F32, [0, 0, 0, 0, -1, -2, -3, -0.5])),
                ('tokenizer.ggml.token_type', ARR, (I32, [2, 3, 3, 6, 1, 1, 1, 1])),
                ('tokenizer.ggml.bos_token_id', U32, 1),
                ('tokenizer.ggml.eos_token_id', U32, 2)]
    else:
        toks = ['a', 'b', '\u0120', 'ab', '\u0120a', '<|im_start|>', '<|im_end|>', '!']
        kvs += [('tokenizer.ggml.model', STR, 'gpt2'),
                ('tokenizer.ggml.pre', STR, 'qwen2'),
                ('tokenizer.ggml.tokens', ARR, (STR, toks)),
                ('tokenizer.ggml.token_type', ARR, (I32, [1, 1, 1, 1, 1, 3, 3, 1])),
                ('tokenizer.ggml.merges', ARR, (STR, ['a b', '\u0120 a'])),
                ('tokenizer.ggml.eos_token_id', U32, 6),
                ('tokenizer.ggml.add_bos_token', BOOL, 0)]
    kvs.append(('tokenizer.chat_template', STR, tmpl))
    t = [('token_embd.weight', [E, V]), ('output_norm.weight', [E])]
    if not tied:
        t.append(('output.weight', [E, V]))
    t += [('blk.0.attn_norm.weight', [E]),
          ('blk.0.attn_q.weight', [E, H * hd]),
          ('blk.0.attn_k.weight', [E, HKV * hd]),
          ('blk.0.attn_v.weight', [E, HKV * hd]),
          ('blk.0.attn_output.weight', [H * hd, E])]
    if bias:
        t += [('blk.0.attn_q.bias', [H * hd]), ('blk.0.attn_k.bias', [HKV * hd]),
              ('blk.0.attn_v.bias', [HKV * hd])]
    t += [('blk.0.ffn_norm.weight', [E]),
          ('blk.0.ffn_gate.weight', [E, FF]),
          ('blk.0.ffn_up.weight', [E, FF]),
          ('blk.0.ffn_down.weight', [FF, E])]
    return gguf(kvs, t)


seeds = {
    'llama_spm.gguf': model('llama', 'spm',
                            "{{ bos_token }}[INST] {{ m['content'] }} [/INST]",
                            False, True),
    'qwen2_bpe.gguf': model('qwen2', 'bpe',
                            "{% for m in messages %}<|im_start|>{{ m.role }}\n"
                            "{{ m.content }}<|im_end|>\n{% endfor %}", True, False),
}
for d in ('tools/fuzz/corpus_model', 'tools/fuzz/corpus_gguf'):
    os.makedirs(d, exist_ok=True)
    for name, blob in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(blob)
