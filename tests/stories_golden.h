// The known-good greedy output of stories260K (llama2.c reference, from BOS, 256 steps), as
// given in ../shared/README.md.
#pragma once

#include <array>
#include <cstdint>

namespace sllm::test {

inline constexpr const char* kStoriesGreedyText =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She "
    "said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to "
    "do.\"\n"
    "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" "
    "Her mom said, \"Don't worry, Lily. We can help you.";

inline constexpr std::array<int32_t, 10> kStoriesFirstGreedyIds = {403, 407, 261, 378, 432,
                                                                   383, 286, 261, 376, 298};

}  // namespace sllm::test
