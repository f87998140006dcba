// llama.cpp's greedy decoding of a GGUF, for cross-checks (scripts/peer_crosscheck.py).
//
//   node peer/greedy.mjs MODEL.gguf "1 2 3" [N_TOKENS=64] [TOP_K=5] [TOP_STEPS=8]
//
// Loads the model on the CPU with node-llama-cpp (pinned 3.21.1: llama.cpp's prebuilt library),
// feeds the prompt given as token ids (no BOS added, no tokenizer involved), and prints JSON:
// {"ids": [N_TOKENS greedy ids], "top": [TOP_STEPS x [[id, logprob] x TOP_K]]}. Each step's
// probabilities are llama.cpp's logits through the addon's float softmax over the whole
// vocabulary (a greedy sampler filters nothing); the next token is the top one, fed back.
//
// node-llama-cpp comes from peer/node_modules (`cd peer && npm ci`).
import {getLlama} from "node-llama-cpp";

const [modelPath, idsText, nText = "64", kText = "5", stepsText = "8"] = process.argv.slice(2);
if (modelPath == null || idsText == null) {
  console.error("usage: node peer/greedy.mjs MODEL.gguf \"ID ID ...\" [N_TOKENS] [TOP_K] [TOP_STEPS]");
  process.exit(2);
}
const prompt = idsText.split(/[\s,]+/).filter((s) => s !== "").map(Number);
const nTokens = Number(nText), topK = Number(kText), topSteps = Number(stepsText);

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const context = await model.createContext({
  contextSize: prompt.length + nTokens + 16,
  batchSize: 512,
  threads: 1,  // one thread: the sums run in a fixed order
  // f32 keys and values and no flash attention (which rounds queries to f16 on the CPU), so that
  // only the summation order differs from streamingllm's f32 cache. NODE_LLAMA_KV=F16 keeps
  // llama.cpp's default f16 cache.
  experimentalKvCacheKeyType: process.env.NODE_LLAMA_KV ?? "F32",
  experimentalKvCacheValueType: process.env.NODE_LLAMA_KV ?? "F32",
  flashAttention: false,
});
const sequence = context.getSequence();

const generateNext = {token: true, probabilities: true, options: {temperature: 0}};
const ids = [];
const top = [];
let input = [...prompt.slice(0, -1), [prompt[prompt.length - 1], {generateNext}]];
for (let step = 0; step < nTokens; ++step) {
  const results = await sequence.controlledEvaluate(input);
  const next = results[results.length - 1].next;
  const token = next.token;
  if (step < topSteps) {
    const row = [];
    for (const [id, p] of next.probabilities) {
      if (row.length >= topK) break;
      row.push([id, Math.log(p)]);
    }
    top.push(row);
  }
  ids.push(token);
  input = [[token, {generateNext}]];
}
console.log(JSON.stringify({ids, top}));
await context.dispose();
await model.dispose();
await llama.dispose();
