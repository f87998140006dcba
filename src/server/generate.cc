// The two generation endpoints: a request is checked and bound to its conversation on the
// connection's thread, generated on the decoding thread, and answered as one JSON body or as
// Server-Sent Events while the text comes.
#include <chrono>
#include <ctime>

#include "server_impl.h"

namespace sllm::server {

using nlohmann::json;

namespace {

ApiError from_library(const Error& e) {
  if (e.code() == ErrorCode::kInvalidInput || e.code() == ErrorCode::kLimit) {
    return bad_request("invalid_value", e.message());
  }
  return {500, e.message(), "server_error", "internal_error"};
}

// The messages a request feeds: user and assistant alternating, ending with the user's
// (after one optional system message, where a conversation starts).
std::optional<ApiError> check_order(std::span<const Message> messages, bool starts_conversation) {
  size_t i = 0;
  if (messages[0].role == Role::kSystem) {
    if (!starts_conversation) {
      return bad_request("invalid_order",
                         "messages[0]: a system message can only start a conversation, and this "
                         "request continues a session");
    }
    i = 1;
  }
  for (size_t k = i; k < messages.size(); ++k) {
    const Role expected = (k - i) % 2 == 0 ? Role::kUser : Role::kAssistant;
    if (messages[k].role != expected) {
      return bad_request("invalid_order",
                         "messages[" + std::to_string(k) + "] has role " +
                             role_name(messages[k].role) + ", expected " + role_name(expected) +
                             " (an optional system message first, then user and assistant messages "
                             "alternating, the last one from the user)");
    }
  }
  if (messages.back().role != Role::kUser) {
    return bad_request("invalid_order", "the last message must be from the user, got " +
                                            std::string(role_name(messages.back().role)));
  }
  return std::nullopt;
}

bool same_sampling(const SamplingOptions& a, const SamplingOptions& b) {
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p &&
         a.min_p == b.min_p && a.repeat_penalty == b.repeat_penalty &&
         a.repeat_last_n == b.repeat_last_n && a.seed == b.seed;
}

constexpr auto kHeartbeat = std::chrono::milliseconds(200);

std::string sse(const json& event) { return "data: " + event.dump() + "\n\n"; }

// Serves `st` as Server-Sent Events: `first` at once, a chunk per piece of text, the final chunk
// (or the error) and "data: [DONE]". `finalize` runs when the response is over, whether the
// generation finished or the client left (then the generation is interrupted first).
void stream_events(httplib::Response& res, std::shared_ptr<RequestState> st, json first,
                   std::function<json(const std::string&)> piece,
                   std::function<json(const Outcome&)> last, std::function<void()> finalize) {
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  auto first_sent = std::make_shared<bool>(false);
  // A client that leaves is noticed when a write fails. While nothing is generated (a long
  // prompt being fed) an SSE comment every kHeartbeat keeps writing, so that it is noticed
  // then too and the prompt stops within a chunk.
  auto last_write =
      std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  res.set_chunked_content_provider(
      "text/event-stream",
      [st, first = std::move(first), piece = std::move(piece), last = std::move(last), first_sent,
       last_write](size_t, httplib::DataSink& sink) {
        std::deque<std::string> pieces;
        bool done = false;
        {
          std::unique_lock<std::mutex> lock(st->mu);
          st->cv.wait_for(lock, std::chrono::milliseconds(50),
                          [&] { return !st->pieces.empty() || st->done; });
          pieces.swap(st->pieces);
          done = st->done;
        }
        std::string out;
        if (!*first_sent && !first.is_null()) out += sse(first);
        *first_sent = true;
        for (const std::string& p : pieces) out += sse(piece(p));
        if (done) {
          out += sse(st->outcome.error ? error_json(*st->outcome.error) : last(st->outcome));
          out += "data: [DONE]\n\n";
        }
        const auto now = std::chrono::steady_clock::now();
        if (out.empty() && now - *last_write >= kHeartbeat) out = ": keep-alive\n\n";
        if (!out.empty()) *last_write = now;
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          st->interrupt = true;  // the client left: stop generating at once
          return false;
        }
        if (done) sink.done();
        return true;
      },
      [st, finalize = std::move(finalize)](bool) {
        st->interrupt = true;  // no effect if the generation is over
        finalize();
      });
}

}  // namespace

