// The Python binding `streamingllm._streamingllm`: a thin layer over the public C++ API
// (<streamingllm/...> only). The Python package (streamingllm/__init__.py) builds the
// llama-cpp-python style Llama class on top of it.
//
// Every call that computes releases the GIL; callbacks into Python take it back. Library errors
// become StreamingLLMError (a RuntimeError) or one of its subclasses by ErrorCode:
// FileError (also an OSError) for kIo, InvalidInputError (also a ValueError) for kInvalidInput and
// kLimit. The message is the library's. Interrupt is a flag another thread (or a callback) sets to
// end a generation after the current token and a long prompt between chunks.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <streamingllm/streamingllm.h>

namespace py = pybind11;

namespace {

PyObject* g_error = nullptr;         // StreamingLLMError(RuntimeError)
PyObject* g_file_error = nullptr;    // FileError(StreamingLLMError, OSError)
PyObject* g_input_error = nullptr;   // InvalidInputError(StreamingLLMError, ValueError)
PyObject* g_format_error = nullptr;  // ModelFormatError(StreamingLLMError, ValueError)

[[noreturn]] void raise(const sllm::Error& e) {
  PyObject* type = g_error;
  switch (e.code()) {
    case sllm::ErrorCode::kIo:
      type = g_file_error;
      break;
    case sllm::ErrorCode::kInvalidInput:
    case sllm::ErrorCode::kLimit:
      type = g_input_error;
      break;
    case sllm::ErrorCode::kFormat:
    case sllm::ErrorCode::kUnsupported:
      type = g_format_error;
      break;
    case sllm::ErrorCode::kInternal:
      break;
  }
  PyErr_SetString(type, e.message().c_str());
  throw py::error_already_set();
}

template <typename T>
T check(sllm::Result<T> r) {
  if (!r.ok()) raise(r.error());
  return std::move(r).value();
}
void check(const sllm::Status& s) {
  if (!s.ok()) raise(s.error());
}

struct Interrupt {
  std::atomic<bool> flag{false};
};

sllm::CacheOptions cache_options(const std::string& policy, size_t n_sinks, size_t window,
                                 const std::string& kv_type) {
  sllm::CacheOptions c;
  c.policy = check(sllm::parse_policy(policy));
  c.n_sinks = c.policy == sllm::CachePolicy::kStreaming ? n_sinks : 0;
  c.window = window;
  c.kv_type = check(sllm::parse_kv_type(kv_type));
  return c;
}

sllm::SamplingOptions sampling_options(float temperature, int32_t top_k, float top_p, float min_p,
                                       float repeat_penalty, int32_t repeat_last_n, uint64_t seed) {
  sllm::SamplingOptions s;
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  s.min_p = min_p;
  s.repeat_penalty = repeat_penalty;
  s.repeat_last_n = repeat_last_n;
  s.seed = seed;
  check(s.validate());
  return s;
}

// Runs a generation with the GIL released; on_text (a Python callable taking bytes, or None) is
// called with the GIL held. An exception from it sets the interrupt and is raised afterwards.
struct TextSink {
  py::object fn;
  std::optional<py::error_already_set> error;
  std::atomic<bool>* interrupt = nullptr;

  sllm::TextFn make() {
    if (fn.is_none()) return {};
    return [this](std::string_view text) {
      py::gil_scoped_acquire gil;
      if (error) return;
      try {
        fn(py::bytes(text.data(), text.size()));
      } catch (py::error_already_set& e) {
        error.emplace(std::move(e));
        if (interrupt != nullptr) interrupt->store(true);
      }
    };
  }
  void rethrow() {
    if (error) {
      py::error_already_set e = std::move(*error);
      error.reset();
      throw e;
    }
  }
};

sllm::StopOptions stop_options(int64_t max_tokens, std::vector<std::string> stop,
                               Interrupt* interrupt, std::atomic<bool>* own) {
  sllm::StopOptions s;
  s.max_tokens = max_tokens < 0 ? -1 : max_tokens;
  s.stop_strings = std::move(stop);
  s.interrupt = interrupt != nullptr ? &interrupt->flag : own;
  return s;
}

py::dict generation_dict(const sllm::Generation& g) {
  py::dict d;
  d["text"] = py::bytes(g.text);
  d["tokens"] = g.tokens;
  d["n_tokens"] = g.n_tokens;
  d["stop"] = sllm::stop_reason_name(g.stop);
  d["end_token"] = g.end_token;
  d["n_prompt_tokens"] = g.n_prompt_tokens;
  d["prompt_seconds"] = g.prompt_seconds;
  d["generate_seconds"] = g.generate_seconds;
  return d;
}

std::vector<sllm::TokenId> token_list(const std::vector<int64_t>& ids) {
  std::vector<sllm::TokenId> out;
  out.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < INT32_MIN || id > INT32_MAX) {
      raise(sllm::Error(sllm::ErrorCode::kInvalidInput,
                        "token id " + std::to_string(id) + " is outside the vocabulary"));
    }
    out.push_back(static_cast<sllm::TokenId>(id));
  }
  return out;
}

