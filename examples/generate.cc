// generate MODEL PROMPT N: N greedy tokens after PROMPT (empty: from BOS) under the default
// streaming cache (4 sinks + 1020 window), using only the installed public API.
#include <streamingllm/streamingllm.h>

#include <cstdlib>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: generate MODEL PROMPT N\n";
    return 2;
  }
  auto model = sllm::Model::load(argv[1]);
  if (!model.ok()) {
    std::cerr << "error: " << model.error().message() << "\n";
    return 1;
  }
  sllm::SamplingOptions greedy;
  greedy.temperature = 0;
  auto stream = sllm::Stream::create(*model, sllm::CacheOptions{}, greedy);
  if (!stream.ok()) return std::cerr << "error: " << stream.error().message() << "\n", 1;
  const auto print = [](std::string_view text) { std::cout << text << std::flush; };
  if (auto fed = (*stream)->feed_text(argv[2], /*add_bos=*/true, false, nullptr, print); !fed) {
    return std::cerr << "error: " << fed.error().message() << "\n", 1;
  }
  sllm::StopOptions stop;
  stop.max_tokens = std::atoll(argv[3]);
  auto generated = (*stream)->generate(stop, print);
  if (!generated.ok()) return std::cerr << "error: " << generated.error().message() << "\n", 1;
  std::cout << "\n";
  return 0;
}
