"""Stream.save / Stream.load: a loaded stream goes on exactly as the one that never stopped."""

import pytest

import streamingllm
from streamingllm import Model, Stream


@pytest.mark.parametrize("policy", ["dense", "window", "streaming", "recompute"])
@pytest.mark.parametrize("kv_type", ["f32", "f16", "q8_0", "q4_0"])
def test_saved_stream_continues_exactly(model_path, tmp_path, policy, kv_type):
    model = Model.load(model_path, n_threads=1)
    window = 200 if policy == "dense" else 12
    kwargs = dict(policy=policy, n_sinks=4 if policy == "streaming" else 0, window=window,
                  kv_type=kv_type, temperature=0.9, top_k=0, top_p=1.0, min_p=0.0,
                  repeat_penalty=1.1, repeat_last_n=16, seed=77)
    first = Stream(model, **kwargs)
    first.feed(model.tokenize(b"Once upon a time", True))
    first.generate(max_tokens=20)
    path = tmp_path / "s.stream"
    first.save(str(path))
    loaded = Stream.load(model, str(path))
    assert loaded.n_seen == first.n_seen
    assert policy == "dense" or first.n_seen > window  # the window wrapped before the save
    assert loaded.cache_bytes == first.cache_bytes
    expected = first.generate(max_tokens=30)
    got = loaded.generate(max_tokens=30)
    assert got["tokens"] == expected["tokens"] and len(got["tokens"]) > 0
    assert got["text"] == expected["text"]
    assert loaded.n_seen == first.n_seen


def test_bad_files_raise(model_path, tmp_path):
    model = Model.load(model_path, n_threads=1)
    with pytest.raises(streamingllm.FileError):
        Stream.load(model, str(tmp_path / "missing.stream"))
    bad = tmp_path / "bad.stream"
    bad.write_bytes(b"SLLMCHAT" + bytes(40))
    with pytest.raises(streamingllm.ModelFormatError) as e:
        Stream.load(model, str(bad))
    assert str(e.value) == (f"{bad}: this is a chat session file, not a stream file (SLLMCHAT "
                            "header; load it with Chat::load, chat --session)")
    with pytest.raises(streamingllm.StreamingLLMError, match=r"not a regular file \(directory\)"):
        Stream(model).save(str(tmp_path))
