#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into OUT/NAME/ from the shared data (never committed).

Usage: fuzz/seeds.py SHARED_DIR OUT_DIR. One function per target, named seeds_NAME(shared, out):
each writes small, real inputs of its target's format (real GGUF headers and models, vocabularies,
MT-Bench lines, HTTP request bodies) so that fuzzing starts from the formats' real shapes.
"""
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
