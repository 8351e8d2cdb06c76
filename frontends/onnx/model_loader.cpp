// Model loading and model-level validation: protobuf parsing with a clear
// diagnosis of non-model files, IR/opset versions (models of opsets below 11
// upgraded by ONNX's version converter), external initializer data (confined
// to the model's folder), topological ordering of the main graph, and ONNX's
// own checker and shape inference, preceded by checks of the values that
// inference divides by or indexes with unchecked.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>
#include <onnx/version_converter/convert.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <unordered_map>

#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

namespace fs = std::filesystem;

namespace {

bool startsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(),
                    [](char want, char got) { return std::tolower(static_cast<unsigned char>(got)) == want; });
}

// Names the kind of text file `bytes` is, or "" when it looks binary. Such
// files are the usual stand-ins for a model: an un-pulled git-LFS pointer or
// an HTML error page saved by a download.
std::string describeTextFile(const std::string& bytes) {
  std::string_view head(bytes.data(), std::min<size_t>(bytes.size(), 512));
  if (head.starts_with("version https://git-lfs"))
    return "a git-LFS pointer file, not the model itself (run `git lfs pull` to fetch it)";
  std::string_view trimmed = head;
  if (trimmed.starts_with("\xEF\xBB\xBF")) trimmed.remove_prefix(3);
  while (!trimmed.empty() && std::isspace(static_cast<unsigned char>(trimmed.front()))) trimmed.remove_prefix(1);
  if (startsWithNoCase(trimmed, "<!doctype html") || startsWithNoCase(trimmed, "<html"))
    return "an HTML page, not an ONNX model (a failed download?)";
  bool text = std::all_of(head.begin(), head.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 || c == '\n' || c == '\r' || c == '\t';
  });
  return text ? "a text file, not a binary ONNX model" : "";
}

ErrorSite siteOf(const ::onnx::NodeProto& n, size_t index) { return {"", nodeLabel(n, index), n.op_type()}; }

}  // namespace

void checkModelSize(uintmax_t bytes) {
  if (bytes > static_cast<uintmax_t>(INT_MAX))
    throw Error("the file is larger than protobuf's 2 GiB message limit; store the weights as external data");
}

::onnx::ModelProto parseModel(const std::string& bytes) {
  if (bytes.empty()) throw Error("the file is empty, not an ONNX model");
  std::string textKind = describeTextFile(bytes);
  if (!textKind.empty() && (textKind.find("git-LFS") != std::string::npos || textKind.find("HTML") != std::string::npos))
    throw Error("this is " + textKind);
  checkModelSize(bytes.size());
  google::protobuf::io::ArrayInputStream stream(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&stream);
  coded.SetTotalBytesLimit(INT_MAX);
  ::onnx::ModelProto model;
  bool parsed = model.ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
  if (!parsed || !model.has_graph()) {
    if (!textKind.empty()) throw Error("this is " + textKind);
    throw Error(parsed ? "the protobuf holds no graph: not an ONNX model"
                       : "truncated or corrupt protobuf: not a valid ONNX model (" + std::to_string(bytes.size()) +
                             " bytes)");
  }
  return model;
}

namespace {

int64_t parseOffset(const std::string& text, const std::string& what) {
  int64_t v = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    throw Error(what + " '" + text + "' is not a non-negative integer");
  return v;
}

// Resolves `location` inside `baseDir`, refusing anything that could read
// outside it: absolute paths, `..` components, symlinks leading out.
fs::path resolveInside(const std::string& location, const std::string& baseDir, const std::string& tensorName) {
  std::string what = "external data path '" + location + "' of initializer '" + tensorName + "'";
  fs::path rel(location);
  if (location.empty()) throw Error("initializer '" + tensorName + "' has external data without a location");
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    throw Error(what + " is absolute: external data must lie inside the model's folder");
  for (const fs::path& part : rel)
    if (part == "..") throw Error(what + " contains '..': external data must lie inside the model's folder");
  std::error_code ec;
  fs::path base = fs::canonical(baseDir.empty() ? "." : baseDir, ec);
  if (ec) throw Error("cannot resolve the model's folder '" + baseDir + "': " + ec.message());
  fs::path full = fs::canonical(base / rel, ec);
  if (ec) throw Error(what + " cannot be opened: " + ec.message());
  auto [baseEnd, fullIt] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (baseEnd != base.end())
    throw Error(what + " leads to '" + full.string() + "' through a symlink: external data must lie inside the model's folder");
  if (!fs::is_regular_file(full, ec)) throw Error(what + " is not a regular file");
  return full;
}

}  // namespace

