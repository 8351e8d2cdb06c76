// The import pipeline: parse -> versions -> external data -> initializers ->
// topological order -> function inlining -> support scan (one report) ->
// ONNX checker and shape inference -> graph inputs -> node conversion ->
// verify. Every failure leaves as a kiln::Error carrying the file name.
#include "frontends/onnx/onnx_importer.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "frontends/onnx/graph_builder.h"
#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

namespace {

std::string readFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error("is a directory, not an ONNX file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open the file");
  if (uintmax_t size = std::filesystem::file_size(path, ec); !ec) checkModelSize(size);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw Error("cannot read the file");
  return bytes.str();
}

// "x=Nx3xHxW": the --shape binding for an input, its dynamic dims by name
// (the batch as N), for errors that ask for one.
std::string shapeBindingExample(const std::string& input,
                                const google::protobuf::RepeatedPtrField<::onnx::TensorShapeProto_Dimension>& dims) {
  std::string out = input + "=";
  for (int i = 0; i < dims.size(); ++i) {
    if (i) out += "x";
    const auto& d = dims[i];
    if (d.has_dim_value()) out += std::to_string(d.dim_value());
    else if (i == 0) out += "N";
    else out += d.has_dim_param() && !d.dim_param().empty() ? d.dim_param() : "D" + std::to_string(i);
  }
  return out + " with numbers for the named dims";
}

// Graph input types: f32/i64/i32/bool with static dims, except dim 0, which
// may be symbolic (dim_param or no value) and becomes the batch.
TensorType inputType(const ::onnx::ValueInfoProto& info) {
  std::string what = "graph input '" + info.name() + "'";
  if (!info.type().has_tensor_type()) throw Error(what + " is not a tensor");
  const auto& tensorType = info.type().tensor_type();
  TensorType type;
  type.dtype = dtypeFromOnnx(tensorType.elem_type(), what);
  if (!tensorType.has_shape()) throw Error(what + " has no shape; kiln needs static shapes (a symbolic batch is fine)");
  const auto& dims = tensorType.shape().dim();
  for (int i = 0; i < dims.size(); ++i) {
    const auto& d = dims[i];
    if (d.has_dim_value()) {
      if (d.dim_value() < 0) throw Error(what + " has a negative dimension " + std::to_string(d.dim_value()));
      type.shape.dims.push_back(d.dim_value());
    } else if (i == 0) {
      type.shape.dims.push_back(kBatch);
    } else {
      throw Error(what + ": dimension " + std::to_string(i) +
                  (d.has_dim_param() ? " is symbolic ('" + d.dim_param() + "')" : " has no value") +
                  "; only dimension 0 (the batch) may be dynamic: bind the others at compile time, e.g. "
                  "kiln compile --shape " + shapeBindingExample(info.name(), dims));
    }
  }
  type.shape.product(type.shape.hasSymbolicBatch() ? 1 : 0, type.shape.rank());  // throws on overflow
  return type;
}

// Some exporters (paddle2onnx among them) write a dynamic dim as dim_value
// -1; ONNX Runtime reads that as unknown, and so does kiln: such dims of the
// graph's inputs, outputs and value infos lose their value before --shape
// bindings and shape inference (which would otherwise see 8 vs -1 clash).
void clearMinusOneDims(::onnx::GraphProto& g) {
  for (auto* infos : {g.mutable_input(), g.mutable_output(), g.mutable_value_info()})
    for (auto& info : *infos) {
      if (!info.type().has_tensor_type() || !info.type().tensor_type().has_shape()) continue;
      for (auto& dim : *info.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim())
        if (dim.has_dim_value() && dim.dim_value() == -1) dim.clear_dim_value();
    }
}

// Writes the ImportOptions::inputShapes bindings into the declared types of
// the graph inputs, where ONNX's shape inference and inputType read them.
void bindInputShapes(::onnx::GraphProto& g, const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [name, dims] : shapes) {
    std::string what = "graph input '" + name + "'";
    auto& inputs = *g.mutable_input();
    auto input = std::find_if(inputs.begin(), inputs.end(), [&](const auto& v) { return v.name() == name; });
    if (input == inputs.end()) throw Error("a shape is given for '" + name + "', but the model has no input of that name");
    if (std::any_of(g.initializer().begin(), g.initializer().end(), [&](const auto& t) { return t.name() == name; }))
      throw Error(what + " is an initializer; its shape is the constant's");
    if (!input->type().has_tensor_type()) throw Error(what + " is not a tensor");
    auto& tensorType = *input->mutable_type()->mutable_tensor_type();
    // An input without a declared shape has unknown dims of the given rank.
    if (!tensorType.has_shape())
      for (size_t d = 0; d < dims.size(); ++d) tensorType.mutable_shape()->add_dim();
    auto& modelDims = *tensorType.mutable_shape()->mutable_dim();
    if (static_cast<size_t>(modelDims.size()) != dims.size())
      throw Error(what + " has rank " + std::to_string(modelDims.size()) + ", the given shape has rank " +
                  std::to_string(dims.size()));
    for (int d = 0; d < modelDims.size(); ++d) {
      auto& dim = modelDims[d];
      int64_t given = dims[static_cast<size_t>(d)];
      if (d == 0 && (given == kBatch || !dim.has_dim_value())) continue;  // the batch stays as the model has it
      if (given < 0)
        throw Error(what + ": dim " + std::to_string(d) + " needs a size; only dim 0 (the batch) may stay symbolic");
      if (dim.has_dim_value() && dim.dim_value() != given)
        throw Error(what + ": dim " + std::to_string(d) + " is " + std::to_string(dim.dim_value()) +
                    " in the model, the given shape says " + std::to_string(given));
      dim.set_dim_value(given);  // also clears a dim_param
    }
  }
}

