#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into OUT/NAME/ from the shared data (never committed).

Usage: fuzz/seeds.py SHARED_DIR OUT_DIR. One function per target, named seeds_NAME(shared, out):
each writes small, real inputs of its target's format (real GGUF headers and models, vocabularies,
MT-Bench lines, HTTP request bodies) so that fuzzing starts from the formats' real shapes.
"""
import json
import os
import struct
import subprocess
import sys

# The build tree's fuzz_seed_writer (fuzz/seed_writer.cc), set by main() from OUT_DIR
# (build/fuzz/seeds -> build/fuzz/fuzz/fuzz_seed_writer).
SEED_WRITER = None


def seeds_gguf(shared, out):
    # The real model whole (its tensors included: the parser checks every tensor's extent).
    with open(os.path.join(shared, "models/stories260K/stories260K.gguf"), "rb") as f:
        data = f.read()
    write(out, "stories260K.gguf", data)


# The tokenizer targets' inputs: a mode byte (the vocabulary's index in the target's list; bit 7:
# the payload is token ids, 4 bytes little endian, else text) and the payload.
SPM_VOCABS = ["llama-spm", "phi-3"]
BPE_VOCABS = ["llama-bpe", "qwen2", "gpt-2", "deepseek-llm", "deepseek-coder", "starcoder",
              "falcon", "qwen35", "gpt-neox"]
SPECIAL_TEXTS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>",
                 "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>",
                 "<start_of_turn>user\nhi<end_of_turn>", "<|turn>user\nhi<turn|>", "<bos>",
                 "<|user|>\nhi<|end|>\n<|assistant|>", "[INST] hi [/INST]", "<pad><mask>"]


def vocab_cases(shared, name):
    """The llama.cpp test cases of ggml-vocab-NAME.gguf: texts and their ids (if any)."""
    path = os.path.join(shared, "data/vocab/ggml-vocab-%s.gguf" % name)
    if not os.path.exists(path + ".inp"):
        return [], []
    with open(path + ".inp", "rb") as f:
        texts = f.read().split(b"\n__ggml_vocab_test__\n")
    with open(path + ".out") as f:
        ids = [[int(t) for t in line.split()] for line in f]
    return texts, ids


def text_chunks(shared, size=512, count=6):
    """A few KB of the shared texts, cut at line ends."""
    out = []
    for name in ["tinystories_val_head.txt", "gutenberg_pg1342.txt", "gutenberg_pg98.txt"]:
        with open(os.path.join(shared, "data/text", name), "rb") as f:
            data = f.read(size * count * 4)
        for i in range(count):
            chunk = data[i * size * 3:i * size * 3 + size]
            out.append(chunk[:chunk.rfind(b"\n") + 1] or chunk)
    return out


def tokenizer_seeds(shared, out, vocabs):
    chunks = text_chunks(shared)
    for index, name in enumerate(vocabs):
        texts, ids = vocab_cases(shared, name)
        for i, text in enumerate(texts):
            write(out, "%s-case%03d" % (name, i), bytes([index]) + text)
        for i, line in enumerate(ids):
            payload = b"".join(struct.pack("<I", t) for t in line)
            write(out, "%s-ids%03d" % (name, i), bytes([0x80 | index]) + payload)
        for i, chunk in enumerate(chunks[index::len(vocabs)] if len(vocabs) > 1 else chunks):
            write(out, "%s-text%02d" % (name, i), bytes([index]) + chunk)
        for i, special in enumerate(SPECIAL_TEXTS):
            write(out, "%s-special%02d" % (name, i), bytes([index]) + special.encode())


def seeds_tokenizer_spm(shared, out):
    tokenizer_seeds(shared, out, SPM_VOCABS)


def seeds_tokenizer_bpe(shared, out):
    tokenizer_seeds(shared, out, BPE_VOCABS)


def seeds_tokenizer_gemma4(shared, out):
    tokenizer_seeds(shared, out, ["gemma-4"])


def seeds_chat_template(shared, out):
    # [template byte][flags byte] jinja \0 role+content \0 ... (chat_template_fuzz.cc).
    convo = [b"\x00You are a helpful assistant.", b"\x01Hello!", b"\x02Hi, how can I help?",
             b"\x01What is 2+2? <|im_end|><s>[INST]", b"\x02It is 4.", b"\x01Thanks! \xff\xfe"]
    jinjas = [b"", b"{% for m in messages %}<|im_start|>{{ m.role }}",
              b"<|start_header_id|>user<|end_header_id|>", b"[INST] <<SYS>>", b"<|turn>user<turn|>",
              b"<start_of_turn>", b"<|user|><|assistant|><|end|>", b"USER: ASSISTANT:",
              b"[INST][SYSTEM_PROMPT]", b"\"[INST]\" [AVAILABLE_TOOLS]", b"chatml"]
    for i in range(16):
        write(out, "template%02d" % i, bytes([i, 4]) + b"\x00" + b"\x00".join(convo))
        write(out, "template%02d-nogen" % i, bytes([i, 1]) + b"\x00" + b"\x00".join(convo[:4]))
    for i, jinja in enumerate(jinjas):
        write(out, "jinja%02d" % i, bytes([0x80, i & 7]) + jinja + b"\x00" + b"\x00".join(convo[1:4]))


def seeds_prompt_file(shared, out):
    with open(os.path.join(shared, "data/chat/mt_bench_questions.jsonl"), "rb") as f:
        lines = f.read().splitlines(keepends=True)
    for i, line in enumerate(lines[:40]):
        write(out, "line%03d" % i, line)
    write(out, "three-lines", b"".join(lines[:3]))
    write(out, "blank-lines", b"\n \r\n" + lines[0] + b"\t\n")


def seeds_server_request(shared, out):
    # [flags byte: bit 0 completion, bit 1 small limits] body (server_request_fuzz.cc). The shapes
    # of tests/server_test.cc's requests.
    chat = [
        {"messages": [{"role": "user", "content": "Hello"}]},
        {"model": "stories260K", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Once upon a time"}],
         "stream": True, "max_tokens": 16, "temperature": 0, "seed": 7},
        {"messages": [{"role": "user", "content": "x"}], "session_id": "abc-123_X",
         "stop": ["\n", "The end"], "top_p": 0.9, "top_k": 40, "min_p": 0.05,
         "repeat_penalty": 1.1, "repeat_last_n": 64},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                   {"type": "text", "text": "b"}]},
                      {"role": "assistant", "content": None},
                      {"role": "developer", "content": "c"}],
         "max_completion_tokens": 5, "n": 1, "frequency_penalty": 0, "presence_penalty": 0},
        {"messages": [{"role": "user", "content": "a\u00e9b <|im_end|>"}], "stop": "x",
         "seed": -1, "stream": False},
    ]
    completion = [
        {"prompt": "Once upon a time", "max_tokens": 8},
        {"prompt": ["Lily"], "stream": True, "ignore_eos": True, "temperature": 1.5, "seed": 42,
         "stop": ["."]},
    ]
    for i, body in enumerate(chat):
        write(out, "chat%02d" % i, b"\x00" + json.dumps(body).encode())
    for i, body in enumerate(completion):
        write(out, "completion%02d" % i, b"\x01" + json.dumps(body).encode())
    # Values at the ranges' edges (a double that is 0 as a float: api_json_test).
    write(out, "edges", b"\x00" + json.dumps({
        "messages": [{"role": "user", "content": "x"}], "top_p": 1e-50, "repeat_penalty": 1.5e-45,
        "min_p": 1, "temperature": 1000, "max_tokens": 16384, "top_k": 2147483647,
        "repeat_last_n": 1048576, "seed": 18446744073709551615}).encode())
    write(out, "bad-utf8", b"\x00{\"messages\": [{\"role\": \"user\", \"content\": \"a\xff\"}]}")
    write(out, "surrogate", b"\x00{\"messages\": [{\"role\": \"user\", \"content\": \"\\udc00\"}]}")


def seed_writer(kind, shared, out):
    """Runs fuzz_seed_writer KIND into OUT; False (with a note) when it is not built."""
    if SEED_WRITER is None or not os.path.exists(SEED_WRITER):
        print(f"seeds.py: no {SEED_WRITER}: no {kind} seeds (build the fuzz preset first)")
        return False
    os.makedirs(out, exist_ok=True)
    subprocess.run([SEED_WRITER, kind, shared, out], check=True,
                   env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    return True


def seeds_model(shared, out):
    # stories260K whole, and tiny random-weight models of every make-model architecture.
    with open(os.path.join(shared, "models/stories260K/stories260K.gguf"), "rb") as f:
        write(out, "stories260K.gguf", f.read())
    seed_writer("models", shared, out)


def llama2c_input(checkpoint, tokenizer):
    """The llama2c target's input: u32 checkpoint length, the checkpoint, the tokenizer."""
    return struct.pack("<I", len(checkpoint)) + checkpoint + tokenizer


