// The official OpenAI Node client (npm `openai`, unchanged) against `streamingllm serve`:
// one reply without streaming, then a second turn streamed, both in one conversation.
//
//   streamingllm serve -m MODEL.gguf --port 8080 &
//   npm install && node chat.mjs            # or: SLLM_BASE_URL=http://host:port/v1 node chat.mjs
//
// The client resends the whole history each turn, as OpenAI clients do; the server finds the
// conversation it holds by that history and feeds only the new message (prompt_tokens_details
// .cached_tokens in the usage says how many it did not feed again).
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.SLLM_BASE_URL ?? "http://127.0.0.1:8080/v1",
  apiKey: process.env.SLLM_API_KEY ?? "none", // the server's --api-key, if it has one
});
const seed = Number(process.env.SLLM_SEED ?? 7);
const max_tokens = Number(process.env.SLLM_MAX_TOKENS ?? 48);

const { data: models } = await client.models.list();
const model = models[0].id;
const messages = [{ role: "user", content: "Once upon a time there was a cat." }];

// Not streamed.
const first = await client.chat.completions.create({ model, messages, seed, max_tokens });
const reply = first.choices[0].message.content;
console.log(JSON.stringify({ turn: 1, model, reply, usage: first.usage }));

// Streamed: the same conversation, one more turn.
messages.push({ role: "assistant", content: reply });
messages.push({ role: "user", content: "What did the cat do next?" });
const stream = await client.chat.completions.create({
  model, messages, seed, max_tokens, stream: true,
});
let text = "";
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
console.log(JSON.stringify({ turn: 2, reply: text, usage }));