py::dict info_dict(const sllm::ModelInfo& i) {
  py::dict d;
  d["path"] = i.path;
  d["architecture"] = i.architecture;
  d["name"] = i.name;
  d["family"] = i.family;
  d["blocks"] = i.blocks;
  py::dict family_params;  // the hyper-parameters only this family has, by name
  for (const auto& [name, value] : i.family_params) family_params[py::str(name)] = value;
  d["family_params"] = family_params;
  d["n_params"] = i.n_params;
  d["n_vocab"] = i.n_vocab;
  d["dim"] = i.dim;
  d["n_layers"] = i.n_layers;
  d["n_heads"] = i.n_heads;
  d["n_kv_heads"] = i.n_kv_heads;
  d["head_dim"] = i.head_dim;
  d["ffn_dim"] = i.ffn_dim;
  d["n_ctx_train"] = i.n_ctx_train;
  d["rope_dims"] = i.rope_dims;
  d["rope_freq_base"] = i.rope_freq_base;
  d["rope_scaling"] = i.rope_scaling;
  d["tokenizer_model"] = i.tokenizer_model;
  d["pre_tokenizer"] = i.pre_tokenizer;
  d["bos"] = i.bos;
  d["eos"] = i.eos;
  py::list end_tokens;  // (id, text) pairs; text as bytes: a token may be part of a character
  for (const sllm::SpecialToken& t : i.end_of_generation) {
    end_tokens.append(py::make_tuple(t.id, py::bytes(t.text)));
  }
  d["end_of_generation"] = end_tokens;
  d["chat_template"] = i.chat_template;
  d["kv_bytes_per_token_f32"] = i.kv_bytes_per_token_f32;
  d["kv_bytes_per_token_f16"] = i.kv_bytes_per_token_f16;
  d["kv_bytes_per_token_q8_0"] = i.kv_bytes_per_token_q8_0;
  d["kv_bytes_per_token_q4_0"] = i.kv_bytes_per_token_q4_0;
  d["n_local_layers"] = i.n_local_layers;
  d["sliding_window"] = i.sliding_window;
  d["simd_target"] = i.simd_target;
  return d;
}

using ModelPtr = std::shared_ptr<sllm::Model>;

}  // namespace