def tiny_llama2c(dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len, shared_cls=True):
    """A llama2.c checkpoint of the given header with small deterministic weights, and a
    tokenizer of `vocab` tokens (<unk>, <s>, </s>, byte tokens, words)."""
    head = dim // n_heads
    kv_dim = n_kv_heads * head
    n = (vocab * dim + n_layers * (dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim
                                   + 3 * hidden * dim) + dim + seq_len * head
         + (0 if shared_cls else vocab * dim))
    weights = struct.pack(f"<{n}f", *[((i * 37) % 101 - 50) / 500.0 for i in range(n)])
    header = struct.pack("<7i", dim, hidden, n_layers, n_heads, n_kv_heads,
                         vocab if shared_cls else -vocab, seq_len)
    texts = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    texts += [b"<0x%02X>" % i for i in range(min(vocab - 3, 16))]
    words = [b" the", b" a", b"cat", b" sat", b"e", b"t", b" ", b"\xc3\xa9", b""]
    while len(texts) < vocab:
        texts.append(words[len(texts) % len(words)] + str(len(texts)).encode())
    tok = struct.pack("<I", max(len(t) for t in texts))
    for i, t in enumerate(texts):
        tok += struct.pack("<fi", -float(i), len(t)) + t
    return header + weights, tok


def seeds_llama2c(shared, out):
    d = os.path.join(shared, "models/stories260K")
    with open(os.path.join(d, "stories260K.bin"), "rb") as f:
        checkpoint = f.read()
    with open(os.path.join(d, "tok512.bin"), "rb") as f:
        tokenizer = f.read()
    write(out, "stories260K.in", llama2c_input(checkpoint, tokenizer))
    write(out, "tiny-gqa.in", llama2c_input(*tiny_llama2c(8, 16, 1, 2, 1, 24, 8)))
    write(out, "tiny-wcls.in", llama2c_input(*tiny_llama2c(4, 8, 2, 2, 2, 20, 4, False)))
    write(out, "tiny-1tok.in", llama2c_input(*tiny_llama2c(2, 2, 1, 1, 1, 3, 1)))


def seeds_session_file(shared, out):
    # Session files the engine writes for stories260K (fuzz/seed_writer.cc lists them).
    seed_writer("sessions", shared, out)


def seeds_stream_file(shared, out):
    seed_writer("streams", shared, out)


def write(out, name, data):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    global SEED_WRITER
    shared, out = sys.argv[1], sys.argv[2]
    SEED_WRITER = os.path.join(os.path.dirname(os.path.abspath(out)), "fuzz", "fuzz_seed_writer")
    for name, fn in sorted(globals().items()):
        if name.startswith("seeds_") and callable(fn):
            fn(shared, os.path.join(out, name[len("seeds_"):]))


if __name__ == "__main__":
    main()
