"""Chat completions: an endless conversation, and save/load of a session."""

import re

import pytest

import streamingllm

SAMPLING = dict(temperature=0.8, seed=99, max_tokens=24)


def user_turn(i):
    return f"Tell me about the dog number {i}."


def test_forty_turns_feed_only_the_new_tokens(model_path):
    llm = streamingllm.Llama(model_path, n_threads=2, n_window=128, seed=5)
    messages = [{"role": "system", "content": "You tell short stories."}]
    bytes0 = None
    for i in range(40):
        messages.append({"role": "user", "content": user_turn(i)})
        seen = llm.n_tokens_seen if i > 0 else 0
        out = llm.create_chat_completion(messages, **SAMPLING)
        assert out["object"] == "chat.completion"
        message = out["choices"][0]["message"]
        assert message["role"] == "assistant"
        usage = out["usage"]
        # Only this turn's tokens went in: the user turn (and the previous reply's closing), then
        # the reply. They stay small however long the conversation grows.
        assert llm.n_tokens_seen - seen == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] < 40 + (20 if i == 0 else 0)
        if bytes0 is None:
            bytes0 = llm.cache_bytes
        assert llm.cache_bytes == bytes0 == (4 + 128) * 5 * 2 * 32 * 4
        messages.append(message)
    assert llm.n_tokens_seen > 132 * 3  # far past the cache


def test_chat_streaming_joins_to_the_reply(model_path):
    messages = [{"role": "user", "content": "Hello there."}]
    a = streamingllm.Llama(model_path, n_threads=2)
    whole = a.create_chat_completion(messages, **SAMPLING)
    b = streamingllm.Llama(model_path, n_threads=2)
    chunks = list(b.create_chat_completion(messages, stream=True, **SAMPLING))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert b.n_tokens_seen == a.n_tokens_seen


def test_a_changed_history_starts_over(model_path):
    llm = streamingllm.Llama(model_path, n_threads=2)
    messages = [{"role": "user", "content": "Hi."}]
    out = llm.create_chat_completion(messages, **SAMPLING)
    messages += [out["choices"][0]["message"], {"role": "user", "content": "More."}]
    llm.create_chat_completion(messages, **SAMPLING)
    n_continued = llm.n_tokens_seen
    edited = [{"role": "user", "content": "Hi."},
              {"role": "assistant", "content": "Something else."},
              {"role": "user", "content": "More."}]
    fresh = streamingllm.Llama(model_path, n_threads=2)
    fresh.create_chat_completion(edited, **SAMPLING)
    llm.create_chat_completion(edited, **SAMPLING)
    assert llm.n_tokens_seen == fresh.n_tokens_seen != n_continued
    with pytest.raises(streamingllm.InvalidInputError, match="end with a user message"):
        llm.create_chat_completion(edited[:2])


def run_turns(llm, messages, turns):
    replies = []
    for t in turns:
        messages.append({"role": "user", "content": t})
        out = llm.create_chat_completion(messages, **SAMPLING)
        messages.append(out["choices"][0]["message"])
        replies.append(out["choices"][0]["message"]["content"])
    return replies


def test_save_and_load_continue_exactly(model_path, tmp_path):
    turns = [user_turn(i) for i in range(6)]
    whole = streamingllm.Llama(model_path, n_threads=2, n_window=64)
    expected = run_turns(whole, [], turns)

    first = streamingllm.Llama(model_path, n_threads=2, n_window=64)
    messages = []
    got = run_turns(first, messages, turns[:3])
    path = tmp_path / "chat.session"
    first.save_session(str(path))
    del first
    second = streamingllm.Llama(model_path, n_threads=2, n_window=64)
    second.load_session(str(path))
    seen = second.n_tokens_seen
    got += run_turns(second, messages, turns[3:4])
    # Only the new turn was fed: the loaded chat went on.
    assert second.n_tokens_seen - seen < 60
    got += run_turns(second, messages, turns[4:])
    assert got == expected
    assert second.n_tokens_seen == whole.n_tokens_seen


def test_session_errors(llm, tmp_path):
    with pytest.raises(streamingllm.StreamingLLMError, match="no chat to save"):
        llm.save_session(str(tmp_path / "x"))
    with pytest.raises(streamingllm.FileError, match="cannot open"):
        llm.load_session(str(tmp_path / "missing.session"))
    bad = tmp_path / "bad.session"
    bad.write_bytes(b"not a session")
    with pytest.raises(streamingllm.StreamingLLMError, match=re.escape(str(bad))):
        llm.load_session(str(bad))