void loadExternalData(::onnx::GraphProto& graph, const std::string& baseDir) {
  for (::onnx::TensorProto& t : *graph.mutable_initializer()) {
    if (t.data_location() != ::onnx::TensorProto::EXTERNAL) continue;
    if (baseDir.empty())
      throw Error("initializer '" + t.name() + "' uses external data, which needs the model loaded from a file");
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& entry : t.external_data()) {
      if (entry.key() == "location") location = entry.value();
      else if (entry.key() == "offset") offset = parseOffset(entry.value(), "external data offset");
      else if (entry.key() == "length") length = parseOffset(entry.value(), "external data length");
    }
    fs::path file = resolveInside(location, baseDir, t.name());
    DType dtype = dtypeFromOnnx(t.data_type(), "initializer '" + t.name() + "'");
    size_t need = static_cast<size_t>(tensorShape(t, dtype).numElements()) * dtypeSize(dtype);
    if (length >= 0 && static_cast<size_t>(length) != need)
      throw Error("initializer '" + t.name() + "': external data length " + std::to_string(length) + " does not match its dims (" +
                  std::to_string(need) + " bytes)");
    std::error_code ec;
    uintmax_t size = fs::file_size(file, ec);
    if (ec || size < static_cast<uintmax_t>(offset) || size - static_cast<uintmax_t>(offset) < need)
      throw Error("external data file '" + location + "' of initializer '" + t.name() + "' is too short: needs " +
                  std::to_string(need) + " bytes at offset " + std::to_string(offset) + ", the file has " +
                  std::to_string(ec ? 0 : size));
    std::ifstream in(file, std::ios::binary);
    std::string data(need, '\0');
    in.seekg(offset);
    if (!in.read(data.data(), static_cast<std::streamsize>(need)))
      throw Error("cannot read external data file '" + location + "' of initializer '" + t.name() + "'");
    t.set_raw_data(std::move(data));
    t.clear_external_data();
    t.set_data_location(::onnx::TensorProto::DEFAULT);
  }
}

void sortNodes(::onnx::GraphProto& graph) {
  std::set<std::string> sources;
  for (const auto& in : graph.input()) sources.insert(in.name());
  for (const auto& init : graph.initializer()) sources.insert(init.name());
  const int count = graph.node_size();
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < count; ++i) {
    const auto& n = graph.node(i);
    for (const std::string& out : n.output()) {
      if (out.empty()) continue;
      if (sources.count(out))
        throw Error("output '" + out + "' is already a graph input or initializer (duplicate output name)", siteOf(n, i));
      auto [it, fresh] = producer.emplace(out, i);
      if (!fresh)
        throw Error("output '" + out + "' is also produced by node '" + nodeLabel(graph.node(it->second), it->second) +
                        "' (duplicate output name)",
                    siteOf(n, i));
    }
  }
  // Kahn's algorithm; ready nodes are taken in file order so a sorted graph
  // keeps its order.
  std::vector<int> pending(count, 0);
  std::vector<std::vector<int>> consumers(count);
  for (int i = 0; i < count; ++i) {
    std::set<int> deps;
    for (const std::string& in : graph.node(i).input()) {
      if (in.empty() || sources.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        throw Error("input '" + in + "' is produced by no node and is not a graph input or initializer (dangling input)",
                    siteOf(graph.node(i), i));
      deps.insert(it->second);
    }
    pending[i] = static_cast<int>(deps.size());
    for (int d : deps) consumers[d].push_back(i);
  }
  std::set<int> ready;
  for (int i = 0; i < count; ++i)
    if (pending[i] == 0) ready.insert(i);
  std::vector<int> order;
  while (!ready.empty()) {
    int i = *ready.begin();
    ready.erase(ready.begin());
    order.push_back(i);
    for (int c : consumers[i])
      if (--pending[c] == 0) ready.insert(c);
  }
  if (static_cast<int>(order.size()) != count)
    for (int i = 0; i < count; ++i)
      if (pending[i] != 0) throw Error("the graph has a cycle through this node", siteOf(graph.node(i), i));
  for (const auto& out : graph.output())
    if (!sources.count(out.name()) && !producer.count(out.name()))
      throw Error("graph output '" + out.name() + "' is produced by no node");
  google::protobuf::RepeatedPtrField<::onnx::NodeProto> sorted;
  for (int i : order) *sorted.Add() = std::move(*graph.mutable_node(i));
  graph.mutable_node()->Swap(&sorted);
}

