#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into OUT/NAME/ from the shared data (never committed).

Usage: fuzz/seeds.py SHARED_DIR OUT_DIR. One function per target, named seeds_NAME(shared, out):
each writes small, real inputs of its target's format (real GGUF headers and models, vocabularies,
MT-Bench lines, HTTP request bodies) so that fuzzing starts from the formats' real shapes.
"""
import os
import sys


def seeds_gguf(shared, out):
    # The real model whole (its tensors included: the parser checks every tensor's extent).
    with open(os.path.join(shared, "models/stories260K/stories260K.gguf"), "rb") as f:
        data = f.read()
    write(out, "stories260K.gguf", data)


def write(out, name, data):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    shared, out = sys.argv[1], sys.argv[2]
    for name, fn in sorted(globals().items()):
        if name.startswith("seeds_") and callable(fn):
            fn(shared, os.path.join(out, name[len("seeds_"):]))


if __name__ == "__main__":
    main()
