"""streamingllm: StreamingLLM inference (attention sinks + a rolling KV cache) from Python.

The shape follows llama-cpp-python, so that its users can switch:

    from streamingllm import Llama
    llm = Llama("stories260K.gguf", n_window=1020)
    out = llm("Once upon a time", max_tokens=64, temperature=0)
    print(out["choices"][0]["text"])

What differs, and what is ours:
- Every create_completion() starts a fresh stream (BOS + prompt; an empty prompt starts from BOS)
  whose cache follows the object's cache policy: "streaming" (n_sinks sinks + the last n_window
  tokens; the default), "window", "recompute" (window of n_window) or "dense" (a context limit of
  n_window tokens). A streaming cache never fills up: generation goes on until an end of text, a
  stop string or max_tokens (max_tokens=None or <= 0: no limit).
- seed=None in a call means the object's seed (Llama(seed=...), random when not given): a call
  with the same arguments gives the same text.
- create_chat_completion() keeps one conversation (a C++ Chat) in the object. When the messages
  are the held conversation (the same system message, the same earlier user and assistant
  messages, the assistant ones exactly as this object generated them) plus one new user message,
  and the sampling options are the held chat's, only the new user turn is fed: the conversation
  goes on forever through the streaming cache without re-reading its history. Otherwise a new
  chat starts (system message -> the chat's system prompt); its earlier user messages are fed as
  turns with empty replies (earlier assistant messages the object did not write are not shown to
  the model), and the last user message is answered.
- perplexity() returns the per-token negative log-likelihood as a numpy array.
- save_session()/load_session() save and restore the object's chat (its whole state: K/V cache,
  position, sampler), plus the messages in a side file PATH + ".messages.json".
- Errors of the library raise StreamingLLMError (a RuntimeError) or its subclasses FileError
  (also OSError), InvalidInputError and ModelFormatError (also ValueError), with the library's
  message. Ctrl-C raises KeyboardInterrupt between tokens (and between prompt chunks).

The object is not thread-safe: use one Llama per thread (they may share nothing but the file).
"""

import json
import os
import queue
import random
import struct
import sys
import threading
import time
import uuid

from ._streamingllm import (  # noqa: F401
    Chat,
    FileError,
    Interrupt,
    InvalidInputError,
    Model,
    ModelFormatError,
    Stream,
    StreamingLLMError,
    chat_template_names,
    policy_names,
)
from . import _streamingllm as _core

__all__ = [
    "Llama",
    "StreamingLLMError",
    "FileError",
    "InvalidInputError",
    "ModelFormatError",
]

_FINISH = {
    "end of generation": "stop",
    "stop string": "stop",
    "max tokens": "length",
    "interrupted": "stop",
}


def _f32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


class _Worker:
    """Runs fn() on a daemon thread (the binding releases the GIL while it computes), and waits for
    it in a way a Ctrl-C cannot cut short.

    Thread.join() and is_alive() are not to be trusted once a KeyboardInterrupt lands inside
    join(): CPython up to 3.11 then marks the thread stopped while it still runs (gh-90882). A
    worker left running would use the model alongside the next call, or be torn down mid-C++ when
    the interpreter exits ("terminate called without an active exception", as a loaded CI machine
    showed). So the worker reports its own end, and one that sees the interrupt before it begins
    never begins."""

    def __init__(self, fn, interrupt):
        self._fn = fn
        self._interrupt = interrupt
        self._lock = threading.Lock()
        self._began = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._target, name="streamingllm", daemon=True)

    def _target(self):
        with self._lock:
            if self._interrupt.is_set():
                self._done.set()
                return
            self._began = True
        try:
            self._fn()
        finally:
            self._done.set()

    def start(self):
        self._thread.start()

    def wait(self):
        self._done.wait()

    def stop(self):
        """Interrupts the worker (it ends after the current token or prompt chunk) and waits for it,
        if it began."""
        self._interrupt.set()
        with self._lock:
            began = self._began
        if began:
            self._done.wait()


