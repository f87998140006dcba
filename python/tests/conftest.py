"""Shared paths and fixtures. The model and the text come from ../shared beside the repository
(SLLM_MODEL / SLLM_TEXT override them); the CLI from build/release (SLLM_CLI)."""

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("SLLM_MODEL",
                            REPO.parent / "shared/models/stories260K/stories260K.gguf"))
TEXT = Path(os.environ.get("SLLM_TEXT", REPO.parent / "shared/data/text/tinystories_val_head.txt"))
CLI = Path(os.environ.get("SLLM_CLI", REPO / "build/release/apps/streamingllm/streamingllm"))


def golden_text():
    """kStoriesGreedyText of tests/stories_golden.h (the C string literals, joined)."""
    src = (REPO / "tests/stories_golden.h").read_text()
    block = src.split("kStoriesGreedyText =", 1)[1].split(";", 1)[0]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', block)
    return "".join(p.encode("ascii").decode("unicode_escape") for p in parts)


@pytest.fixture(scope="session")
def model_path():
    if not MODEL.is_file():
        pytest.fail(f"model not found: {MODEL} (set SLLM_MODEL)")
    return str(MODEL)


@pytest.fixture(scope="session")
def text_path():
    if not TEXT.is_file():
        pytest.fail(f"text not found: {TEXT} (set SLLM_TEXT)")
    return str(TEXT)


@pytest.fixture()
def llm(model_path):
    import streamingllm

    return streamingllm.Llama(model_path, n_threads=2, seed=1234)
