#!/usr/bin/env python3
"""Issue 13, acceptance 7: the chat page at / in headless Chromium sends two messages and shows
both replies, streamed, in one session.

Starts `streamingllm serve` on stories260K (a free port), drives Debian's
`chromium --headless` over the DevTools protocol on a pipe (--remote-debugging-pipe: no
websocket library needed), types two messages into the page and waits for both replies. The
replies must be exactly those the API gives a client that sends the same two messages in one
session (same server, the same seed and max_tokens, which the page takes from its address), and the page must show the session's tokens seen and
cache bytes as the server reports them.

Usage: chat_page_test.py STREAMINGLLM_BINARY MODEL.gguf
Exit 77 (skipped) when chromium is not installed, except under CI=true, where it fails.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

TIMEOUT_S = 90
MESSAGES = ["Once upon a time there was a cat.", "What did the cat do next?"]
# Sent by the page with every message (from its address), and by the API client here.
PAGE_FIELDS = {"seed": 7, "max_tokens": 48}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Server:
    def __init__(self, binary, model, tmp):
        self.log_path = os.path.join(tmp, "serve.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "-m", model, "--port", "0", "--window", "60", "-t", "1",
             "-q"], stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = 0
        deadline = time.time() + 60
        while time.time() < deadline and self.port == 0:
            m = re.search(r"http://127\.0\.0\.1:(\d+) ", open(self.log_path).read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                fail("the server exited: " + open(self.log_path).read())
            else:
                time.sleep(0.02)
        if self.port == 0:
            fail("the server did not start: " + open(self.log_path).read())

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=60) as r:
            return r.read().decode()

    def chat(self, text, session_id=None):
        body = dict(PAGE_FIELDS, messages=[{"role": "user", "content": text}])
        if session_id:
            body["session_id"] = session_id
        req = urllib.request.Request(self.url("/v1/chat/completions"),
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        if code != 0:
            fail("the server exited with %d: %s" % (code, open(self.log_path).read()))


class Browser:
    """Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out), each
    message a JSON object ending with a NUL byte."""

    def __init__(self, chromium, tmp):
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()

        def child_fds():
            a, b = os.dup(cmd_r), os.dup(out_w)  # above 4: dup2 below cannot clobber them
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--remote-debugging-pipe", "--user-data-dir=" + os.path.join(tmp, "profile"),
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "chromium.log"), "w"),
            preexec_fn=child_fds, close_fds=False)
        os.close(cmd_r)
        os.close(out_w)
        self.buffer = b""
        self.next_id = 1
        self.session = None

    def call(self, method, params=None, session=True):
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        self.next_id += 1
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            while b"\0" not in self.buffer:
                chunk = os.read(self.out_r, 1 << 16)
                if not chunk:
                    fail("chromium closed the DevTools pipe; see its log")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == msg["id"]:
                if "error" in reply:
                    fail("%s: %s" % (method, reply["error"]))
                return reply["result"]
        fail("no reply to " + method)

    def open(self, url):
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]

    def js(self, expression):
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            fail("page script: %s: %s" % (expression[:80], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_for(self, expression, what):
        deadline = time.time() + TIMEOUT_S
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.05)
        fail("timed out waiting for " + what)

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except SystemExit:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    if len(sys.argv) != 3:
        fail("usage: chat_page_test.py STREAMINGLLM_BINARY MODEL.gguf")
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI") == "true":
            fail("chromium is not installed (scripts/install-deps.sh installs it)")
        print("SKIPPED: chromium is not installed (apt-get install chromium)")
        return 77
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="sllm_chat_page_") as tmp:
        server = Server(sys.argv[1], sys.argv[2], tmp)
        browser = Browser(chromium, tmp)
        try:
            browser.open(server.url("/?" + "&".join("%s=%s" % kv for kv in PAGE_FIELDS.items())))
            browser.wait_for("document.readyState === 'complete' && "
                             "!!document.getElementById('send')", "the page")
            done = "document.querySelectorAll('.msg[data-done]').length"
            for i, text in enumerate(MESSAGES):
                browser.js("(() => { document.getElementById('input').value = %s; "
                           "document.getElementById('send').click(); return true; })()"
                           % json.dumps(text))
                browser.wait_for("%s === %d" % (done, i + 1), "reply %d" % (i + 1))
            page = browser.js("""(() => ({
                users: [...document.querySelectorAll('.msg.user')].map(e => e.textContent),
                replies: [...document.querySelectorAll('.msg.assistant')].map(e => e.textContent),
                errors: [...document.querySelectorAll('.msg.error')].map(e => e.textContent),
                session: localStorage.getItem('sllm.session_id'),
                shown_session: document.getElementById('session').textContent,
                tokens: document.getElementById('tokens').textContent,
                cache_bytes: document.getElementById('cache-bytes').textContent,
                session_bytes: document.getElementById('session-bytes').textContent,
                model: document.getElementById('model').textContent,
            }))()""")
        finally:
            browser.close()
        if page["errors"]:
            fail("the page shows errors: %s" % page["errors"])
        if page["users"] != MESSAGES:
            fail("the page shows the messages %s" % page["users"])
        if len(page["replies"]) != 2 or not all(page["replies"]):
            fail("the page shows the replies %s" % page["replies"])
        if not page["session"] or page["shown_session"] != page["session"]:
            fail("session id: localStorage %r, shown %r" % (page["session"],
                                                           page["shown_session"]))
        # The same two messages through the API, in a session of their own.
        first = server.chat(MESSAGES[0])
        second = server.chat(MESSAGES[1], first["session_id"])
        expected = [r["choices"][0]["message"]["content"] for r in (first, second)]
        if page["replies"] != expected:
            fail("the page's replies %s differ from the API's %s" % (page["replies"], expected))
        info = json.loads(server.get("/v1/sessions/" + page["session"]))
        if info["tokens_seen"] != second["usage"]["total_tokens"]:
            fail("tokens seen %d, the API's conversation %d" % (info["tokens_seen"],
                                                                second["usage"]["total_tokens"]))
        shown = (page["tokens"], page["cache_bytes"], page["session_bytes"])
        want = (str(info["tokens_seen"]), str(info["cache_bytes"]), str(info["session_bytes"]))
        if shown != want:
            fail("the page shows (tokens, cache bytes, session bytes) %s, the server %s"
                 % (shown, want))
        m = re.search(r"\nsllm_session_cache_bytes (\d+)\n", server.get("/metrics"))
        if not m or m.group(1) != page["cache_bytes"]:
            fail("cache bytes %s, /metrics %s" % (page["cache_bytes"], m and m.group(1)))
        if page["model"] != "stories260K":
            fail("model shown: %r" % page["model"])
        server.stop()
    print("OK: two messages, two replies equal to the API's (%s); tokens seen %s, cache %s bytes;"
          " %.1f s" % (", ".join(repr(r[:30]) for r in page["replies"]), page["tokens"],
                       page["cache_bytes"], time.time() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
