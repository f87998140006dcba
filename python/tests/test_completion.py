"""Completions: the known greedy text, streaming chunks, tokenize/detokenize, errors."""

import shutil

import pytest

import streamingllm
from conftest import golden_text


def test_greedy_from_bos_is_the_known_text(model_path):
    out = streamingllm.Llama(model_path, n_threads=2)("", max_tokens=256, temperature=0)
    assert out["object"] == "text_completion"
    choice = out["choices"][0]
    assert choice["text"] == golden_text()
    assert choice["finish_reason"] == "length"
    assert choice["index"] == 0 and choice["logprobs"] is None
    assert out["usage"] == {"prompt_tokens": 1, "completion_tokens": 256, "total_tokens": 257}
    assert out["id"].startswith("cmpl-") and isinstance(out["created"], int)


def test_streaming_chunks_join_to_the_text(llm):
    kwargs = dict(max_tokens=200, temperature=0.9, seed=7)
    whole = llm.create_completion("Once upon a time", **kwargs)
    chunks = list(llm.create_completion("Once upon a time", stream=True, **kwargs))
    assert len(chunks) > 10
    assert all(c["object"] == "text_completion" for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["usage"] == whole["usage"]
    # Same seed, same text; another seed, another text.
    assert llm("Once upon a time", **kwargs)["choices"][0]["text"] == whole["choices"][0]["text"]
    other = llm("Once upon a time", max_tokens=200, temperature=0.9, seed=8)
    assert other["choices"][0]["text"] != whole["choices"][0]["text"]


def test_closing_a_stream_early_stops_it(llm):
    it = llm.create_completion("", max_tokens=-1, temperature=0, stream=True)
    first = next(it)
    it.close()  # interrupts the endless generation and joins the worker
    assert first["choices"][0]["text"]
    assert llm("", max_tokens=5, temperature=0)["choices"][0]["text"] == "Once upon a time,"


def test_stop_strings(llm):
    out = llm("", max_tokens=100, temperature=0, stop=["Lily"])
    assert out["choices"][0]["text"] == "Once upon a time, there was a little girl named "
    assert out["choices"][0]["finish_reason"] == "stop"


def test_tokenize_and_detokenize(llm):
    ids = llm.tokenize(b"Once upon a time")
    assert ids[:2] == [1, 403]
    assert llm.tokenize(b"Once upon a time", add_bos=False) == ids[1:]
    assert llm.detokenize(ids) == b" Once upon a time"
    assert llm.tokenize(b"<s>", add_bos=False, special=True) == [1]
    assert llm.tokenize(b"<s>", add_bos=False) != [1]
    assert llm.n_vocab() == 512 and llm.token_bos() == 1 and llm.token_eos() == 2


def test_info_names_the_end_of_generation_tokens(llm):
    info = llm._model.info
    assert info["end_of_generation"] == [(2, b"</s>")]
    assert info["pre_tokenizer"] == "default"
    # K/V bytes per token: 5 layers x K and V x 32 values, as f32, f16, q8_0 and q4_0 blocks
    assert info["kv_bytes_per_token_f32"] == 1280 and info["kv_bytes_per_token_f16"] == 640
    assert info["kv_bytes_per_token_q8_0"] == 340 and info["kv_bytes_per_token_q4_0"] == 180


def test_state_properties(llm):
    llm("", max_tokens=10, temperature=0)
    assert llm.n_tokens_seen == 11
    assert llm.cache_bytes == 1024 * 5 * 2 * 32 * 4
    llm.reset()
    assert llm.n_tokens_seen == 0


def test_bad_path_raises(tmp_path):
    with pytest.raises(streamingllm.FileError) as e:
        streamingllm.Llama(str(tmp_path / "missing.gguf"))
    assert isinstance(e.value, OSError) and isinstance(e.value, streamingllm.StreamingLLMError)
    assert str(e.value) == f"cannot open '{tmp_path / 'missing.gguf'}': No such file or directory"


def test_truncated_model_raises(model_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(open(model_path, "rb").read()[:1000])
    with pytest.raises(streamingllm.StreamingLLMError) as e:
        streamingllm.Llama(str(cut))
    assert str(cut) in str(e.value)
    assert isinstance(e.value, RuntimeError)


def test_invalid_utf8_raises(llm):
    with pytest.raises(streamingllm.InvalidInputError) as e:
        llm.tokenize(b"ok \xc3\x28")
    assert "invalid UTF-8 at byte 3" in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(streamingllm.InvalidInputError, match="invalid UTF-8 at byte 3"):
        llm(b"ok \xc3\x28", max_tokens=4)
    with pytest.raises(streamingllm.InvalidInputError, match="UTF-8"):
        llm("ok \udc80", max_tokens=4)  # a lone surrogate cannot be UTF-8


def test_invalid_options_raise(model_path, llm):
    with pytest.raises(streamingllm.InvalidInputError, match="top_p"):
        llm("", max_tokens=4, top_p=0)
    with pytest.raises(streamingllm.InvalidInputError, match="cache policy"):
        streamingllm.Llama(model_path, cache_policy="ring")
    with pytest.raises(streamingllm.InvalidInputError, match="outside the vocabulary"):
        llm.detokenize([512])
