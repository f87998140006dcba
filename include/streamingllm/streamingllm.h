// streamingllm: run language models on endless streams (StreamingLLM: attention sinks + a rolling
// window, Xiao et al. 2023). The whole public API; standard-library types only.
//
//   #include <streamingllm/streamingllm.h>
//
//   auto model = sllm::Model::load("model.gguf");          // Result<std::shared_ptr<Model>>
//   if (!model.ok()) { std::cerr << model.error().message() << "\n"; return 1; }
//   auto stream = sllm::Stream::create(*model);            // 4 sinks + 1020 window
//   (*stream)->feed_text("Once upon a time", /*add_bos=*/true);
//   sllm::StopOptions stop;
//   stop.max_tokens = 64;
//   (*stream)->generate(stop, [](std::string_view text) { std::cout << text; });
//
// model.h    Model: load a GGUF file, its facts (ModelInfo), tokenize / detokenize
// stream.h   Stream: feed, generate, save / load; perplexity()
// chat.h     Chat: turns rendered with the model's chat template, on one endless stream
// batch.h    Batch: many streams and chats generating together, one forward pass per step
// options.h  CacheOptions (policy, sinks, window), SamplingOptions, StopOptions
// inspect.h  measure_attention_mass(): does a model have attention sinks?
// tools.h    quantize(), convert_llama2c(), read_file(), write_file_atomic()
// error.h    Error, Result<T>, Status
#pragma once

#include "streamingllm/batch.h"
#include "streamingllm/chat.h"
#include "streamingllm/error.h"
#include "streamingllm/inspect.h"
#include "streamingllm/model.h"
#include "streamingllm/options.h"
#include "streamingllm/stream.h"
#include "streamingllm/tools.h"

#define STREAMINGLLM_VERSION_MAJOR 0
#define STREAMINGLLM_VERSION_MINOR 2
#define STREAMINGLLM_VERSION_PATCH 0
