// llama.cpp's tokenizer (node-llama-cpp 3.21.1, prebuilt, CPU) on files, for cross-checks only.
//
//   node tokenize.mjs VOCAB.gguf FILE... [--max-bytes N] [--digest]
//       one JSON line per file: {"file", "bytes", "count", "ids"} (or "sha256" with --digest)
//   node tokenize.mjs --time VOCAB.gguf FILE [--rounds R]
//       one JSON line per round: {"bytes", "count", "wall_s", "cpu_s", "mb_s"}; the load is not timed
//
// Tokenization is llama.cpp's common_tokenize(vocab, text, add_special = false,
// parse_special = false): no BOS/EOS, control-token text stays plain text, as in streamingllm's
// Vocabulary::tokenize(text, false, false).
import {getLlama} from "node-llama-cpp";
import crypto from "node:crypto";
import fs from "node:fs";

function usage(msg) {
  process.stderr.write(`tokenize.mjs: ${msg}\n` +
      "usage: node tokenize.mjs [--time] [--rounds R] [--max-bytes N] [--digest] VOCAB.gguf FILE...\n");
  process.exit(2);
}

const args = {time: false, rounds: 1, maxBytes: 0, digest: false, pos: []};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  const num = () => {
    const v = Number(process.argv[++i]);
    if (!Number.isInteger(v) || v < 0) usage(`${a} needs a non-negative integer`);
    return v;
  };
  if (a === "--time") args.time = true;
  else if (a === "--digest") args.digest = true;
  else if (a === "--rounds") args.rounds = num();
  else if (a === "--max-bytes") args.maxBytes = num();
  else if (a.startsWith("--")) usage(`unknown option ${a}`);
  else args.pos.push(a);
}
if (args.pos.length < 2) usage("need a vocabulary and at least one file");
const [vocabPath, ...files] = args.pos;

// The first maxBytes bytes, backed off to a UTF-8 character boundary (the same rule as
// scripts/peer_tokenize.py and tests/tokenizer_peer_golden_test.cc).
function readText(file) {
  let buf = fs.readFileSync(file);
  if (args.maxBytes > 0 && buf.length > args.maxBytes) {
    let n = args.maxBytes;
    while (n > 0 && (buf[n] & 0xc0) === 0x80) --n;
    buf = buf.subarray(0, n);
  }
  // Fatal decoding: a lossy one would hand llama.cpp U+FFFD instead of the file's bytes.
  let text;
  try {
    text = new TextDecoder("utf-8", {fatal: true, ignoreBOM: true}).decode(buf);
  } catch {
    usage(`${file} is not valid UTF-8`);
  }
  return {text, bytes: buf.length};
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: vocabPath, vocabOnly: true});

if (args.time) {
  const {text, bytes} = readText(files[0]);
  for (let r = 0; r < Math.max(1, args.rounds); ++r) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const ids = model.tokenize(text, false);
    const wall = (performance.now() - t0) / 1e3;
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6;
    console.log(JSON.stringify({bytes, count: ids.length, wall_s: wall, cpu_s: cpu,
                                mb_s: bytes / 1e6 / wall}));
  }
} else {
  for (const file of files) {
    const {text, bytes} = readText(file);
    const ids = Uint32Array.from(model.tokenize(text, false));
    const out = {file, bytes, count: ids.length};
    if (args.digest) {
      // sha256 of the ids as little-endian uint32 (the goldens' digest).
      out.sha256 = crypto.createHash("sha256").update(Buffer.from(ids.buffer)).digest("hex");
    } else {
      out.ids = Array.from(ids);
    }
    console.log(JSON.stringify(out));
  }
}
await model.dispose();
await llama.dispose();
