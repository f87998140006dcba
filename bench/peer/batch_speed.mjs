// llama.cpp's aggregate decode speed with N sequences in one context, for
// bench/server_concurrency.py (which runs bench/batch_bench next to it on the same ids).
//
//   node bench/peer/batch_speed.mjs MODEL.gguf IDS_FILE --sequences N --threads T --decode D
//                                   [--prompt 8]
//
// One context with N sequences (node-llama-cpp 3.21.1: llama.cpp's prebuilt CPU library, f16
// K/V as llama.cpp's default); sequence i is given `prompt` ids from IDS_FILE (at offset
// i * prompt) and generates D greedy tokens. The sequences are evaluated concurrently, which
// node-llama-cpp batches into one llama_decode per step. Timed: from the moment every sequence
// has its first token to the last token; the tokens generated in that time count. Prints one JSON
// line: {"sequences", "threads", "decode_tokens", "decode_s", "tok_s"}. Model loading is not
// timed.
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
  console.error("usage: node bench/peer/batch_speed.mjs MODEL.gguf IDS_FILE [--sequences N] [--threads T] [--decode D] [--prompt P]");
  process.exit(2);
}
const n = flag("--sequences", 1), threads = flag("--threads", 1), nDecode = flag("--decode", 64);
const nPrompt = flag("--prompt", 8);
const ids = readFileSync(idsPath, "utf8").split(/\s+/).filter((s) => s !== "").map(Number);
if (ids.length < n * nPrompt) {
  console.error(`${idsPath}: ${ids.length} ids, need ${n * nPrompt}`);
  process.exit(2);
}

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({
  contextSize: n * (nPrompt + nDecode + 16),
  sequences: n,
  batchSize: Math.max(512, n * nPrompt),
  threads,
});
const sequences = Array.from({length: n}, () => context.getSequence());

let started = 0, t0 = 0n, counted = 0;
let release;
const allStarted = new Promise((resolve) => { release = resolve; });
await Promise.all(sequences.map(async (seq, i) => {
  let k = 0;
  for await (const token of seq.evaluate(ids.slice(i * nPrompt, (i + 1) * nPrompt), {temperature: 0})) {
    void token;
    if (k === 0 && ++started === n) {
      t0 = process.hrtime.bigint();
      release();
    } else if (k > 0 && t0 !== 0n) {
      ++counted;
    }
    if (++k >= nDecode) break;
  }
}));
await allStarted;
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({sequences: n, threads, decode_tokens: counted, decode_s: seconds,
                            tok_s: counted / seconds}));
await context.dispose();
await model.dispose();
await llama.dispose();
