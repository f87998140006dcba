"""Ctrl-C raises KeyboardInterrupt between tokens of an endless generation."""

import os
import signal
import subprocess
import sys
import textwrap


def test_sigint_raises_keyboard_interrupt(model_path):
    script = textwrap.dedent(f"""
        import os, signal, threading, time
        import streamingllm
        # Python leaves SIGINT ignored if it started ignored (a shell's background job, as a CI
        # runner may start us): install its Ctrl-C handler, which this test is about.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        llm = streamingllm.Llama({model_path!r}, n_threads=1)
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            llm("", max_tokens=-1, temperature=0.8)  # endless: only Ctrl-C ends it
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - t0, 1), "s;",
                  llm.n_tokens_seen > 1)
            print(llm("", max_tokens=5, temperature=0)["choices"][0]["text"])
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("interrupted after") and lines[0].endswith("True"), r.stdout
    assert lines[1] == "Once upon a time,"


def test_ctrl_c_while_the_worker_starts_stops_it(model_path):
    # The race a loaded machine hit: SIGINT landing inside Thread.start() (before the wait for the
    # worker) left an endless generation running and holding the model, so the next call hung.
    # Thread.start is made to raise right after launching the worker, every time it can happen.
    script = textwrap.dedent(f"""
        import threading
        import streamingllm
        llm = streamingllm.Llama({model_path!r}, n_threads=1)
        real_start = threading.Thread.start
        def start_then_ctrl_c(self):
            real_start(self)
            raise KeyboardInterrupt
        for stream in (False, True):
            threading.Thread.start = start_then_ctrl_c
            try:
                out = llm("", max_tokens=-1, temperature=0.8, stream=stream)
                if stream:
                    next(out)
            except KeyboardInterrupt:
                print("interrupted", stream)
            threading.Thread.start = real_start
            print(llm("", max_tokens=5, temperature=0)["choices"][0]["text"])
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["interrupted False", "Once upon a time,",
                                     "interrupted True", "Once upon a time,"], r.stdout
