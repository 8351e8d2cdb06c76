// ONNX export (see onnx_export.h): an OnnxGraphWriter over protobuf, the
// SeparableConv2D function, the checker, the file.
#include "trainer/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <set>

#include "trainer/file_output.h"

namespace kiln::train {

namespace {

constexpr int64_t kOpset = 17;
constexpr const char* kKerasDomain = "ai.kiln.keras";

class ProtoGraphWriter : public OnnxGraphWriter {
 public:
  explicit ProtoGraphWriter(::onnx::GraphProto& g) : g_(g) {}

  std::string weight(const std::string& name, const Tensor& value) override {
    ::onnx::TensorProto* t = g_.add_initializer();
    t->set_name(unique(name));
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : value.shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(value.ptr()), value.data.size() * sizeof(float)));
    return t->name();
  }

  std::string node(const std::string& opType, const std::vector<std::string>& inputs, const std::string& name,
                   const std::vector<Attr>& attrs, const std::string& domain) override {
    ::onnx::NodeProto* n = g_.add_node();
    n->set_op_type(opType);
    n->set_name(unique(name + "/node"));
    n->set_domain(domain);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(unique(name));
    for (const Attr& a : attrs) {
      ::onnx::AttributeProto* p = n->add_attribute();
      p->set_name(a.name);
      if (auto* i = std::get_if<int64_t>(&a.value)) {
        p->set_type(::onnx::AttributeProto::INT);
        p->set_i(*i);
      } else if (auto* f = std::get_if<float>(&a.value)) {
        p->set_type(::onnx::AttributeProto::FLOAT);
        p->set_f(*f);
      } else {
        p->set_type(::onnx::AttributeProto::INTS);
        for (int64_t v : std::get<std::vector<int64_t>>(a.value)) p->add_ints(v);
      }
    }
    if (domain == kKerasDomain) usesKerasDomain_ = true;
    return n->output(0);
  }

  bool usesKerasDomain() const { return usesKerasDomain_; }

 private:
  std::string unique(const std::string& base) {
    std::string name = base;
    for (int k = 1; !taken_.insert(name).second; ++k) name = base + "_" + std::to_string(k);
    return name;
  }
  ::onnx::GraphProto& g_;
  std::set<std::string> taken_{"input", "output"};
  bool usesKerasDomain_ = false;
};

void addValueInfo(::onnx::ValueInfoProto* v, const std::string& name, const Dims& perSample) {
  v->set_name(name);
  auto* tensor = v->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(::onnx::TensorProto::FLOAT);
  tensor->mutable_shape()->add_dim()->set_dim_param("N");
  for (int64_t d : perSample) tensor->mutable_shape()->add_dim()->set_dim_value(d);
}

void addRefAttr(::onnx::NodeProto* n, const std::string& name, ::onnx::AttributeProto::AttributeType type) {
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_ref_attr_name(name);
  a->set_type(type);
}

void addSeparableFunction(::onnx::ModelProto& model) {
  ::onnx::FunctionProto* f = model.add_functions();
  f->set_name("SeparableConv2D");
  f->set_domain(kKerasDomain);
  f->set_doc_string("Keras SeparableConv2D: depthwise Conv (group = C) then 1x1 Conv with the bias");
  for (const char* in : {"X", "Wd", "Wp", "B"}) f->add_input(in);
  f->add_output("Y");
  for (const char* a : {"strides", "pads", "dilations", "depth_multiplier", "group"}) f->add_attribute(a);
  ::onnx::OperatorSetIdProto* op = f->add_opset_import();
  op->set_domain("");
  op->set_version(kOpset);
  ::onnx::NodeProto* depthwise = f->add_node();
  depthwise->set_op_type("Conv");
  depthwise->set_name("depthwise");
  depthwise->add_input("X");
  depthwise->add_input("Wd");
  depthwise->add_output("D");
  for (const char* a : {"strides", "pads", "dilations"}) addRefAttr(depthwise, a, ::onnx::AttributeProto::INTS);
  addRefAttr(depthwise, "group", ::onnx::AttributeProto::INT);
  ::onnx::NodeProto* pointwise = f->add_node();
  pointwise->set_op_type("Conv");
  pointwise->set_name("pointwise");
  for (const char* in : {"D", "Wp", "B"}) pointwise->add_input(in);
  pointwise->add_output("Y");
}

}  // namespace

void exportOnnx(const Sequential& model, const std::string& path) {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("kiln-train");
  m.set_producer_version("0.1.0");
  ::onnx::OperatorSetIdProto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(kOpset);
  ::onnx::GraphProto* g = m.mutable_graph();
  g->set_name(model.name());
  addValueInfo(g->add_input(), "input", model.inputShape());
  ProtoGraphWriter writer(*g);
  std::string x = "input";
  for (const auto& layer : model.layers()) x = layer->exportOnnx(writer, x);
  // Rename the last value to "output" (an Identity if it is the input itself).
  if (x == "input") x = writer.node("Identity", {x}, "identity", {}, "");
  for (auto& n : *g->mutable_node())
    for (std::string& out : *n.mutable_output())
      if (out == x) out = "output";
  addValueInfo(g->add_output(), "output", model.outputShape());
  if (writer.usesKerasDomain()) {
    ::onnx::OperatorSetIdProto* keras = m.add_opset_import();
    keras->set_domain(kKerasDomain);
    keras->set_version(1);
    addSeparableFunction(m);
  }
  try {
    ::onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw ExportError(model.name() + ": the ONNX checker rejects the exported model: " + e.what());
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw ExportError(path + ": cannot serialize the model");
  try {
    writeFileReplacing(path, bytes);
  } catch (const std::runtime_error& e) {
    throw ExportError(e.what());
  }
}

}  // namespace kiln::train
