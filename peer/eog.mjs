// Prints, for each vocabulary GGUF given, the end-of-generation token set llama.cpp computes
// (node-llama-cpp's isEogToken over every token id) with its EOS and EOT ids, one JSON line each.
// Goldens for tests/eog_test.cc come from this script:
//   node peer/eog.mjs ../shared/data/vocab/ggml-vocab-*.gguf
// node-llama-cpp comes from peer/node_modules (`cd peer && npm ci`).
import path from "path";
import {getLlama} from "node-llama-cpp";
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