namespace {

// Sliding-window ops whose ONNX shape inference (convPoolShapeInference and
// its ConvTranspose twin) divides by strides and trusts kernel_shape,
// dilations and pads. The value is the input holding the kernel, whose dims
// stand in for a missing kernel_shape; -1 where kernel_shape is required.
const std::map<std::string, int>& windowOps() {
  static const std::map<std::string, int> ops = {{"Conv", 1},        {"ConvTranspose", 1}, {"ConvInteger", 1},
                                                 {"QLinearConv", 3}, {"MaxPool", -1},      {"AveragePool", -1},
                                                 {"LpPool", -1}};
  return ops;
}

const int* windowKernelInput(const ::onnx::NodeProto& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") return nullptr;
  auto it = windowOps().find(n.op_type());
  return it == windowOps().end() ? nullptr : &it->second;
}

const ::onnx::AttributeProto* findAttribute(const ::onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

std::string listOf(const google::protobuf::RepeatedField<int64_t>& values) {
  std::string out = "[";
  for (int64_t v : values) out += (out.size() > 1 ? ", " : "") + std::to_string(v);
  return out + "]";
}

// A zero stride divides by zero inside ONNX's shape inference (SIGFPE); the
// other values make its window arithmetic meaningless.
void checkWindowAttributes(const FlatNode& n) {
  ErrorSite site{"", n.label, n.proto.op_type()};
  for (const char* name : {"strides", "dilations", "kernel_shape", "pads"}) {
    const ::onnx::AttributeProto* a = findAttribute(n.proto, name);
    if (!a) continue;
    int64_t least = std::string_view(name) == "pads" ? 0 : 1;
    for (int64_t v : a->ints())
      if (v < least)
        throw Error("attribute '" + a->name() + "' is " + listOf(a->ints()) + "; " +
                        (least == 0 ? "pads must not be negative" : "each value must be at least 1"),
                    site);
  }
}

// What ONNX's window inference reads from its inputs' inferred shapes
// without checking: the kernel input's rank (each dim past the second
// indexes the data input's dims), and, for auto_pad with a stride above 1,
// the data input's spatial dims (it counts down from each dim by the stride,
// one step at a time).
struct InputShapeNeeds {
  bool kernelRank = false;
  bool spatialSize = false;
};

InputShapeNeeds inputShapeNeeds(const ::onnx::NodeProto& n, int kernelInput) {
  InputShapeNeeds needs;
  needs.kernelRank = kernelInput >= 0 && !findAttribute(n, "kernel_shape");
  const ::onnx::AttributeProto* autoPad = findAttribute(n, "auto_pad");
  const ::onnx::AttributeProto* strides = findAttribute(n, "strides");
  needs.spatialSize = autoPad && autoPad->s() != "VALID" && !findAttribute(n, "pads") && strides &&
                      std::any_of(strides->ints().begin(), strides->ints().end(), [](int64_t s) { return s > 1; });
  return needs;
}

::onnx::ShapeInferenceOptions inferenceOptions() {
  // strict mode turns inconsistent shapes into errors here rather than odd IR later.
  return ::onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict_mode=*/1, /*data_prop=*/false);
}

void inferShapes(::onnx::ModelProto& model) {
  try {
    ::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), inferenceOptions());
  } catch (const std::exception& e) {
    throw Error(std::string("ONNX shape inference fails: ") + e.what());
  }
}

// Replaces the initializers `replace` picks by graph inputs of their type
// and dims (values inference must not read: weights that need no folding,
// data not loaded yet).
template <typename Pick>
void initializersToInputs(::onnx::GraphProto& g, Pick replace) {
  std::set<std::string> inputs;
  for (const auto& in : g.input()) inputs.insert(in.name());
  google::protobuf::RepeatedPtrField<::onnx::TensorProto> kept;
  for (::onnx::TensorProto& t : *g.mutable_initializer()) {
    if (!replace(t)) {
      *kept.Add() = std::move(t);
      continue;
    }
    if (inputs.count(t.name())) continue;
    ::onnx::ValueInfoProto& in = *g.add_input();
    in.set_name(t.name());
    auto& type = *in.mutable_type()->mutable_tensor_type();
    type.set_elem_type(t.data_type());
    for (int64_t d : t.dims()) type.mutable_shape()->add_dim()->set_dim_value(d);
  }
  g.mutable_initializer()->Swap(&kept);
}