def _run(fn, interrupt):
    """Runs fn() on a worker thread so that the main thread stays free to take Ctrl-C: the
    interrupt is set, the call ends after the current token (or prompt chunk), and
    KeyboardInterrupt is raised."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    w = _Worker(target, interrupt)
    # A Ctrl-C can land while start() waits for the worker to run: the worker is launched by then,
    # so it must be stopped too, or it would run on (endlessly, with max_tokens=-1) holding the
    # model.
    try:
        w.start()
        w.wait()
    except BaseException:
        w.stop()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


def _stream_run(fn, interrupt, on_piece, on_done):
    """A generator: runs fn(on_text) on a worker thread and yields on_piece(text) for each piece of
    text as it comes, then on_done(result). Closing the generator early (or Ctrl-C) interrupts the
    generation and waits for the worker."""
    q = queue.Queue()

    def target():
        try:
            q.put(("done", fn(lambda b: q.put(("text", b)))))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    w = _Worker(target, interrupt)
    try:
        w.start()  # inside the try: a Ctrl-C during start() stops the worker too (see _run)
        while True:
            kind, value = q.get()
            if kind == "text":
                yield on_piece(value.decode("utf-8"))
            elif kind == "done":
                yield on_done(value)
                return
            else:
                raise value
    finally:
        w.stop()


def _as_bytes(text, what):
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidInputError(f"{what}: not valid UTF-8 text: {e}") from None
    raise TypeError(f"{what} must be str or bytes, not {type(text).__name__}")


class Llama:
    """A model and its streams (llama-cpp-python's Llama, over streamingllm's endless streams)."""

    def __init__(
        self,
        model_path,
        n_threads=None,
        n_sinks=4,
        n_window=1020,
        cache_policy="streaming",
        kv_type="f32",
        seed=None,
        verbose=False,
    ):
        self.model_path = str(model_path)
        self.verbose = verbose
        if cache_policy not in policy_names():
            raise InvalidInputError(
                f"unknown cache policy '{cache_policy}' (dense, window, streaming, recompute)")
        self.cache_policy = cache_policy
        self.n_sinks = n_sinks  # used by the streaming policy only
        self.n_window = n_window
        self.kv_type = kv_type
        self.seed = seed if seed is not None else random.getrandbits(63)
        self._model = Model.load(self.model_path, 0 if n_threads is None else int(n_threads))
        self.n_threads = self._model.n_threads
        # The stream of completions; recreated when the sampling options change.
        self._stream = Stream(self._model, **self._cache_kwargs())
        self._stream_key = None
        self._current = self._stream  # what n_tokens_seen / cache_bytes describe
        self._chat = None
        self._chat_key = None
        self._history = None  # the held conversation: [(role, content)], or None: unknown
        if verbose:
            info = self._model.info
            print(
                f"streamingllm: {self.model_path}: {info['architecture']}, "
                f"{info['n_params']} parameters, {info['n_layers']} layers, "
                f"SIMD {info['simd_target']}, {self.n_threads} threads, cache "
                f"{cache_policy} ({self.n_sinks if cache_policy == 'streaming' else 0} sinks + "
                f"{n_window})",
                file=sys.stderr,
            )

    # --- model -----------------------------------------------------------------------------

    @property
    def metadata(self):
        """The model file's facts (architecture, sizes, tokenizer, chat template, ...)."""
        return self._model.info

    def n_vocab(self):
        return self._model.info["n_vocab"]

    def token_bos(self):
        return self._model.info["bos"]

    def token_eos(self):
        return self._model.info["eos"]

    def tokenize(self, text, add_bos=True, special=False):
        """UTF-8 bytes (or str) to token ids; add_bos prepends BOS; special parses control tokens
        such as "<s>". Invalid UTF-8 raises InvalidInputError naming the byte offset."""
        return self._model.tokenize(_as_bytes(text, "text"), add_bos, special)

    def detokenize(self, tokens):
        """Token ids to the bytes they stand for (control tokens are empty)."""
        return self._model.detokenize(list(tokens))

    # --- state -----------------------------------------------------------------------------

    @property
    def n_tokens_seen(self):
        """Tokens fed to the current stream or chat (the one the last call used)."""
        return self._current.n_seen

    @property
    def cache_bytes(self):
        """Bytes of K/V storage of the current stream or chat: fixed at its creation."""
        return self._current.cache_bytes

    def reset(self):
        """Forgets the conversation and the stream's tokens."""
        self._chat = None
        self._chat_key = None
        self._history = None
        self._stream.reset()
        self._current = self._stream

    def _cache_kwargs(self, policy=None, n_sinks=None, n_window=None):
        policy = self.cache_policy if policy is None else policy
        if n_sinks is None:
            n_sinks = self.n_sinks
        return dict(
            policy=policy,
            n_sinks=n_sinks if policy == "streaming" else 0,
            window=self.n_window if n_window is None else n_window,
            kv_type=self.kv_type,
        )

    def _sampling(self, temperature, top_p, top_k, min_p, repeat_penalty, seed):
        return dict(
            temperature=_f32(temperature),
            top_k=int(top_k),
            top_p=_f32(top_p),
            min_p=_f32(min_p),
            repeat_penalty=_f32(repeat_penalty),
            repeat_last_n=64,
            seed=int(self.seed if seed is None else seed) & (2**64 - 1),
        )

    # --- completions -----------------------------------------------------------------------

    def _prompt_tokens(self, prompt):
        if isinstance(prompt, (list, tuple)):
            return [int(t) for t in prompt]
        return self.tokenize(_as_bytes(prompt, "prompt"), add_bos=True)

    def create_completion(
        self,
        prompt="",
        max_tokens=16,
        temperature=0.8,
        top_p=0.95,
        top_k=40,
        min_p=0.05,
        repeat_penalty=1.0,
        seed=None,
        stop=None,
        stream=False,
    ):
        """Continues BOS + prompt (str, bytes, or token ids as given) on a fresh stream; returns
        the OpenAI completion dict, or with stream=True an iterator of its chunks."""
        tokens = self._prompt_tokens(prompt)
        if not tokens:
            raise InvalidInputError("the prompt has no tokens (not even BOS) to continue")
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        sampling = self._sampling(temperature, top_p, top_k, min_p, repeat_penalty, seed)
        key = tuple(sorted(sampling.items()))
        if key != self._stream_key:
            self._stream = Stream(self._model, **self._cache_kwargs(), **sampling)
            self._stream_key = key
        else:
            self._stream.reset()  # also reseeds the sampler
        self._current = self._stream
        s = self._stream
        n_max = -1 if max_tokens is None or max_tokens <= 0 else int(max_tokens)
        interrupt = Interrupt()
        cid = "cmpl-" + uuid.uuid4().hex
        created = int(time.time())

        def work(on_text=None):
            s.feed(tokens, interrupt)
            if interrupt.is_set():
                return None
            return s.generate(n_max, stop, on_text, interrupt)

        def usage(g):
            return {
                "prompt_tokens": len(tokens),
                "completion_tokens": g["n_tokens"],
                "total_tokens": len(tokens) + g["n_tokens"],
            }

        def choice(text, finish):
            return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

        def envelope(choices):
            return {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": self.model_path,
                "choices": choices,
            }

        if stream:

            def done(g):
                if g is None:
                    raise KeyboardInterrupt
                out = envelope([choice("", _FINISH[g["stop"]])])
                out["usage"] = usage(g)
                return out

            return _stream_run(work, interrupt, lambda t: envelope([choice(t, None)]), done)
        g = _run(work, interrupt)
        out = envelope([choice(g["text"].decode("utf-8"), _FINISH[g["stop"]])])
        out["usage"] = usage(g)
        return out

    __call__ = create_completion

    # --- chat ------------------------------------------------------------------------------

    @staticmethod
    def _conversation(messages):
        system = ""
        conv = []
        for i, m in enumerate(messages):
            role, content = m.get("role"), m.get("content")
            if not isinstance(content, str):
                raise InvalidInputError(f"message {i}: content must be a string")
            if role == "system" and i == 0:
                system = content
                continue
            expected = "user" if len(conv) % 2 == 0 else "assistant"
            if role != expected:
                raise InvalidInputError(
                    f"message {i}: expected a {expected} message, got role '{role}' (a system "
                    "message first, then user and assistant messages in turn, ending with user)")
            conv.append((role, content))
        if not conv or conv[-1][0] != "user":
            raise InvalidInputError("the messages must end with a user message")
        return system, conv

    def create_chat_completion(
        self,
        messages,
        max_tokens=None,
        temperature=0.2,
        top_p=0.95,
        top_k=40,
        min_p=0.05,
        repeat_penalty=1.0,
        seed=None,
        stop=None,
        stream=False,
    ):
        """Answers the last user message of an OpenAI-style conversation; returns the
        chat.completion dict, or with stream=True an iterator of chat.completion.chunk dicts."""
        system, conv = self._conversation(messages)
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        sampling = self._sampling(temperature, top_p, top_k, min_p, repeat_penalty, seed)
        key = (system, tuple(sorted(sampling.items())))
        interrupt = Interrupt()
        continues = (
            self._chat is not None
            and key == self._chat_key
            and (self._history is None or conv[:-1] == self._history)
        )
        if continues:
            chat, replay = self._chat, []
        else:
            chat = Chat(self._model, system=system, **self._cache_kwargs(), **sampling)
            replay = [c for r, c in conv[:-1] if r == "user"]
            self._chat, self._chat_key, self._history = None, None, None
        user = _as_bytes(conv[-1][1], "message")
        n_max = -1 if max_tokens is None or max_tokens <= 0 else int(max_tokens)

        def work(on_text=None):
            for text in replay:
                chat.send(_as_bytes(text, "message"), 0, [], None, interrupt)
                if interrupt.is_set():
                    return None
            return chat.send(user, n_max, stop, on_text, interrupt)

        cid = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())

        def finish(reply):
            if reply is None:
                raise KeyboardInterrupt
            self._chat, self._chat_key, self._current = chat, key, chat
            self._history = conv + [("assistant", reply["text"].decode("utf-8"))]
            n_prompt = len(reply["prompt_tokens"])
            return {
                "prompt_tokens": n_prompt,
                "completion_tokens": reply["n_tokens"],
                "total_tokens": n_prompt + reply["n_tokens"],
            }

        def envelope(obj, choices):
            return {"id": cid, "object": obj, "created": created, "model": self.model_path,
                    "choices": choices}

        if stream:

            def piece(text):
                return envelope(
                    "chat.completion.chunk",
                    [{"index": 0, "delta": {"content": text}, "logprobs": None,
                      "finish_reason": None}])

            def done(reply):
                usage = finish(reply)
                out = envelope(
                    "chat.completion.chunk",
                    [{"index": 0, "delta": {}, "logprobs": None,
                      "finish_reason": _FINISH[reply["stop"]]}])
                out["usage"] = usage
                return out

            def chunks():
                yield envelope(
                    "chat.completion.chunk",
                    [{"index": 0, "delta": {"role": "assistant"}, "logprobs": None,
                      "finish_reason": None}])
                yield from _stream_run(work, interrupt, piece, done)

            return chunks()
        reply = _run(work, interrupt)
        usage = finish(reply)
        out = envelope(
            "chat.completion",
            [{"index": 0,
              "message": {"role": "assistant", "content": reply["text"].decode("utf-8")},
              "logprobs": None, "finish_reason": _FINISH[reply["stop"]]}])
        out["usage"] = usage
        return out

    # --- sessions --------------------------------------------------------------------------

    def save_session(self, path):
        """Saves the object's chat (K/V cache, position, sampler, options) to `path`, atomically,
        and its messages to `path` + ".messages.json"; load_session() continues it exactly."""
        if self._chat is None:
            raise StreamingLLMError("no chat to save: save_session() saves the conversation of "
                                    "create_chat_completion(), and none has been held yet")
        path = os.fspath(path)
        self._chat.save(path)
        side = {"system": self._chat_key[0], "history": self._history}
        tmp = path + ".messages.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(side, f)
        os.replace(tmp, path + ".messages.json")

    def load_session(self, path):
        """Restores a chat saved by save_session() (on the same model file). Without the messages
        file, the next create_chat_completion() takes its earlier messages as the loaded history."""
        path = os.fspath(path)
        chat = _run(lambda: Chat.load(self._model, path), Interrupt())
        history = None
        try:
            with open(path + ".messages.json", encoding="utf-8") as f:
                side = json.load(f)
            history = [tuple(x) for x in side["history"]]
        except FileNotFoundError:
            pass
        t, k, p, mp, rp, rn, seed = chat.sampling
        sampling = dict(temperature=_f32(t), top_k=k, top_p=_f32(p), min_p=_f32(mp),
                        repeat_penalty=_f32(rp), repeat_last_n=rn, seed=seed)
        self._chat = chat
        self._chat_key = (chat.system, tuple(sorted(sampling.items())))
        self._history = history
        self._current = chat

    # --- perplexity ------------------------------------------------------------------------

    def perplexity(self, text, cache_policy=None, n_sinks=None, n_window=None):
        """Per-token negative log-likelihood (numpy float64 array) of BOS + the tokens of `text`
        (str or bytes, no special-token parsing; or a list of token ids, taken as they are) on a
        fresh stream of the given cache (default: the object's): nll[i] = -log p(t[i+1] | t[..i]).
        exp(nll.mean()) is the perplexity."""
        if isinstance(text, (list, tuple)):
            tokens = [int(t) for t in text]
        else:
            tokens = self.tokenize(_as_bytes(text, "text"), add_bos=True, special=False)
        cache = self._cache_kwargs(cache_policy, n_sinks, n_window)
        return _run(lambda: _core.perplexity(self._model, tokens, **cache), Interrupt())