std::set<std::string> valueNames(const ::onnx::GraphProto& g, const std::vector<FlatNode>& nodes) {
  std::set<std::string> names;
  for (const auto& v : g.input()) names.insert(v.name());
  for (const auto& t : g.initializer()) names.insert(t.name());
  for (const FlatNode& n : nodes) names.insert(n.proto.output().begin(), n.proto.output().end());
  return names;
}

std::map<std::string, Tensor> convertInitializers(const ::onnx::GraphProto& g) {
  std::map<std::string, Tensor> out;
  for (const auto& t : g.initializer()) {
    if (out.count(t.name())) throw Error("initializer '" + t.name() + "' is defined twice");
    out[t.name()] = convertTensor(t);
  }
  return out;
}

Graph buildGraph(const ::onnx::GraphProto& g, const std::vector<FlatNode>& nodes,
                 std::map<std::string, Tensor> initializers) {
  Graph graph;
  if (!g.name().empty()) graph.name = g.name();
  GraphBuilder b(graph, valueNames(g, nodes));
  for (auto& [name, tensor] : initializers) b.bind(name, b.addConstant(name, std::move(tensor)));
  for (const auto& in : g.input())
    if (!initializers.count(in.name())) b.bind(in.name(), graph.addInput(in.name(), inputType(in)));

  Issues issues;
  for (const FlatNode& n : nodes) {
    bool skip = std::any_of(n.proto.input().begin(), n.proto.input().end(),
                            [&](const std::string& in) { return b.isUnavailable(in); });
    try {
      if (!skip) convertNode(n, b);
    } catch (const Unsupported& u) {
      issues.add(nodeWhere(n.label, n.proto.op_type()), u.what);
      skip = true;
    } catch (const Error& e) {
      // Errors from shared code (tensors, shapes) know no node yet.
      if (!e.site().node.empty()) throw;
      throw Error(e.message(), ErrorSite{"", n.label, n.proto.op_type()});
    }
    if (skip)
      for (const std::string& out : n.proto.output()) b.markUnavailable(out);
  }
  issues.throwIfAny();
  for (const auto& out : g.output()) {
    Value* v = b.lookup(out.name(), {});
    if (b.isBatchTainted(v)) throw Error("graph output '" + out.name() + "': " + kBatchArithmeticMessage);
    graph.addOutput(v);
  }
  graph.pruneValues();
  verify(graph);
  return graph;
}

Graph importModel(::onnx::ModelProto model, const std::string& baseDir, const ImportOptions& options) {
  Issues issues;
  int64_t opset = checkVersions(model, issues);
  ::onnx::GraphProto& g = *model.mutable_graph();
  clearMinusOneDims(g);
  bindInputShapes(g, options.inputShapes);
  if (g.sparse_initializer_size() > 0) issues.add("model", "sparse initializers are not supported");
  loadExternalData(g, baseDir);
  // Before ONNX's checker, whose messages on bad dims are misleading.
  std::map<std::string, Tensor> initializers = convertInitializers(g);
  sortNodes(g);
  std::vector<FlatNode> nodes = flattenGraph(model, opset, KerasOps::Keep);
  std::set<std::string> used;
  for (const FlatNode& n : nodes) used.insert(n.proto.input().begin(), n.proto.input().end());
  for (const auto& out : g.output()) used.insert(out.name());
  for (const FlatNode& n : nodes) checkSupport(n, used, issues);
  // Before ONNX's checker: it stops at the first op it does not know, while
  // kiln reports every unsupported feature at once.
  issues.throwIfAny();
  runOnnxChecks(model, flattenGraph(model, opset, KerasOps::Inline));
  return buildGraph(g, nodes, std::move(initializers));
}

// Runs `fn`, turning every failure into a kiln::Error naming `file`.
template <class Fn>
auto withFileErrors(const std::string& file, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Error& e) {
    throw e.withFile(file);
  } catch (const Unsupported& u) {
    throw Error("unsupported model: " + u.what, ErrorSite{file, "", ""});
  } catch (const std::bad_alloc&) {
    throw Error("out of memory while importing", ErrorSite{file, "", ""});
  } catch (const std::exception& e) {
    throw Error(e.what(), ErrorSite{file, "", ""});
  }
}

}  // namespace

Graph importModelBytes(const std::string& bytes, const std::string& displayName, const std::string& baseDir,
                       const ImportOptions& options) {
  return withFileErrors(displayName, [&] { return importModel(parseModel(bytes), baseDir, options); });
}

Graph importModelFile(const std::string& path, const ImportOptions& options) {
  return withFileErrors(path, [&] {
    std::string dir = std::filesystem::path(path).parent_path().string();
    return importModel(parseModel(readFile(path)), dir.empty() ? "." : dir, options);
  });
}

Tensor loadTensorProtoFile(const std::string& path) {
  return withFileErrors(path, [&] {
    ::onnx::TensorProto t;
    if (!t.ParseFromString(readFile(path))) throw Error("truncated or corrupt protobuf: not a TensorProto");
    return convertTensor(t);
  });
}

}  // namespace kiln::onnx_import