PYBIND11_MODULE(_streamingllm, m) {
  m.doc() = "Low-level binding of the streamingllm C++ API (use streamingllm.Llama)";

  g_error = PyErr_NewExceptionWithDoc("streamingllm.StreamingLLMError",
                                      "An error reported by the streamingllm library.",
                                      PyExc_RuntimeError, nullptr);
  {
    py::tuple file_bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_OSError));
    g_file_error = PyErr_NewExceptionWithDoc("streamingllm.FileError",
                                             "A file could not be opened, read or written.",
                                             file_bases.ptr(), nullptr);
    py::tuple input_bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
    g_input_error = PyErr_NewExceptionWithDoc(
        "streamingllm.InvalidInputError", "An invalid value (text, option) or an exceeded limit.",
        input_bases.ptr(), nullptr);
    g_format_error =
        PyErr_NewExceptionWithDoc("streamingllm.ModelFormatError",
                                  "A malformed or unsupported file.", input_bases.ptr(), nullptr);
  }
  if (g_error == nullptr || g_file_error == nullptr || g_input_error == nullptr ||
      g_format_error == nullptr) {
    throw py::error_already_set();
  }
  m.attr("StreamingLLMError") = py::handle(g_error);
  m.attr("FileError") = py::handle(g_file_error);
  m.attr("InvalidInputError") = py::handle(g_input_error);
  m.attr("ModelFormatError") = py::handle(g_format_error);

  py::class_<Interrupt>(m, "Interrupt")
      .def(py::init<>())
      .def("set", [](Interrupt& i) { i.flag.store(true); })
      .def("clear", [](Interrupt& i) { i.flag.store(false); })
      .def("is_set", [](const Interrupt& i) { return i.flag.load(); });

  py::class_<sllm::Model, ModelPtr>(m, "Model")
      .def_static(
          "load",
          [](const std::string& path, size_t n_threads) {
            sllm::Model::LoadOptions o;
            o.n_threads = n_threads;
            sllm::Result<ModelPtr> r = [&] {
              py::gil_scoped_release nogil;
              return sllm::Model::load(path, o);
            }();
            return check(std::move(r));
          },
          py::arg("path"), py::arg("n_threads") = 0)
      .def_property_readonly("info", [](const sllm::Model& mo) { return info_dict(mo.info()); })
      .def_property_readonly("n_threads", &sllm::Model::n_threads)
      .def(
          "tokenize",
          [](const sllm::Model& mo, const py::bytes& text, bool add_bos, bool special) {
            const std::string_view t = text;
            return check(mo.tokenize(t, add_bos, special));
          },
          py::arg("text"), py::arg("add_bos") = true, py::arg("special") = false)
      .def(
          "detokenize",
          [](const sllm::Model& mo, const std::vector<int64_t>& ids) {
            const auto tokens = token_list(ids);
            return py::bytes(check(mo.detokenize(tokens)));
          },
          py::arg("tokens"))
      .def("token_text",
           [](const sllm::Model& mo, sllm::TokenId t) { return py::bytes(mo.token_text(t)); });

  py::class_<sllm::Stream>(m, "Stream")
      .def(py::init([](ModelPtr model, const std::string& policy, size_t n_sinks, size_t window,
                       const std::string& kv_type, float temperature, int32_t top_k, float top_p,
                       float min_p, float repeat_penalty, int32_t repeat_last_n, uint64_t seed) {
             const auto cache = cache_options(policy, n_sinks, window, kv_type);
             const auto sampling = sampling_options(temperature, top_k, top_p, min_p,
                                                    repeat_penalty, repeat_last_n, seed);
             return check(sllm::Stream::create(std::move(model), cache, sampling));
           }),
           py::arg("model"), py::arg("policy") = "streaming", py::arg("n_sinks") = 4,
           py::arg("window") = 1020, py::arg("kv_type") = "f32", py::arg("temperature") = 0.8f,
           py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
           py::arg("repeat_penalty") = 1.0f, py::arg("repeat_last_n") = 64, py::arg("seed") = 42)
      .def(
          "feed",
          [](sllm::Stream& s, const std::vector<int64_t>& ids, Interrupt* interrupt) {
            const auto tokens = token_list(ids);
            sllm::Result<size_t> r = [&] {
              py::gil_scoped_release nogil;
              return s.feed(tokens, interrupt != nullptr ? &interrupt->flag : nullptr);
            }();
            return check(std::move(r));
          },
          py::arg("tokens"), py::arg("interrupt") = nullptr)
      .def(
          "generate",
          [](sllm::Stream& s, int64_t max_tokens, std::vector<std::string> stop, py::object on_text,
             Interrupt* interrupt) {
            std::atomic<bool> own{false};
            const auto opts = stop_options(max_tokens, std::move(stop), interrupt, &own);
            TextSink sink{std::move(on_text), std::nullopt,
                          const_cast<std::atomic<bool>*>(opts.interrupt)};
            const sllm::TextFn fn = sink.make();
            sllm::Result<sllm::Generation> r = [&] {
              py::gil_scoped_release nogil;
              return s.generate(opts, fn);
            }();
            sink.rethrow();
            return generation_dict(check(std::move(r)));
          },
          py::arg("max_tokens") = -1, py::arg("stop") = std::vector<std::string>{},
          py::arg("on_text") = py::none(), py::arg("interrupt") = nullptr)
      .def(
          "save",
          [](const sllm::Stream& s, const std::string& path) {
            sllm::Status st = [&] {
              py::gil_scoped_release nogil;
              return s.save(path);
            }();
            check(st);
          },
          py::arg("path"))
      .def_static(
          "load",
          [](ModelPtr model, const std::string& path) {
            sllm::Result<std::unique_ptr<sllm::Stream>> r = [&] {
              py::gil_scoped_release nogil;
              return sllm::Stream::load(std::move(model), path);
            }();
            return check(std::move(r));
          },
          py::arg("model"), py::arg("path"))
      .def("reset", &sllm::Stream::reset)
      .def_property_readonly("n_seen", &sllm::Stream::n_seen)
      .def_property_readonly("cache_bytes", &sllm::Stream::cache_bytes)
      .def_property_readonly("cache_tokens", &sllm::Stream::cache_tokens);

  py::class_<sllm::Chat>(m, "Chat")
      .def(py::init([](ModelPtr model, const std::string& system, const std::string& template_name,
                       bool keep_system, const std::string& policy, size_t n_sinks, size_t window,
                       const std::string& kv_type, float temperature, int32_t top_k, float top_p,
                       float min_p, float repeat_penalty, int32_t repeat_last_n, uint64_t seed) {
             sllm::ChatOptions o;
             o.system = system;
             o.template_name = template_name;
             o.keep_system = keep_system;
             o.cache = cache_options(policy, n_sinks, window, kv_type);
             o.sampling = sampling_options(temperature, top_k, top_p, min_p, repeat_penalty,
                                           repeat_last_n, seed);
             return check(sllm::Chat::create(std::move(model), o));
           }),
           py::arg("model"), py::arg("system") = "", py::arg("template_name") = "",
           py::arg("keep_system") = false, py::arg("policy") = "streaming", py::arg("n_sinks") = 4,
           py::arg("window") = 1020, py::arg("kv_type") = "f32", py::arg("temperature") = 0.8f,
           py::arg("top_k") = 40, py::arg("top_p") = 0.95f, py::arg("min_p") = 0.05f,
           py::arg("repeat_penalty") = 1.0f, py::arg("repeat_last_n") = 64, py::arg("seed") = 42)
      .def_static(
          "load",
          [](ModelPtr model, const std::string& path) {
            sllm::Result<std::unique_ptr<sllm::Chat>> r = [&] {
              py::gil_scoped_release nogil;
              return sllm::Chat::load(std::move(model), path);
            }();
            return check(std::move(r));
          },
          py::arg("model"), py::arg("path"))
      .def(
          "send",
          [](sllm::Chat& c, const py::bytes& user, int64_t max_tokens,
             std::vector<std::string> stop, py::object on_text, Interrupt* interrupt) {
            const std::string text = user;
            std::atomic<bool> own{false};
            const auto opts = stop_options(max_tokens, std::move(stop), interrupt, &own);
            TextSink sink{std::move(on_text), std::nullopt,
                          const_cast<std::atomic<bool>*>(opts.interrupt)};
            const sllm::TextFn fn = sink.make();
            sllm::Result<sllm::ChatReply> r = [&] {
              py::gil_scoped_release nogil;
              return c.send(text, opts, fn);
            }();
            sink.rethrow();
            const sllm::ChatReply reply = check(std::move(r));
            py::dict d = generation_dict(reply);
            d["prompt_tokens"] = reply.prompt_tokens;
            return d;
          },
          py::arg("user"), py::arg("max_tokens") = -1, py::arg("stop") = std::vector<std::string>{},
          py::arg("on_text") = py::none(), py::arg("interrupt") = nullptr)
      .def(
          "save",
          [](const sllm::Chat& c, const std::string& path) {
            sllm::Status s = [&] {
              py::gil_scoped_release nogil;
              return c.save(path);
            }();
            check(s);
          },
          py::arg("path"))
      .def_property_readonly("system", [](const sllm::Chat& c) { return c.options().system; })
      .def_property_readonly("template_name",
                             [](const sllm::Chat& c) { return c.options().template_name; })
      .def_property_readonly("sampling",
                             [](const sllm::Chat& c) {
                               const sllm::SamplingOptions& s = c.options().sampling;
                               return py::make_tuple(s.temperature, s.top_k, s.top_p, s.min_p,
                                                     s.repeat_penalty, s.repeat_last_n, s.seed);
                             })
      .def_property_readonly("n_turns", &sllm::Chat::n_turns)
      .def_property_readonly("n_seen", &sllm::Chat::n_seen)
      .def_property_readonly("cache_bytes", &sllm::Chat::cache_bytes)
      .def_property_readonly("cache_tokens", &sllm::Chat::cache_tokens);

  m.def(
      "perplexity",
      [](ModelPtr model, const std::vector<int64_t>& ids, const std::string& policy, size_t n_sinks,
         size_t window, const std::string& kv_type) {
        const auto tokens = token_list(ids);
        const auto cache = cache_options(policy, n_sinks, window, kv_type);
        sllm::Result<std::vector<double>> r = [&] {
          py::gil_scoped_release nogil;
          return sllm::perplexity(std::move(model), tokens, cache);
        }();
        const std::vector<double> nll = check(std::move(r));
        py::array_t<double> out(static_cast<py::ssize_t>(nll.size()));
        std::copy(nll.begin(), nll.end(), out.mutable_data());
        return out;
      },
      py::arg("model"), py::arg("tokens"), py::arg("policy") = "streaming", py::arg("n_sinks") = 4,
      py::arg("window") = 1020, py::arg("kv_type") = "f32");

  m.def("policy_names", [] {
    return std::vector<std::string>{"dense", "window", "streaming", "recompute"};
  });
  m.def("chat_template_names", &sllm::chat_template_names);
}