void Server::Impl::handle_chat(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = parse_body(req.body, body)) return send_error(res, *e);
  auto r = std::make_shared<ChatRequest>();
  if (auto e = parse_chat_request(body, options.chat.sampling, options.limits, *r)) {
    return send_error(res, *e);
  }
  if (r->session_id.empty() && req.has_header("X-Session-Id")) {
    r->session_id = req.get_header_value("X-Session-Id");
    if (!valid_session_id(r->session_id)) {
      return send_error(res,
                        bad_request("invalid_session_id",
                                    "X-Session-Id must be 1 to 64 letters, digits, '-' or '_'"));
    }
  }
  const bool named = !r->session_id.empty();
  if (auto e = check_order(r->messages, !named)) return send_error(res, *e);

  // The conversation, and the first message it has not fed.
  std::shared_ptr<Conversation> conv;
  size_t first = 0;
  bool created = false;
  bool reused = false;
  if (named) {
    Acquired a = store->acquire(r->session_id);
    if (auto* e = std::get_if<ApiError>(&a)) {
      if (e->status == 429) res.set_header("Retry-After", "1");
      return send_error(res, *e);
    }
    conv = std::get<std::shared_ptr<Conversation>>(a);
  } else {
    size_t n_matched = 0;
    conv = store->acquire_prefix(r->messages, &n_matched);
    if (conv != nullptr) {
      first = n_matched;
      reused = true;
    } else {
      const bool has_system = r->messages[0].role == Role::kSystem;
      Acquired a = store->create(has_system ? r->messages[0].content : "", r->sampling);
      if (auto* e = std::get_if<ApiError>(&a)) {
        if (e->status == 429) res.set_header("Retry-After", "1");
        return send_error(res, *e);
      }
      conv = std::get<std::shared_ptr<Conversation>>(a);
      first = has_system ? 1 : 0;
      created = true;
    }
  }

  auto st = std::make_shared<RequestState>();
  register_request(st.get());
  // Joins the decoding thread's batch: the history's exchanges and the turn go in by chunks
  // between the other requests' decode steps, then the reply one token per step.
  auto outcome = std::make_shared<Outcome>();
  worker->post_member(
      [this, st, conv, r, first, named, reused, outcome](Batch& batch) -> std::optional<uint64_t> {
        Chat& chat = *conv->chat;
        outcome->cached_tokens = chat.n_seen();
        auto join = [&]() -> Result<uint64_t> {
          // Sampling: a session keeps its random draw going unless the request changes an
          // option (a seed it names counts); a conversation found by its history answers as a
          // fresh one would, from the request's seed.
          SamplingOptions sampling = r->sampling;
          if (named && !r->seed_given) sampling.seed = chat.options().sampling.seed;
          if ((named && !same_sampling(sampling, chat.options().sampling)) || reused) {
            SLLM_RETURN_IF_ERROR(chat.set_sampling(sampling));
          }
          std::vector<ChatExchange> history;
          for (size_t i = first; i + 1 < r->messages.size(); i += 2) {
            history.push_back({r->messages[i].content, r->messages[i + 1].content});
          }
          StopOptions stop;
          stop.max_tokens = r->max_tokens;
          stop.stop_strings = r->stop;
          stop.interrupt = &st->interrupt;
          return batch.add(
              chat, r->messages.back().content, stop,
              [st](std::string_view text) { st->push(text); }, std::move(history));
        };
        Result<uint64_t> id = join();
        if (id.ok()) return *id;
        outcome->error = from_library(id.error());
        metrics.add(*outcome);
        st->finish(std::move(*outcome));
        return std::nullopt;
      },
      // conv: the member feeds its chat until this runs.
      [this, st, outcome, conv](BatchResult result) {
        Outcome& o = *outcome;
        if (!result.status.ok()) {
          o.error = from_library(result.status.error());
        } else {
          const ChatReply& reply = result.reply;
          // An interrupt before the turn went in leaves no reply.
          o.replied = reply.stop != StopReason::kInterrupted || reply.n_prompt_tokens > 0;
          o.text = reply.text;
          o.stop = reply.stop;
          o.prompt_tokens_fed = result.n_history_tokens + reply.n_prompt_tokens;
          o.completion_tokens = reply.n_tokens;
          o.generate_seconds = reply.generate_seconds;
        }
        if (!o.error && !o.replied) o.stop = StopReason::kInterrupted;
        metrics.add(o);
        st->finish(std::move(o));
      });

  // Once the generation is over: the conversation's history grows by the request's messages and
  // the reply, and it is released (written to disk, indexed, idle).
  auto finalize = [this, st, conv, r, first, created] {
    st->wait_done();
    const Outcome& o = st->outcome;
    if (created && o.error) {
      (void)store->release(conv, /*drop=*/true);
    } else {
      for (size_t i = first; i < r->messages.size(); ++i) {
        conv->hash = conv->hash.add(r->messages[i].role, r->messages[i].content);
      }
      if (o.replied) conv->hash = conv->hash.add(Role::kAssistant, o.text);
      const bool clean =
          !o.error && o.replied &&
          (o.stop == StopReason::kEndOfGeneration || o.stop == StopReason::kMaxTokens);
      conv->reusable = conv->reusable && clean;
      if (Status w = store->release(conv, false); !w.ok() && options.log) {
        options.log("error: session " + conv->id + ": " + w.error().message());
      }
    }
    unregister_request(st.get());
  };

  const std::string id = new_request_id("chatcmpl-");
  const int64_t created_at = static_cast<int64_t>(std::time(nullptr));
  const std::string session_id = conv->id;
  res.set_header("X-Session-Id", session_id);
  auto chunk = [this, id, created_at, session_id](json delta, json finish) {
    return json{
        {"id", id},
        {"object", "chat.completion.chunk"},
        {"created", created_at},
        {"model", model_id},
        {"session_id", session_id},
        {"choices", {{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
  };
  if (r->stream) {
    stream_events(
        res, st, chunk({{"role", "assistant"}, {"content", ""}}, nullptr),
        [chunk](const std::string& text) {
          return chunk({{"content", text}}, nullptr);
        },
        [chunk](const Outcome& o) {
          json last = chunk(json::object(), finish_reason(o.stop));
          last["usage"] = usage_json(o);
          return last;
        },
        finalize);
    return;
  }
  finalize();
  const Outcome& o = st->outcome;
  if (o.error) return send_error(res, *o.error);
  const json response = {{"id", id},
                         {"object", "chat.completion"},
                         {"created", created_at},
                         {"model", model_id},
                         {"session_id", session_id},
                         {"choices",
                          {{{"index", 0},
                            {"message", {{"role", "assistant"}, {"content", o.text}}},
                            {"finish_reason", finish_reason(o.stop)}}}},
                         {"usage", usage_json(o)}};
  res.set_content(response.dump(), "application/json");
}

void Server::Impl::handle_completion(const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto e = parse_body(req.body, body)) return send_error(res, *e);
  auto r = std::make_shared<CompletionRequest>();
  if (auto e = parse_completion_request(body, options.chat.sampling, options.limits, *r)) {
    return send_error(res, *e);
  }
  auto st = std::make_shared<RequestState>();
  register_request(st.get());
  // A completion is a stream of its own: a cache for the request's time only, in the decoding
  // thread's batch like every other request.
  auto outcome = std::make_shared<Outcome>();
  auto stream = std::make_shared<std::unique_ptr<Stream>>();
  worker->post_member(
      [this, st, r, outcome, stream](Batch& batch) -> std::optional<uint64_t> {
        auto join = [&]() -> Result<uint64_t> {
          SLLM_ASSIGN_OR_RETURN(*stream, Stream::create(model, options.chat.cache, r->sampling));
          SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> prompt,
                                model->tokenize(r->prompt, /*add_bos=*/true));
          StopOptions stop;
          stop.max_tokens = r->max_tokens;
          stop.stop_strings = r->stop;
          stop.interrupt = &st->interrupt;
          stop.at_end_of_generation = !r->ignore_eos;
          return batch.add(**stream, std::move(prompt), stop,
                           [st](std::string_view text) { st->push(text); });
        };
        Result<uint64_t> id = join();
        if (id.ok()) return *id;
        outcome->error = from_library(id.error());
        metrics.add(*outcome);
        st->finish(std::move(*outcome));
        stream->reset();
        return std::nullopt;
      },
      [this, st, outcome, stream](BatchResult result) {
        Outcome& o = *outcome;
        if (!result.status.ok()) {
          o.error = from_library(result.status.error());
        } else {
          const ChatReply& g = result.reply;
          o.prompt_tokens_fed = g.n_prompt_tokens;
          o.replied = g.stop != StopReason::kInterrupted || g.n_tokens > 0;
          o.text = g.text;
          o.stop = g.stop;
          o.completion_tokens = g.n_tokens;
          o.generate_seconds = g.generate_seconds;
        }
        if (!o.error && !o.replied) o.stop = StopReason::kInterrupted;
        metrics.add(o);
        st->finish(std::move(o));
        stream->reset();  // its cache is freed on the decoding thread, out of the batch
      });
  auto finalize = [this, st] {
    st->wait_done();
    unregister_request(st.get());
  };

  const std::string id = new_request_id("cmpl-");
  const int64_t created_at = static_cast<int64_t>(std::time(nullptr));
  auto chunk = [this, id, created_at](const std::string& text, json finish) {
    return json{
        {"id", id},
        {"object", "text_completion"},
        {"created", created_at},
        {"model", model_id},
        {"choices",
         {{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish}}}}};
  };
  if (r->stream) {
    stream_events(
        res, st, nullptr, [chunk](const std::string& text) { return chunk(text, nullptr); },
        [chunk](const Outcome& o) {
          json last = chunk("", finish_reason(o.stop));
          last["usage"] = usage_json(o);
          return last;
        },
        finalize);
    return;
  }
  finalize();
  const Outcome& o = st->outcome;
  if (o.error) return send_error(res, *o.error);
  json response = chunk(o.text, finish_reason(o.stop));
  response["usage"] = usage_json(o);
  res.set_content(response.dump(), "application/json");
}

}  // namespace sllm::server
