// Batch: the members' state machines (prompt segments, then a DecodeStep) around one
// Session::feed_batch per step.
#include "streamingllm/batch.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>

#include "api/impl.h"
#include "runtime/decode.h"

namespace sllm {

Status BatchOptions::validate() const {
  if (max_rows == 0) return Error(ErrorCode::kInvalidInput, "a batch needs at least 1 row");
  if (prompt_chunk == 0 || max_prompt_rows == 0) {
    return Error(ErrorCode::kInvalidInput, "a batch's prompt chunk must be at least 1 token");
  }
  return {};
}

namespace {

bool interrupted(const std::atomic<bool>* flag) {
  return flag != nullptr && flag->load(std::memory_order_relaxed);
}

// Tokens fed before generating, made when the segment before it has ended (a chat's next
// exchange renders after the previous one counted), and what to do once they are in.
struct Segment {
  std::function<Result<std::vector<TokenId>>()> make;
  // n_fed of n: fewer when interrupted. Returns false when the member ends with it (a chat turn
  // cut short).
  std::function<bool(size_t n_fed, size_t n)> end;
};

struct Member {
  uint64_t id = 0;
  Session* session = nullptr;
  Sampler* sampler = nullptr;
  StreamDecoder* prompt_decoder = nullptr;  // a stream's: the prompt's text goes through it
  std::deque<Segment> segments;
  std::optional<std::vector<TokenId>> tokens;  // of segments.front(), once made
  size_t n_fed = 0;                            // of *tokens
  bool fed_any = false;                        // the first chunk always goes in
  // Generation.
  StopOptions stop;
  TextFn on_text;
  TokenFn on_token;
  std::unique_ptr<StreamDecoder> own_decoder;  // a chat reply's
  StreamDecoder* decoder = nullptr;
  std::span<const TokenId> end_tokens;
  std::function<void(const Generation&)> on_generated;  // a chat's end_reply
  std::optional<DecodeStep> step;
  std::optional<TokenId> next;  // sampled, fed in the next step
  BatchResult result;
  bool done = false;
  // This step's rows.
  size_t rows = 0;
  bool decoding_row = false;
};

}  // namespace

struct Batch::Impl {
  std::shared_ptr<const Model> model;
  BatchOptions options;
  ForwardScratch scratch;
  std::vector<float> logits;
  std::vector<std::unique_ptr<Member>> members;
  std::vector<BatchResult> finished;  // ended outside a step (in add())
  uint64_t next_id = 1;
  size_t last_rows = 0;

  Impl(std::shared_ptr<const Model> m, const BatchOptions& o)
      : model(std::move(m)), options(o), scratch(model->impl().model().config(), o.max_rows) {}