// ONNX shape inference over a prefix of the inlined nodes, to learn the
// shapes a window node's inputs will have before ONNX's own inference of the
// node runs. Float initializers become typed graph inputs: inference needs
// their dims, not their weights, and the model is inferred once per node.
class PrefixInference {
 public:
  explicit PrefixInference(const ::onnx::ModelProto& model) : base_(model) {
    ::onnx::GraphProto& g = *base_.mutable_graph();
    base_.clear_functions();
    g.clear_node();
    g.clear_output();
    initializersToInputs(g, [](const ::onnx::TensorProto& t) { return t.data_type() == ::onnx::TensorProto::FLOAT; });
  }

  // The graph of the first `count` nodes, its value_info inferred.
  ::onnx::ModelProto inferred(const std::vector<FlatNode>& nodes, size_t count) const {
    ::onnx::ModelProto prefix = base_;
    for (size_t k = 0; k < count; ++k) *prefix.mutable_graph()->add_node() = nodes[k].proto;
    inferShapes(prefix);
    return prefix;
  }

  // The inferred shapes of every value the first `count` nodes make or read.
  std::map<std::string, ::onnx::TensorShapeProto> shapesBefore(const std::vector<FlatNode>& nodes, size_t count) const {
    const ::onnx::ModelProto prefix = inferred(nodes, count);
    std::map<std::string, ::onnx::TensorShapeProto> shapes;
    auto note = [&](const ::onnx::ValueInfoProto& v) {
      if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
        shapes[v.name()] = v.type().tensor_type().shape();
    };
    for (const auto& v : prefix.graph().input()) note(v);
    for (const auto& v : prefix.graph().value_info()) note(v);
    for (const auto& t : prefix.graph().initializer()) {
      ::onnx::TensorShapeProto& shape = shapes[t.name()];
      for (int64_t d : t.dims()) shape.add_dim()->set_dim_value(d);
    }
    return shapes;
  }

 private:
  ::onnx::ModelProto base_;
};

void checkWindowInputs(const FlatNode& n, int kernelInput, InputShapeNeeds needs,
                       const std::map<std::string, ::onnx::TensorShapeProto>& shapes) {
  ErrorSite site{"", n.label, n.proto.op_type()};
  auto shapeOf = [&](int i) -> const ::onnx::TensorShapeProto* {
    if (i >= n.proto.input_size()) return nullptr;
    auto it = shapes.find(n.proto.input(i));
    return it == shapes.end() ? nullptr : &it->second;
  };
  const ::onnx::TensorShapeProto* x = shapeOf(0);
  if (!x) return;
  if (needs.kernelRank)
    if (const ::onnx::TensorShapeProto* w = shapeOf(kernelInput); w && w->dim_size() != x->dim_size())
      throw Error("kernel rank mismatch: kernel input '" + n.proto.input(kernelInput) + "' has rank " +
                      std::to_string(w->dim_size()) + " but input '" + n.proto.input(0) + "' has rank " +
                      std::to_string(x->dim_size()),
                  site);
  if (needs.spatialSize) {
    // kiln's window ops take f32, so no input holds more elements than this.
    constexpr int64_t kMaxElements = kMaxTensorBytes / static_cast<int64_t>(sizeof(float));
    for (int i = 2; i < x->dim_size(); ++i)
      if (x->dim(i).has_dim_value() && x->dim(i).dim_value() > kMaxElements)
        throw Error("input '" + n.proto.input(0) + "' has spatial dimension " + std::to_string(x->dim(i).dim_value()) +
                        ", larger than any tensor kiln can hold (" + std::to_string(kMaxTensorBytes >> 30) + " GiB of f32)",
                    site);
  }
}

bool isDefaultDomain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }

// The opset the model imports for the default domain (the last import of
// it), 0 when none.
int64_t defaultOpset(const ::onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const auto& imp : model.opset_import())
    if (isDefaultDomain(imp.domain())) opset = imp.version();
  return opset;
}

