"""perplexity() equals `streamingllm ppl --csv` per token, for each cache policy."""

import csv
import subprocess

import numpy as np
import pytest

import streamingllm
from conftest import CLI

N_TOKENS = 2048

# policy -> (Llama.perplexity keywords, the CLI's cache flags)
POLICIES = {
    "dense": (dict(n_window=2048), ["--ctx-size", "2048"]),
    "window": (dict(n_window=128), ["--window", "128"]),
    "streaming": (dict(n_sinks=4, n_window=128), ["--sinks", "4", "--window", "128"]),
    "recompute": (dict(n_window=32), ["--window", "32"]),  # O(W^2) per token
}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_perplexity_matches_the_cli(policy, model_path, text_path, tmp_path):
    if not CLI.is_file():
        pytest.fail(f"the CLI is not built: {CLI} (set SLLM_CLI)")
    kwargs, flags = POLICIES[policy]
    out = tmp_path / "ppl.csv"
    subprocess.run([str(CLI), "ppl", "-m", model_path, "-f", text_path, "--tokens", str(N_TOKENS),
                    "--policy", policy, *flags, "-t", "2", "--csv", str(out)],
                   check=True, capture_output=True)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N_TOKENS - 1
    cli_tokens = [int(r["token"]) for r in rows]
    cli_nll = np.array([float(r["nll_" + policy]) for r in rows])

    llm = streamingllm.Llama(model_path, n_threads=2)
    tokens = llm.tokenize(open(text_path, "rb").read(), add_bos=True)[:N_TOKENS]
    assert tokens[1:] == cli_tokens
    nll = llm.perplexity(tokens, cache_policy=policy, **kwargs)
    assert isinstance(nll, np.ndarray) and nll.dtype == np.float64
    assert nll.shape == (N_TOKENS - 1,)
    assert np.max(np.abs(nll - cli_nll)) <= 1e-6


def test_perplexity_of_text(llm):
    text = "Once upon a time, there was a little girl named Lily."
    nll = llm.perplexity(text)
    tokens = llm.tokenize(text.encode())
    assert nll.shape == (len(tokens) - 1,)
    assert np.array_equal(nll, llm.perplexity(tokens))
    assert 1.0 < float(np.exp(nll.mean())) < 20.0
    with pytest.raises(streamingllm.InvalidInputError):
        llm.perplexity("")  # BOS alone: nothing to score


def test_perplexity_options_override_the_objects(model_path, llm):
    tokens = llm.tokenize(b"Once upon a time, there was a little girl named Lily. " * 8)
    w = streamingllm.Llama(model_path, n_threads=2, cache_policy="window", n_window=16)
    # The object's window cache, and a streaming cache (4 sinks by default) asked for by name.
    assert np.array_equal(w.perplexity(tokens), llm.perplexity(tokens, "window", n_window=16))
    assert np.array_equal(w.perplexity(tokens, "streaming"),
                          llm.perplexity(tokens, n_window=16))
    assert not np.array_equal(w.perplexity(tokens), w.perplexity(tokens, "streaming"))