  Result<uint64_t> join(std::unique_ptr<Member> m);
  void finish(Member& m, Status status);
  void start_decoding(Member& m);
  void after_prompt_chunk(Member& m);
  // Makes the front segment's tokens; ends segments with nothing to feed. False when the member
  // ended (an error).
  bool ready_segment(Member& m);
};

void Batch::Impl::finish(Member& m, Status status) {
  if (m.done) return;
  m.done = true;
  m.result.status = std::move(status);
  if (m.step) {
    Generation g = m.step->finish();
    if (m.result.status.ok() && m.on_generated) m.on_generated(g);
    const std::vector<TokenId> prompt = std::move(m.result.reply.prompt_tokens);
    const uint64_t n_prompt = m.result.reply.n_prompt_tokens;
    const double prompt_seconds = m.result.reply.prompt_seconds;
    static_cast<Generation&>(m.result.reply) = std::move(g);
    m.result.reply.prompt_tokens = prompt;
    m.result.reply.n_prompt_tokens = n_prompt;
    m.result.reply.prompt_seconds = prompt_seconds;
  }
}

void Batch::Impl::start_decoding(Member& m) {
  m.step.emplace(*m.sampler, m.decoder, m.end_tokens, m.stop, m.on_text, m.on_token);
  if (Status s = m.step->check(); !s.ok()) return finish(m, s);
  if (m.session->n_seen() == 0) {
    return finish(m, Error(ErrorCode::kInvalidInput,
                           "nothing has been fed yet: generation needs at least one token to "
                           "follow"));
  }
  m.next = m.step->next(m.session->last_logits());
  if (!m.next) finish(m, {});
}

bool Batch::Impl::ready_segment(Member& m) {
  while (!m.segments.empty() && !m.tokens) {
    Result<std::vector<TokenId>> t = m.segments.front().make();
    if (!t.ok()) {
      finish(m, t.error());
      return false;
    }
    if (!t->empty()) {
      m.tokens = std::move(*t);
      m.n_fed = 0;
      break;
    }
    const bool go_on = m.segments.front().end(0, 0);
    m.segments.pop_front();
    if (!go_on) {
      finish(m, {});
      return false;
    }
  }
  if (m.segments.empty()) start_decoding(m);
  return !m.done;
}

void Batch::Impl::after_prompt_chunk(Member& m) {
  if (m.n_fed < m.tokens->size() && !(interrupted(m.stop.interrupt))) return;
  // The segment is in, or an interrupt cut it: nothing after it is fed.
  const size_t n_fed = m.n_fed, n = m.tokens->size();
  const bool go_on = m.segments.front().end(n_fed, n) && n_fed == n;
  m.segments.pop_front();
  m.tokens.reset();
  if (!go_on || (interrupted(m.stop.interrupt) && !m.segments.empty())) {
    m.result.reply.stop = StopReason::kInterrupted;
    return finish(m, {});
  }
  ready_segment(m);
}

Result<uint64_t> Batch::Impl::join(std::unique_ptr<Member> m) {
  for (const auto& other : members) {
    if (other->session == m->session) {
      return Error(ErrorCode::kInvalidInput, "this stream or chat is already in the batch");
    }
  }
  const uint64_t id = next_id++;
  m->id = id;
  m->result.id = id;
  Member& ref = *m;
  members.push_back(std::move(m));
  ready_segment(ref);
  if (ref.done) {
    finished.push_back(std::move(ref.result));
    members.pop_back();
  }
  return id;
}

Batch::Batch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Batch::~Batch() = default;

Result<std::unique_ptr<Batch>> Batch::create(std::shared_ptr<const Model> model,
                                             const BatchOptions& options) {
  if (model == nullptr) return Error(ErrorCode::kInvalidInput, "no model given");
  SLLM_RETURN_IF_ERROR(options.validate());
  SLLM_ASSIGN_OR_RETURN(
      const uint64_t scratch_bytes,
      ForwardScratch::bytes_needed(model->impl().model().config(), options.max_rows));
  (void)scratch_bytes;  // checked against overflow and the machine's memory
  return std::unique_ptr<Batch>(new Batch(std::make_unique<Impl>(std::move(model), options)));
}

Result<uint64_t> Batch::add(Stream& stream, std::vector<TokenId> prompt, const StopOptions& stop,
                            TextFn on_text, TokenFn on_token) {
  Stream::Impl& s = *stream.impl_;
  if (s.model.get() != impl_->model.get()) {
    return Error(ErrorCode::kInvalidInput, "the stream is of another model than the batch");
  }
  std::lock_guard<std::mutex> lock(impl_->model->impl().compute);
  auto m = std::make_unique<Member>();
  m->session = s.session.get();
  m->sampler = &s.sampler;
  m->prompt_decoder = &s.decoder;
  m->decoder = &s.decoder;
  m->end_tokens = s.model->impl().end_tokens;
  m->stop = stop;
  m->on_text = std::move(on_text);
  m->on_token = std::move(on_token);
  if (!prompt.empty()) {
    Member* mp = m.get();
    auto shared = std::make_shared<std::vector<TokenId>>(std::move(prompt));
    m->segments.push_back({[shared]() -> Result<std::vector<TokenId>> { return *shared; },
                           [mp, shared](size_t n_fed, size_t) {
                             mp->result.reply.prompt_tokens.assign(
                                 shared->begin(), shared->begin() + static_cast<ptrdiff_t>(n_fed));
                             mp->result.reply.n_prompt_tokens = n_fed;
                             return true;
                           }});
  }
  return impl_->join(std::move(m));
}

Result<uint64_t> Batch::add(Chat& chat, std::string_view user_text, const StopOptions& stop,
                            TextFn on_text, std::vector<ChatExchange> history) {
  Chat::Impl& c = *chat.impl_;
  if (c.model.get() != impl_->model.get()) {
    return Error(ErrorCode::kInvalidInput, "the chat is of another model than the batch");
  }
  std::lock_guard<std::mutex> lock(impl_->model->impl().compute);
  ChatSession& cs = *c.session;
  if (history.empty()) {
    // Checked now, as send() would before feeding anything. (With exchanges before it the turn
    // renders differently, so it is checked when they are in.)
    SLLM_ASSIGN_OR_RETURN(std::vector<TokenId> t, cs.begin_send(user_text, stop));
  }
  auto m = std::make_unique<Member>();
  Member* mp = m.get();
  m->session = &cs.mutable_session();
  m->sampler = &cs.mutable_sampler();
  m->own_decoder = std::make_unique<StreamDecoder>(cs.tokenizer());
  m->decoder = m->own_decoder.get();
  m->end_tokens = cs.stop_tokens();
  m->stop = stop;
  m->stop.at_end_of_generation = true;
  m->on_text = std::move(on_text);
  m->on_generated = [&cs](const Generation& g) { cs.end_reply(g.end_token); };
  for (ChatExchange& e : history) {
    auto ex = std::make_shared<ChatExchange>(std::move(e));
    m->segments.push_back({[&cs, ex] { return cs.begin_add_turn(ex->user, ex->reply); },
                           [&cs, mp](size_t n_fed, size_t) {
                             cs.end_add_turn();
                             mp->result.n_history_tokens += n_fed;
                             return true;
                           }});
  }
  auto text = std::make_shared<std::string>(user_text);
  auto turn = std::make_shared<std::vector<TokenId>>();
  m->segments.push_back({[&cs, text, turn, stop]() -> Result<std::vector<TokenId>> {
                           SLLM_ASSIGN_OR_RETURN(*turn, cs.begin_send(*text, stop));
                           return *turn;
                         },
                         [&cs, mp, turn](size_t n_fed, size_t n) {
                           mp->result.reply.prompt_tokens.assign(
                               turn->begin(), turn->begin() + static_cast<ptrdiff_t>(n_fed));
                           mp->result.reply.n_prompt_tokens = n_fed;
                           if (cs.end_prompt(n_fed, n)) return true;
                           mp->result.reply.stop = StopReason::kInterrupted;
                           return false;
                         }});
  return impl_->join(std::move(m));
}

std::vector<BatchResult> Batch::step() {
  Impl& b = *impl_;
  std::lock_guard<std::mutex> lock(b.model->impl().compute);
  std::vector<BatchResult> out = std::move(b.finished);
  b.finished.clear();
  // Rows: every generating member's next token first, then prompt chunks while rows are left.
  std::vector<SessionFeed> feeds;
  std::vector<Member*> fed;
  std::vector<TokenId> next_tokens(b.members.size());
  size_t n_rows = 0;
  for (size_t i = 0; i < b.members.size(); ++i) {
    Member& m = *b.members[i];
    if (m.done || !m.next || n_rows == b.options.max_rows) continue;
    next_tokens[i] = *m.next;
    feeds.push_back({m.session, std::span<const TokenId>(&next_tokens[i], 1), {}});
    fed.push_back(&m);
    m.decoding_row = true;
    ++n_rows;
  }
  size_t n_prompt_rows = 0;
  for (auto& mp : b.members) {
    Member& m = *mp;
    if (m.done || m.next || !m.tokens) continue;
    if (m.fed_any && interrupted(m.stop.interrupt)) {
      b.after_prompt_chunk(m);  // leaves now, with or without rows this step
      continue;
    }
    if (n_rows == b.options.max_rows || n_prompt_rows == b.options.max_prompt_rows) continue;
    const size_t n = std::min(
        {b.options.prompt_chunk, m.session->options().max_batch, b.options.max_rows - n_rows,
         b.options.max_prompt_rows - n_prompt_rows, m.tokens->size() - m.n_fed});
    feeds.push_back({m.session, std::span<const TokenId>(*m.tokens).subspan(m.n_fed, n), {}});
    fed.push_back(&m);
    m.decoding_row = false;
    m.rows = n;
    n_rows += n;
    n_prompt_rows += n;
  }
  b.last_rows = n_rows;
  Session::feed_batch(feeds, b.scratch, b.logits);

  for (size_t i = 0; i < fed.size(); ++i) {
    Member& m = *fed[i];
    if (!feeds[i].status.ok()) {
      b.finish(m, feeds[i].status);
      continue;
    }
    if (m.decoding_row) {
      const TokenId t = *m.next;
      m.next.reset();
      if (!m.step->fed(t)) {
        b.finish(m, {});
        continue;
      }
      m.next = m.step->next(m.session->last_logits());
      if (!m.next) b.finish(m, {});
      continue;
    }
    for (TokenId t : feeds[i].tokens) {
      m.sampler->accept(t);
      if (m.prompt_decoder != nullptr) (void)m.prompt_decoder->push(t);
    }
    m.n_fed += m.rows;
    m.fed_any = true;
    b.after_prompt_chunk(m);
  }
  for (auto it = b.members.begin(); it != b.members.end();) {
    if ((*it)->done) {
      out.push_back(std::move((*it)->result));
      it = b.members.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

size_t Batch::size() const { return impl_->members.size() + impl_->finished.size(); }
size_t Batch::last_rows() const { return impl_->last_rows; }

}  // namespace sllm