// Rejects, naming the node, the window attributes and input shapes ONNX's
// shape inference would divide by or index with unchecked.
void guardShapeInference(const ::onnx::ModelProto& model, const std::vector<FlatNode>& inlined) {
  for (const FlatNode& n : inlined)
    if (windowKernelInput(n.proto)) checkWindowAttributes(n);
  // Shapes come from inference itself, so each window node that needs its
  // inputs checked is checked against an inference of the nodes before it.
  std::optional<PrefixInference> prefix;
  // Gemm's inference before opset 7 reads dims 0 and 1 of A and B unchecked.
  const int64_t opset = defaultOpset(model);
  for (size_t i = 0; i < inlined.size(); ++i) {
    const ::onnx::NodeProto& node = inlined[i].proto;
    if (opset < 7 && node.op_type() == "Gemm") {
      if (!prefix) prefix.emplace(model);
      const std::map<std::string, ::onnx::TensorShapeProto> shapes = prefix->shapesBefore(inlined, i);
      for (int k = 0; k < std::min(node.input_size(), 2); ++k)
        if (auto it = shapes.find(node.input(k)); it != shapes.end() && it->second.dim_size() != 2)
          throw Error("input '" + node.input(k) + "' has rank " + std::to_string(it->second.dim_size()) +
                          ", expected a matrix (rank 2)",
                      ErrorSite{"", inlined[i].label, "Gemm"});
    }
    const int* kernelInput = windowKernelInput(node);
    if (!kernelInput) continue;
    InputShapeNeeds needs = inputShapeNeeds(inlined[i].proto, *kernelInput);
    if (!needs.kernelRank && !needs.spatialSize) continue;
    if (!prefix) prefix.emplace(model);
    checkWindowInputs(inlined[i], *kernelInput, needs, prefix->shapesBefore(inlined, i));
  }
}

}  // namespace

void runOnnxChecks(const ::onnx::ModelProto& model, const std::vector<FlatNode>& inlined) {
  try {
    ::onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw Error(std::string("the ONNX checker rejects the model: ") + e.what());
  }
  guardShapeInference(model, inlined);
  // Inference annotates value_info, so it runs on a copy.
  ::onnx::ModelProto annotated = model;
  inferShapes(annotated);
}

