// Prints, for each vocabulary GGUF given, the end-of-generation token set llama.cpp computes
// (node-llama-cpp's isEogToken over every token id) with its EOS and EOT ids, one JSON line each.
// Goldens for tests/eog_test.cc come from this script:
//   node peer/eog.mjs ../shared/data/vocab/ggml-vocab-*.gguf
// node-llama-cpp is imported from peer/node_modules when installed there (npm install in peer/),
// else from $SLLM_PEER_DIR/node_modules (default /work/peer).
import path from "path";
import {pathToFileURL} from "url";

async function loadPeer() {
  try {
    return await import("node-llama-cpp");
  } catch {
    const dir = process.env.SLLM_PEER_DIR ?? "/work/peer";
    const entry = path.join(dir, "node_modules/node-llama-cpp/dist/index.js");
    return await import(pathToFileURL(entry).href);
  }
}

const {getLlama} = await loadPeer();
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
for (const file of process.argv.slice(2)) {
  const model = await llama.loadModel({modelPath: file, vocabOnly: true});
  const eog = [];
  const n = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
  for (let id = 0; id < n; ++id) {
    if (model.isEogToken(id)) eog.push(id);
  }
  console.log(JSON.stringify({
    file: path.basename(file),
    n_tokens: n,
    eos: model.tokens.eos,
    eot: model.tokens.eot,
    eog,
  }));
  await model.dispose();
}
