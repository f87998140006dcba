// Renders the chat template stored in each vocabulary GGUF given (tokenizer.chat_template) with
// @huggingface/jinja, the Jinja engine node-llama-cpp uses, on the conversation of
// tests/chat_template_test.cc (system + three user turns + two replies, generation prompt on).
// The expected strings of gemma4 and command-r in that test equal this output:
//   node peer/chat_templates.mjs ../shared/data/vocab/ggml-vocab-{gemma-4,command-r,qwen2}.gguf
// Modules come from peer/node_modules (`cd peer && npm ci`).
import path from "path";
import {Template} from "@huggingface/jinja";
import {readGgufFileInfo} from "node-llama-cpp";

const conversation = [
  {role: "system", content: "You are a helpful assistant."},
  {role: "user", content: "Hello!"},
  {role: "assistant", content: "Hi, how can I help?"},
  {role: "user", content: "What is 2+2?"},
  {role: "assistant", content: "It is 4."},
  {role: "user", content: "Thanks!"},
];

for (const file of process.argv.slice(2)) {
  const info = await readGgufFileInfo(file, {readTensorInfo: false});
  const ggml = info.metadata.tokenizer.ggml;
  const template = info.metadata.tokenizer.chat_template;
  if (template == null) {
    console.log(JSON.stringify({file: path.basename(file), text: null}));
    continue;
  }
  const text = new Template(template).render({
    messages: conversation,
    bos_token: ggml.tokens[ggml.bos_token_id] ?? "",
    eos_token: ggml.tokens[ggml.eos_token_id] ?? "",
    add_generation_prompt: true,
  });
  console.log(JSON.stringify({file: path.basename(file), text}));
}