namespace {


std::string acceptedOpsets() {
  return "kiln imports opsets " + std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ", and opsets " +
         std::to_string(kMinConvertedOpset) + " to " + std::to_string(kMinOpset - 1) +
         " upgraded by ONNX's version converter";
}

// Whether kiln's support scan finds nothing to report in the model as it is.
// A model it rejects is not converted, so that the report names the ops the
// file holds (Upsample, say, not the Resize the converter makes of it).
bool passesSupportScan(const ::onnx::ModelProto& model, int64_t opset) {
  std::vector<FlatNode> nodes = flattenGraph(model, opset, KerasOps::Keep);
  std::set<std::string> used;
  for (const FlatNode& n : nodes) used.insert(n.proto.input().begin(), n.proto.input().end());
  for (const auto& out : model.graph().output()) used.insert(out.name());
  Issues found;
  for (const FlatNode& n : nodes) checkSupport(n, used, found);
  return found.empty();
}

// ONNX's assertions read "FILE:LINE: FUNCTION: Assertion `COND` failed: WHAT",
// at times nested; this keeps WHAT. Opsets appear there as "$9".
std::string converterMessage(std::string what) {
  static const std::regex location(R"(^\S+:\d+: \S+: (Assertion `.*?` failed: ?)?)");
  static const std::regex version(R"(\$(\d+))");
  std::smatch m;
  while (std::regex_search(what, m, location)) what = m.suffix();
  return std::regex_replace(what, version, "$1");
}

// Why ONNX's converter cannot upgrade `model` to `opset`; nullopt when it can.
std::optional<std::string> conversionFailure(const ::onnx::ModelProto& model, int64_t opset) {
  try {
    ::onnx::version_conversion::ConvertVersion(model, static_cast<int>(opset));
    return std::nullopt;
  } catch (const std::exception& e) {
    return converterMessage(e.what());
  }
}

// The model with only its first `count` nodes, and no outputs.
::onnx::ModelProto prefixOf(const ::onnx::ModelProto& model, int count) {
  ::onnx::ModelProto prefix = model;
  ::onnx::GraphProto& g = *prefix.mutable_graph();
  g.mutable_node()->DeleteSubrange(count, g.node_size() - count);
  g.clear_output();
  return prefix;
}

// Reports the node the converter fails on. It adapts the nodes in order, so
// once a prefix of the graph fails every longer one does: the shortest
// failing prefix, found by bisection, ends with that node.
void reportConversionFailure(const ::onnx::ModelProto& model, int64_t opset, const std::string& message,
                             Issues& issues) {
  const std::string what = "ONNX's version converter cannot upgrade it from opset " + std::to_string(opset) + " to " +
                           std::to_string(kMinOpset);
  int converts = 0, fails = model.graph().node_size();
  std::optional<std::string> failure = conversionFailure(prefixOf(model, fails), kMinOpset);
  // Not a node's fault when the whole graph converts without its outputs, or
  // when no node at all does (the inputs or initializers are to blame).
  if (!failure || fails == 0 || conversionFailure(prefixOf(model, 0), kMinOpset)) {
    issues.add("model", "ONNX's version converter cannot upgrade the model from opset " + std::to_string(opset) +
                            " to " + std::to_string(kMinOpset) + ": " + message + " (" + acceptedOpsets() + ")");
    return;
  }
  while (fails - converts > 1) {
    const int count = converts + (fails - converts) / 2;
    if (std::optional<std::string> shorter = conversionFailure(prefixOf(model, count), kMinOpset)) {
      fails = count;
      failure = std::move(shorter);
    } else {
      converts = count;
    }
  }
  const ::onnx::NodeProto& n = model.graph().node(fails - 1);
  issues.add(nodeWhere(n.name(), n.op_type()), what + ": " + *failure + " (" + acceptedOpsets() + ")");
}

// "so ONNX's version converter cannot upgrade the model ...": the end of the
// issues that stop a conversion before it starts.
std::string cannotUpgrade(int64_t opset) {
  return "so ONNX's version converter cannot upgrade the model from opset " + std::to_string(opset) + " (" +
         acceptedOpsets() + ")";
}

// Sorts the graph and names its unnamed nodes by their labels (the nodes the
// converter makes are unnamed, so the file's keep the labels they would have
// had); false, with issues, for nodes the converter cannot take.
bool prepareForConversion(::onnx::GraphProto& g, int64_t opset, Issues& issues) {
  sortNodes(g);  // the converter walks the nodes in order
  bool convertible = true;
  for (int i = 0; i < g.node_size(); ++i) {
    ::onnx::NodeProto& n = *g.mutable_node(i);
    if (n.name().empty()) n.set_name(nodeLabel(n, static_cast<size_t>(i)));
    const std::string where = nodeWhere(n.name(), n.op_type());
    // The converter knows ONNX's ops only: it throws on any other op name
    // (function calls, Keras composites).
    if (!isDefaultDomain(n.domain())) {
      issues.add(where, "the op is of domain '" + n.domain() + "', not ONNX's, " + cannotUpgrade(opset));
      convertible = false;
      continue;
    }
    const ::onnx::OpSchema* schema = ::onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(opset), "");
    if (!schema) {
      issues.add(where, "ONNX has no op '" + n.op_type() + "' at opset " + std::to_string(opset) + ", " +
                            cannotUpgrade(opset));
      convertible = false;
      continue;
    }
    // The converter's adapters trust the node's form: malformed nodes are
    // the checker's to report, not the converter's to crash on.
    try {
      schema->Verify(n);
    } catch (const std::exception& e) {
      issues.add(where, "the ONNX checker rejects it at opset " + std::to_string(opset) + ": " + e.what());
      convertible = false;
      continue;
    }
    // The converter's opset-11 Pad adapter reads a constant Pad's `value` as
    // if it were required (onnx 1.12; torch.onnx leaves it out). Written out,
    // the default means the same.
    const ::onnx::AttributeProto* mode = findAttribute(n, "mode");
    if (n.op_type() == "Pad" && schema->attributes().count("value") && !findAttribute(n, "value") &&
        (!mode || mode->s() == "constant"))
      *n.add_attribute() = schema->attributes().at("value").default_value;
  }
  return convertible;
}

// Writes the value_info ONNX's shape inference gives `model`: the converter's
// adapters read the shapes of inputs (opset-6 broadcasting, Gemm's C) but
// infer none. Initializers count by their dims only (external data is not
// loaded yet).
void annotateShapes(::onnx::ModelProto& model, int64_t opset) {
  std::vector<FlatNode> nodes = flattenGraph(model, opset, KerasOps::Inline);
  guardShapeInference(model, nodes);
  *model.mutable_graph()->mutable_value_info() = PrefixInference(model).inferred(nodes, nodes.size()).graph().value_info();
}

