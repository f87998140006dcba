#!/usr/bin/env bash
# Issue 13, acceptance 1: the official OpenAI Node client (examples/openai-client, npm `openai`
# pinned) talks to `streamingllm serve` unchanged, streaming and not. Starts the server on
# stories260K at a free port, runs the example, and checks both replies against the server's own
# answers to the same requests (same seed), sent with python3's urllib.
#
# Usage: scripts/test_openai_example.sh [STREAMINGLLM_BINARY] [MODEL.gguf]
# Needs `npm install` in examples/openai-client once (the network); exits 77 (skipped) without it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cli=${1:-$root/build/release/apps/streamingllm/streamingllm}
model=${2:-$root/../shared/models/stories260K/stories260K.gguf}
example=$root/examples/openai-client
if [ ! -d "$example/node_modules/openai" ]; then
  echo "SKIPPED: run 'npm install' in examples/openai-client first (needs the network)"
  exit 77
fi
command -v node > /dev/null || { echo "SKIPPED: node is not installed"; exit 77; }

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2> /dev/null && wait "$server_pid" 2> /dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$cli" serve -m "$model" --port 0 --window 60 -t 1 -q 2> "$tmp/serve.log" &
server_pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's|.*http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$tmp/serve.log")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2> /dev/null || { cat "$tmp/serve.log"; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "the server did not start"; cat "$tmp/serve.log"; exit 1; }

(cd "$example" && SLLM_BASE_URL="http://127.0.0.1:$port/v1" SLLM_SEED=7 SLLM_MAX_TOKENS=48 \
  node chat.mjs) > "$tmp/example.out"
cat "$tmp/example.out"

python3 - "$port" "$tmp/example.out" "$example/node_modules/openai/package.json" << 'PY'
import json, sys, urllib.request
port, out = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(out) if l.strip()]
assert [l["turn"] for l in lines] == [1, 2], lines
def chat(messages):
    body = {"model": "stories260K", "messages": messages, "seed": 7, "max_tokens": 48}
    req = urllib.request.Request("http://127.0.0.1:%s/v1/chat/completions" % port,
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=60).read())
m1 = [{"role": "user", "content": "Once upon a time there was a cat."}]
r1 = chat(m1)["choices"][0]["message"]["content"]
m2 = m1 + [{"role": "assistant", "content": r1},
           {"role": "user", "content": "What did the cat do next?"}]
r2 = chat(m2)
errors = []
if lines[0]["model"] != "stories260K": errors.append("model %r" % lines[0]["model"])
if not lines[0]["reply"] or lines[0]["reply"] != r1:
    errors.append("turn 1: the client got %r, the server answers %r" % (lines[0]["reply"], r1))
want = r2["choices"][0]["message"]["content"]
if not lines[1]["reply"] or lines[1]["reply"] != want:
    errors.append("turn 2 (streamed): the client got %r, the server answers %r"
                  % (lines[1]["reply"], want))
u = lines[1]["usage"] or {}
if u.get("prompt_tokens_details", {}).get("cached_tokens", 0) != lines[0]["usage"]["total_tokens"]:
    errors.append("turn 2 fed the whole history again: usage %s" % u)
if errors:
    sys.exit("FAIL: " + "; ".join(errors))
version = json.load(open(sys.argv[3]))["version"]
print("OK: openai %s (Node) client, both replies equal the server's; turn 2 reused %d cached tokens"
      % (version, u["prompt_tokens_details"]["cached_tokens"]))
PY
