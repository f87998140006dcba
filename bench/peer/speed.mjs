// llama.cpp's prefill and decode speed on a GGUF, for side-by-side benchmarks
// (bench/peer_speed.py runs it interleaved with streamingllm on the very same file).
//
//   node bench/peer/speed.mjs MODEL.gguf IDS_FILE --threads T --prefill P --decode D
//
// IDS_FILE holds token ids (whitespace-separated; no tokenizer involved). Prefill: the first P
// ids evaluated in one call (batch 512, as llama.cpp's default), timed. Decode: a fresh sequence
// is given the first 8 ids, then D greedy tokens are generated one at a time; the time from the
// first generated token to the last is divided by D - 1, so the prompt is not counted. Prints
// one JSON line: {"prefill_s", "prefill_tokens", "decode_s", "decode_tokens", "threads"}.
// Model loading is not timed. node-llama-cpp (pinned 3.21.1) comes from peer/node_modules
// (`cd peer && npm ci --ignore-scripts`).
import {readFileSync} from "node:fs";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const {getLlama} = await import(join(root, "peer", "node_modules", "node-llama-cpp", "dist", "index.js"));

const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const [modelPath, idsPath] = args;
if (modelPath == null || idsPath == null) {
  console.error("usage: node bench/peer/speed.mjs MODEL.gguf IDS_FILE [--threads T] [--prefill P] [--decode D]");
  process.exit(2);
}
const threads = flag("--threads", 1), nPrefill = flag("--prefill", 512), nDecode = flag("--decode", 64);
const ids = readFileSync(idsPath, "utf8").split(/\s+/).filter((s) => s !== "").map(Number);
if (ids.length < Math.max(nPrefill, 8)) {
  console.error(`${idsPath}: ${ids.length} ids, need ${Math.max(nPrefill, 8)}`);
  process.exit(2);
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({
  contextSize: Math.max(nPrefill, 8 + nDecode) + 16,
  batchSize: 512,
  threads,
  sequences: 1,
});
let sequence = context.getSequence();

const out = {threads, prefill_tokens: nPrefill, decode_tokens: nDecode};
if (nPrefill > 0) {
  const t0 = process.hrtime.bigint();
  await sequence.evaluateWithoutGeneratingNewTokens(ids.slice(0, nPrefill));
  out.prefill_s = Number(process.hrtime.bigint() - t0) / 1e9;
  await sequence.clearHistory();
}
if (nDecode > 1) {
  let n = 0;
  let t0 = 0n;
  for await (const token of sequence.evaluate(ids.slice(0, 8), {temperature: 0})) {
    void token;
    if (n === 0) t0 = process.hrtime.bigint();
    if (++n >= nDecode) break;
  }
  out.decode_s = Number(process.hrtime.bigint() - t0) / 1e9 / (nDecode - 1) * nDecode;
}
console.log(JSON.stringify(out));
await context.dispose();
await model.dispose();
await llama.dispose();