// ONNX's adapter of opset-6 broadcasting (broadcast=1, B lined up with A at
// `axis`) lines B up with A's first dims whatever the axis (onnx 1.12): only
// axis 0 and B lined up with A's last dims come out right. False, with
// issues, for the other axes.
bool checkLegacyBroadcasts(const ::onnx::GraphProto& g, int64_t opset, Issues& issues) {
  std::map<std::string, int> ranks;
  for (const auto* values : {&g.input(), &g.value_info()})
    for (const ::onnx::ValueInfoProto& v : *values)
      if (v.type().tensor_type().has_shape()) ranks[v.name()] = v.type().tensor_type().shape().dim_size();
  for (const ::onnx::TensorProto& t : g.initializer()) ranks[t.name()] = t.dims_size();
  bool convertible = true;
  for (const ::onnx::NodeProto& n : g.node()) {
    const ::onnx::AttributeProto* broadcast = findAttribute(n, "broadcast");
    const ::onnx::AttributeProto* axis = findAttribute(n, "axis");
    if (!broadcast || broadcast->i() == 0 || !axis || axis->i() == 0 || n.input_size() != 2) continue;
    auto a = ranks.find(n.input(0)), b = ranks.find(n.input(1));
    if (a == ranks.end() || b == ranks.end() || axis->i() == a->second - b->second) continue;
    issues.add(nodeWhere(n.name(), n.op_type()),
               "ONNX's version converter would line input '" + n.input(1) + "' (broadcast along axis " +
                   std::to_string(axis->i()) + ") up with axis 0, so kiln does not upgrade the model from opset " +
                   std::to_string(opset) + " (" + acceptedOpsets() + ")");
    convertible = false;
  }
  return convertible;
}

// The model with its externally stored initializers as typed graph inputs
// instead: the checker would look for their files relative to the working
// directory, and they are read later.
::onnx::ModelProto withoutExternalData(const ::onnx::ModelProto& model) {
  ::onnx::ModelProto copy = model;
  initializersToInputs(*copy.mutable_graph(), [](const ::onnx::TensorProto& t) {
    return t.data_location() == ::onnx::TensorProto::EXTERNAL;
  });
  return copy;
}

// The scales a converted Resize reads, when they are a constant (an
// initializer or a Constant node's value); nullopt otherwise.
std::optional<std::vector<float>> constantScales(const ::onnx::GraphProto& g, const std::string& name) {
  const ::onnx::TensorProto* t = nullptr;
  for (const ::onnx::TensorProto& init : g.initializer())
    if (init.name() == name) t = &init;
  for (const ::onnx::NodeProto& n : g.node())
    if (n.op_type() == "Constant" && n.output_size() == 1 && n.output(0) == name)
      if (const ::onnx::AttributeProto* value = findAttribute(n, "value"); value && value->has_t()) t = &value->t();
  if (!t || t->data_location() == ::onnx::TensorProto::EXTERNAL) return std::nullopt;
  try {
    const Tensor scales = convertTensor(*t);
    if (scales.dtype() != DType::F32) return std::nullopt;
    return std::vector<float>(scales.data<float>(), scales.data<float>() + scales.numElements());
  } catch (const Error&) {
    return std::nullopt;
  }
}

// Upsample (opsets 7-9) and Resize-10 sample output x at input x / scale
// and, in nearest mode, take the input index below it when upsampling and
// above it when downsampling (as ONNX Runtime does, and ONNX's opset-10
// test data shows). The converter's opset-11 Resizes would take the
// opset-11 defaults instead (half_pixel, round_prefer_floor), which agree
// only for nearest at integer scales; this writes the old semantics out.
// Every Resize of a converted model is such a Resize. False, with issues,
// for a nearest Resize that scales some axes up and others down (one
// nearest_mode cannot say that).
bool keepLegacyResizeSemantics(::onnx::GraphProto& g, Issues& issues) {
  bool representable = true;
  for (::onnx::NodeProto& n : *g.mutable_node()) {
    if (n.op_type() != "Resize" || findAttribute(n, "coordinate_transformation_mode")) continue;
    ::onnx::AttributeProto* transform = n.add_attribute();
    transform->set_name("coordinate_transformation_mode");
    transform->set_type(::onnx::AttributeProto::STRING);
    transform->set_s("asymmetric");
    const ::onnx::AttributeProto* mode = findAttribute(n, "mode");
    std::optional<std::vector<float>> scales;
    if ((mode && mode->s() != "nearest") || n.input_size() < 3 || !(scales = constantScales(g, n.input(2))))
      continue;  // non-constant scales are the importer's to report
    const bool up = std::any_of(scales->begin(), scales->end(), [](float s) { return s > 1; });
    const bool down = std::any_of(scales->begin(), scales->end(), [](float s) { return s < 1; });
    if (up && down) {
      issues.add(nodeWhere(n.name(), "Resize"),
                 "a nearest Upsample/Resize of opset 10 or below that scales some axes up and others down is not "
                 "supported (its rounding differs per axis)");
      representable = false;
      continue;
    }
    ::onnx::AttributeProto* rounding = n.add_attribute();
    rounding->set_name("nearest_mode");
    rounding->set_type(::onnx::AttributeProto::STRING);
    rounding->set_s(down ? "ceil" : "floor");
  }
  return representable;
}

// Upgrades a model of an opset below kMinOpset in place to kMinOpset with
// ONNX's version converter; returns false, the model unchanged, when kiln
// rejects it anyway or it cannot be converted (`issues` then say why).
bool upgradeOpset(::onnx::ModelProto& model, int64_t opset, Issues& issues) {
  // Sparse initializers are reported later; the converter drops them.
  if (model.graph().sparse_initializer_size() > 0 || !passesSupportScan(model, opset)) return false;
  ::onnx::ModelProto input = model;
  if (!prepareForConversion(*input.mutable_graph(), opset, issues)) return false;
  // Shape inference and the converter trust a well-formed model (an input
  // without a type crashes them): the checker goes first, as on import.
  try {
    ::onnx::checker::check_model(withoutExternalData(input));
  } catch (const std::exception& e) {
    issues.add("model", std::string("the ONNX checker rejects the model: ") + e.what());
    return false;
  }
  annotateShapes(input, opset);
  if (!checkLegacyBroadcasts(input.graph(), opset, issues)) return false;
  ::onnx::ModelProto converted;
  try {
    converted = ::onnx::version_conversion::ConvertVersion(input, static_cast<int>(kMinOpset));
  } catch (const std::exception& e) {
    reportConversionFailure(input, opset, converterMessage(e.what()), issues);
    return false;
  }
  if (!keepLegacyResizeSemantics(*converted.mutable_graph(), issues)) return false;
  // The converter keeps tensors in memory only and drops external-data
  // references; those initializers are put back as the file has them.
  std::map<std::string, const ::onnx::TensorProto*> external;
  for (const ::onnx::TensorProto& t : model.graph().initializer())
    if (t.data_location() == ::onnx::TensorProto::EXTERNAL) external[t.name()] = &t;
  for (::onnx::TensorProto& t : *converted.mutable_graph()->mutable_initializer())
    if (auto it = external.find(t.name()); it != external.end()) t = *it->second;
  // The inferred shapes were for the converter; the importer infers its own.
  *converted.mutable_graph()->mutable_value_info() = model.graph().value_info();
  // Older IR versions require every initializer to be a graph input, and the
  // converter adds initializers that are not.
  converted.set_ir_version(std::max(converted.ir_version(), kConvertedIrVersion));
  model = std::move(converted);
  return true;
}

}  // namespace

int64_t checkVersions(::onnx::ModelProto& model, Issues& issues) {
  if (!model.has_ir_version()) throw Error("the model has no ir_version");
  if (model.ir_version() < kMinIrVersion || model.ir_version() > kMaxIrVersion)
    throw Error("IR version " + std::to_string(model.ir_version()) + " is not supported (kiln reads IR versions " +
                std::to_string(kMinIrVersion) + " to " + std::to_string(kMaxIrVersion) + ")");
  int64_t opset = defaultOpset(model);
  if (opset == 0)
    issues.add("model", "no opset import for the default ONNX domain");
  else if (opset >= kMinConvertedOpset && opset < kMinOpset && upgradeOpset(model, opset, issues))
    opset = kMinOpset;
  else if (opset < kMinConvertedOpset || opset > kMaxOpset)
    issues.add("model", "opset " + std::to_string(opset) + " of the default domain is not supported (" +
                            acceptedOpsets() + ")");
  return opset;
}

}  // namespace kiln::onnx_import
