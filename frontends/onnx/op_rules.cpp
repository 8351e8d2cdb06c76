// The ONNX -> IR conversion table: one rule per supported ONNX op (keyed by
// domain-qualified op type) with an optional proto-level support check and a
// converter. Converters resolve everything static into IR attributes
// (auto_pad -> pads, shape operands -> ints) as compiler/ops/README.md asks.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>

#include "compiler/ops/reduce.h"
#include "compiler/ops/resize.h"
#include "frontends/onnx/graph_builder.h"
#include "frontends/onnx/importer_internal.h"

namespace kiln::onnx_import {

using AttrProto = ::onnx::AttributeProto;

std::string nodeWhere(const std::string& label, const std::string& opType) {
  return "node '" + label + "' (" + opType + ")";
}

std::string nodeLabel(const ::onnx::NodeProto& n, size_t index) {
  return n.name().empty() ? "#" + std::to_string(index) + "(" + n.op_type() + ")" : n.name();
}

void Issues::throwIfAny() const {
  if (lines_.empty()) return;
  std::string message = "unsupported model (" + std::to_string(lines_.size()) + " problem" +
                        (lines_.size() == 1 ? "" : "s") + "):";
  for (const std::string& line : lines_) message += "\n  " + line;
  throw Error(message);
}

namespace {

const AttrProto* findAttr(const ::onnx::NodeProto& n, std::string_view name) {
  for (const AttrProto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

bool outputUsed(const FlatNode& n, int i, const std::set<std::string>& used) {
  return i < n.proto.output_size() && !n.proto.output(i).empty() && used.count(n.proto.output(i));
}

// One node under conversion: typed access to its operands and attributes,
// and emission of its IR nodes under the node's label.
class NodeConverter {
 public:
  NodeConverter(const FlatNode& n, GraphBuilder& b) : n_(n), b_(b), site_{"", n.label, n.proto.op_type()} {}

  int64_t opset() const { return n_.opset; }
  int numOutputs() const { return n_.proto.output_size(); }
  [[noreturn]] void fail(const std::string& message) const { throw Error(message, site_); }

  // Input i, or nullptr when omitted.
  Value* input(size_t i) const {
    return i < static_cast<size_t>(n_.proto.input_size()) ? b_.lookup(n_.proto.input(static_cast<int>(i)), site_) : nullptr;
  }
  Value* required(size_t i) const {
    Value* v = input(i);
    if (!v) fail("input " + std::to_string(i) + " is required");
    return v;
  }
  std::vector<Value*> inputs() const {
    std::vector<Value*> out;
    for (int i = 0; i < n_.proto.input_size(); ++i) out.push_back(input(static_cast<size_t>(i)));
    return out;
  }
  bool isBatchTainted(size_t i) const {
    Value* v = input(i);
    return v && b_.isBatchTainted(v);
  }

  // The value of operand i, which kiln turns into an attribute, or nullptr
  // when omitted. A non-constant operand makes the node unsupported.
  const Tensor* constant(size_t i, const std::string& what, bool allowBatchSentinel = false) const {
    Value* v = input(i);
    if (!v) return nullptr;
    if (!v->isConstant())
      throw Unsupported{"operand '" + what + "' (input " + std::to_string(i) + ") must be constant"};
    if (!allowBatchSentinel && b_.isBatchTainted(v)) throw Unsupported{kBatchArithmeticMessage};
    return &v->constant;
  }
  std::vector<int64_t> constantInts(size_t i, const std::string& what) const {
    const Tensor* t = constant(i, what);
    if (!t) fail("operand '" + what + "' (input " + std::to_string(i) + ") is required");
    return ints(*t, what);
  }
  std::optional<float> constantScalar(size_t i, const std::string& what) const {
    const Tensor* t = constant(i, what);
    if (!t) return std::nullopt;
    return scalarFloat(*t, what);
  }
  std::vector<int64_t> ints(const Tensor& t, const std::string& what) const {
    if (t.dtype() != DType::I64 && t.dtype() != DType::I32) fail("operand '" + what + "' must be int64 or int32");
    return t.toInts();
  }
  float scalarFloat(const Tensor& t, const std::string& what) const {
    if (t.numElements() != 1) fail("'" + what + "' must hold one value, it has shape " + t.shape().str());
    switch (t.dtype()) {
      case DType::F32: return t.data<float>()[0];
      case DType::Bool: return t.data<bool>()[0] ? 1.f : 0.f;
      default: return static_cast<float>(t.toInts()[0]);
    }
  }

  const AttrProto* attr(std::string_view name, AttrProto::AttributeType type) const {
    const AttrProto* a = findAttr(n_.proto, name);
    if (a && a->type() != type)
      fail("attribute '" + std::string(name) + "' should be " + AttrProto::AttributeType_Name(type) + ", it is " +
           AttrProto::AttributeType_Name(a->type()));
    return a;
  }
  int64_t intAttr(std::string_view name, int64_t fallback) const {
    const AttrProto* a = attr(name, AttrProto::INT);
    return a ? a->i() : fallback;
  }
  float floatAttr(std::string_view name, float fallback) const {
    const AttrProto* a = attr(name, AttrProto::FLOAT);
    return a ? a->f() : fallback;
  }
  std::string stringAttr(std::string_view name, std::string fallback) const {
    const AttrProto* a = attr(name, AttrProto::STRING);
    return a ? a->s() : fallback;
  }
  std::optional<std::vector<int64_t>> intsAttr(std::string_view name) const {
    const AttrProto* a = attr(name, AttrProto::INTS);
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }
  std::vector<int64_t> requiredInts(std::string_view name) const {
    std::optional<std::vector<int64_t>> v = intsAttr(name);
    if (!v) fail("attribute '" + std::string(name) + "' is required");
    return *v;
  }
  // The ONNX attributes among `names` that are present, same name and kind.
  Attributes copyAttrs(const std::vector<std::string>& names) const {
    Attributes out;
    for (const std::string& name : names) {
      const AttrProto* a = findAttr(n_.proto, name);
      if (!a) continue;
      switch (a->type()) {
        case AttrProto::INT: out.set(name, a->i()); break;
        case AttrProto::FLOAT: out.set(name, a->f()); break;
        case AttrProto::STRING: out.set(name, a->s()); break;
        case AttrProto::INTS: out.set(name, std::vector<int64_t>(a->ints().begin(), a->ints().end())); break;
        case AttrProto::FLOATS: out.set(name, std::vector<float>(a->floats().begin(), a->floats().end())); break;
        default: fail("attribute '" + name + "' has unsupported type " + AttrProto::AttributeType_Name(a->type()));
      }
    }
    return out;
  }
  const AttrProto* onlyAttr() const {
    if (n_.proto.attribute_size() != 1) fail("expected exactly one attribute");
    return &n_.proto.attribute(0);
  }

  // Emits the node's final IR op; its outputs take the node's output names.
  Value* emit(std::string_view op, std::vector<Value*> ins, const Attributes& attrs = {}) {
    while (!ins.empty() && !ins.back()) ins.pop_back();
    std::vector<std::string> names(n_.proto.output().begin(), n_.proto.output().end());
    // A variadic op has as many outputs as the ONNX node (the converter's attributes say so).
    if (int irOutputs = OpRegistry::instance().get(op).numOutputs; irOutputs != kVariadic)
      names.resize(static_cast<size_t>(irOutputs));
    std::vector<Value*> outs = b_.emit(op, n_.label, ins, attrs, names);
    for (size_t i = 0; i < outs.size() && i < static_cast<size_t>(n_.proto.output_size()); ++i)
      if (!n_.proto.output(static_cast<int>(i)).empty()) b_.bind(n_.proto.output(static_cast<int>(i)), outs[i]);
    return outs.front();
  }
  // Emits an intermediate IR node of a multi-node expansion.
  Value* emitStep(std::string_view op, const std::string& step, const std::vector<Value*>& ins, const Attributes& attrs) {
    return b_.emit(op, n_.label + "/" + step, ins, attrs, {}).front();
  }
  void bindConstant(Tensor t, bool tainted = false) {
    const std::string& name = n_.proto.output(0);
    b_.bind(name, b_.addConstant(name, std::move(t), tainted));
  }

 private:
  const FlatNode& n_;
  GraphBuilder& b_;
  ErrorSite site_;
};

using ConvertFn = std::function<void(NodeConverter&)>;
// Returns the reasons a node is unsupported, judged from the proto alone.
using CheckFn = std::function<std::vector<std::string>(const FlatNode&, const std::set<std::string>& used)>;

struct OpRule {
  ConvertFn convert;
  CheckFn check;
};

// Ops whose IR form is the ONNX form: same name, inputs, and the listed attributes.
OpRule direct(std::string irOp, std::vector<std::string> attrs = {}, CheckFn check = nullptr) {
  return {[irOp, attrs](NodeConverter& c) { c.emit(irOp, c.inputs(), c.copyAttrs(attrs)); }, std::move(check)};
}

// Unsupported when any output from index `first` on is read.
CheckFn extraOutputsUnused(int first, std::string what) {
  return [first, what](const FlatNode& n, const std::set<std::string>& used) {
    std::vector<std::string> out;
    for (int i = first; i < n.proto.output_size(); ++i)
      if (outputUsed(n, i, used)) out.push_back(what + " (output '" + n.proto.output(i) + "') is not supported");
    return out;
  };
}

// --- sliding windows (Conv, pools, SeparableConv2D) ---

struct Window {
  std::vector<int64_t> strides, pads, dilations;
};

// Strides/dilations with defaults, and pads explicit or from auto_pad
// (SAME_* need the input's static spatial dims: output = ceil(in / stride)).
Window resolveWindow(const NodeConverter& c, const Shape& x, const std::vector<int64_t>& kernel) {
  const size_t n = kernel.size();
  if (x.rank() != n + 2)
    c.fail("input is rank " + std::to_string(x.rank()) + " but the kernel has " + std::to_string(n) + " spatial dims");
  Window w;
  w.strides = c.intsAttr("strides").value_or(std::vector<int64_t>(n, 1));
  w.dilations = c.intsAttr("dilations").value_or(std::vector<int64_t>(n, 1));
  if (w.strides.size() != n || w.dilations.size() != n)
    c.fail("strides and dilations need " + std::to_string(n) + " values");
  for (size_t i = 0; i < n; ++i)
    if (w.strides[i] < 1 || w.dilations[i] < 1 || kernel[i] < 1) c.fail("kernel sizes, strides and dilations must be positive");
  std::string autoPad = c.stringAttr("auto_pad", "NOTSET");
  if (autoPad == "NOTSET") {
    w.pads = c.intsAttr("pads").value_or(std::vector<int64_t>(2 * n, 0));
    if (w.pads.size() != 2 * n) c.fail("pads needs " + std::to_string(2 * n) + " values");
    for (int64_t p : w.pads)
      if (p < 0) c.fail("pads must not be negative");
    return w;
  }
  w.pads.assign(2 * n, 0);
  if (autoPad == "VALID") return w;
  if (autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER")
    c.fail("auto_pad '" + autoPad + "' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID");
  for (size_t i = 0; i < n; ++i) {
    int64_t in = x[2 + i], s = w.strides[i], span = 0, reach = 0;
    int64_t out = in / s + (in % s != 0);
    if (__builtin_mul_overflow(kernel[i] - 1, w.dilations[i], &span) ||
        __builtin_add_overflow((out - 1) * s + 1, span, &reach))
      c.fail("dilated kernel size overflows");
    int64_t total = std::max<int64_t>(0, reach - in);
    int64_t small = total / 2, big = total - small;  // SAME_UPPER puts the odd pixel at the end
    w.pads[i] = autoPad == "SAME_UPPER" ? small : big;
    w.pads[n + i] = autoPad == "SAME_UPPER" ? big : small;
  }
  return w;
}

Attributes windowAttrs(const Window& w, bool withDilations) {
  Attributes a;
  a.set("strides", w.strides);
  a.set("pads", w.pads);
  if (withDilations) a.set("dilations", w.dilations);
  return a;
}

void convertConv(NodeConverter& c) {
  Value* x = c.required(0);
  Value* w = c.required(1);
  const Shape& xs = x->type.shape;
  const Shape& ws = w->type.shape;
  if (xs.rank() < 3) c.fail("input X is " + x->type.str() + "; Conv needs rank 3 or more (N, C, spatial...)");
  if (ws.rank() != xs.rank())
    c.fail("kernel rank mismatch: W is " + ws.str() + " (rank " + std::to_string(ws.rank()) + ") but X is " +
           xs.str() + " (rank " + std::to_string(xs.rank()) + ")");
  if (ws.hasSymbolicBatch()) c.fail("kernel W must have a static shape");
  int64_t group = c.intAttr("group", 1);
  if (group < 1 || xs[1] % group != 0)
    c.fail("group " + std::to_string(group) + " does not divide the " + std::to_string(xs[1]) + " input channels");
  if (ws[0] % group != 0)
    c.fail("group " + std::to_string(group) + " does not divide the " + std::to_string(ws[0]) + " output channels");
  if (ws[1] != xs[1] / group)
    c.fail("W " + ws.str() + " takes " + std::to_string(ws[1]) + " channels per group, X has " + std::to_string(xs[1]) +
           " channels in " + std::to_string(group) + " group(s)");
  std::vector<int64_t> kernel(ws.dims.begin() + 2, ws.dims.end());
  if (std::optional<std::vector<int64_t>> given = c.intsAttr("kernel_shape"); given && *given != kernel)
    c.fail("kernel_shape does not match W " + ws.str());
  Attributes a = windowAttrs(resolveWindow(c, xs, kernel), true);
  a.set("group", group);
  c.emit("Conv", {x, w, c.input(2)}, a);
}

// ConvTranspose: pads and output_padding come out explicit. output_shape
// (the spatial dims, or all dims) and SAME_* (output = input * stride) fix
// the output size: the natural size stride*(in-1) + output_padding +
// dilation*(kernel-1) + 1 minus the target is the total padding, split as
// ONNX defines (SAME_UPPER: the odd pixel at the end, otherwise at the
// begin); a target beyond the natural size grows output_padding instead.
void convertConvTranspose(NodeConverter& c) {
  Value* x = c.required(0);
  Value* w = c.required(1);
  const Shape& xs = x->type.shape;
  const Shape& ws = w->type.shape;
  if (xs.rank() < 3) c.fail("input X is " + x->type.str() + "; ConvTranspose needs rank 3 or more (N, C, spatial...)");
  if (ws.rank() != xs.rank()) c.fail("W " + ws.str() + " must have X's rank " + std::to_string(xs.rank()));
  if (ws.hasSymbolicBatch()) c.fail("kernel W must have a static shape");
  const int64_t group = c.intAttr("group", 1);
  if (group < 1 || xs[1] % group != 0 || ws[0] != xs[1])
    c.fail("W " + ws.str() + " must be [C, M/group, kernel...] for X " + xs.str() + " and group " +
           std::to_string(group));
  const size_t n = xs.rank() - 2;
  const std::vector<int64_t> kernel(ws.dims.begin() + 2, ws.dims.end());
  if (std::optional<std::vector<int64_t>> given = c.intsAttr("kernel_shape"); given && *given != kernel)
    c.fail("kernel_shape does not match W " + ws.str());
  Window win;
  win.strides = c.intsAttr("strides").value_or(std::vector<int64_t>(n, 1));
  win.dilations = c.intsAttr("dilations").value_or(std::vector<int64_t>(n, 1));
  std::vector<int64_t> outputPadding = c.intsAttr("output_padding").value_or(std::vector<int64_t>(n, 0));
  if (win.strides.size() != n || win.dilations.size() != n || outputPadding.size() != n)
    c.fail("strides, dilations and output_padding need " + std::to_string(n) + " values");
  for (size_t i = 0; i < n; ++i)
    if (win.strides[i] < 1 || win.dilations[i] < 1 || kernel[i] < 1 || outputPadding[i] < 0)
      c.fail("kernel sizes, strides and dilations must be positive, output_padding not negative");
  const std::string autoPad = c.stringAttr("auto_pad", "NOTSET");
  if (autoPad != "NOTSET" && autoPad != "VALID" && autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER")
    c.fail("auto_pad '" + autoPad + "' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID");
  std::optional<std::vector<int64_t>> target = c.intsAttr("output_shape");
  if (target && target->size() == n + 2) target->erase(target->begin(), target->begin() + 2);
  if (target && target->size() != n) c.fail("output_shape needs " + std::to_string(n) + " (spatial) values");
  if (!target && (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER")) {
    target.emplace();
    for (size_t i = 0; i < n; ++i) target->push_back(xs[2 + i] * win.strides[i]);
  }
  if (!target) {
    win.pads = autoPad == "VALID" ? std::vector<int64_t>(2 * n, 0)
                                  : c.intsAttr("pads").value_or(std::vector<int64_t>(2 * n, 0));
    if (win.pads.size() != 2 * n) c.fail("pads needs " + std::to_string(2 * n) + " values");
    for (int64_t p : win.pads)
      if (p < 0) c.fail("pads must not be negative");
  } else {
    win.pads.assign(2 * n, 0);
    for (size_t i = 0; i < n; ++i) {
      const int64_t natural =
          win.strides[i] * (xs[2 + i] - 1) + outputPadding[i] + (kernel[i] - 1) * win.dilations[i] + 1;
      const int64_t total = natural - (*target)[i];
      if (total < 0) {
        outputPadding[i] -= total;
        continue;
      }
      const int64_t small = total / 2, big = total - small;
      win.pads[i] = autoPad == "SAME_UPPER" ? small : big;
      win.pads[n + i] = autoPad == "SAME_UPPER" ? big : small;
    }
  }
  Attributes a = windowAttrs(win, true);
  a.set("output_padding", outputPadding);
  a.set("group", group);
  c.emit("ConvTranspose", {x, w, c.input(2)}, a);
}

void convertSeparableConv2D(NodeConverter& c) {
  Value* x = c.required(0);
  const Shape& xs = x->type.shape;
  const Shape& wd = c.required(1)->type.shape;
  const Shape& wp = c.required(2)->type.shape;
  int64_t multiplier = c.intAttr("depth_multiplier", 1);
  if (xs.rank() != 4 || wd.rank() != 4 || wp.rank() != 4) c.fail("X and both kernels must be rank 4");
  int64_t mid = 0;
  if (multiplier < 1 || __builtin_mul_overflow(xs[1], multiplier, &mid) || wd[0] != mid || wd[1] != 1)
    c.fail("depthwise kernel is " + wd.str() + ", expected " + std::to_string(mid) + "x1xKHxKW for " +
           std::to_string(xs[1]) + " channels and depth_multiplier " + std::to_string(multiplier));
  if (wp[1] != mid || wp[2] != 1 || wp[3] != 1)
    c.fail("pointwise kernel is " + wp.str() + ", expected Mx" + std::to_string(mid) + "x1x1");
  Attributes a = windowAttrs(resolveWindow(c, xs, {wd[2], wd[3]}), true);
  a.set("depth_multiplier", multiplier);
  c.emit("SeparableConv2D", {x, c.input(1), c.input(2), c.input(3)}, a);
}

void convertPool(NodeConverter& c, bool isMax) {
  Value* x = c.required(0);
  std::vector<int64_t> kernel = c.requiredInts("kernel_shape");
  Attributes a = windowAttrs(resolveWindow(c, x->type.shape, kernel), isMax);
  a.set("kernel_shape", kernel);
  a.set("ceil_mode", c.intAttr("ceil_mode", 0));
  if (!isMax) a.set("count_include_pad", c.intAttr("count_include_pad", 0));
  c.emit(isMax ? "MaxPool" : "AveragePool", {x}, a);
}

// --- operands that become attributes ---

// Constant bounds become attributes (which fused epilogues can carry);
// bounds known only at run time stay the IR node's inputs 1 and 2.
void convertClip(NodeConverter& c) {
  Attributes a;
  std::vector<Value*> ins = {c.required(0), nullptr, nullptr};
  for (auto [i, bound] : {std::pair<size_t, const char*>{1, "min"}, {2, "max"}}) {
    Value* v = c.input(i);
    if (v && !v->isConstant())
      ins[i] = v;
    else if (std::optional<float> value = c.constantScalar(i, bound))
      a.set(bound, *value);
  }
  c.emit("Clip", ins, a);
}

void convertReshape(NodeConverter& c) {
  const Tensor* shapeTensor = c.constant(1, "shape", /*allowBatchSentinel=*/true);
  if (!shapeTensor) c.fail("operand 'shape' (input 1) is required");
  std::vector<int64_t> shape = c.ints(*shapeTensor, "shape");
  int64_t allowZero = c.intAttr("allowzero", 0);
  if (c.isBatchTainted(1))
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == kBatchSentinel) {
        // x.view(x.size(0), ...): 0 copies the (symbolic) batch.
        if (i != 0 || allowZero != 0) throw Unsupported{kBatchArithmeticMessage};
        shape[i] = 0;
      }
  Attributes a;
  a.set("shape", shape);
  a.set("allowzero", allowZero);
  c.emit("Reshape", {c.required(0)}, a);
}

void convertTranspose(NodeConverter& c) {
  Value* x = c.required(0);
  std::vector<int64_t> reversed;
  for (size_t i = x->type.shape.rank(); i-- > 0;) reversed.push_back(static_cast<int64_t>(i));
  Attributes a;
  a.set("perm", c.intsAttr("perm").value_or(reversed));
  c.emit("Transpose", {x}, a);
}

// Squeeze/Unsqueeze axes: an attribute before opset 13, input 1 from 13 on.
std::optional<std::vector<int64_t>> axesOperand(const NodeConverter& c) {
  if (c.opset() < 13) return c.intsAttr("axes");
  const Tensor* t = c.constant(1, "axes");
  if (!t) return std::nullopt;
  return c.ints(*t, "axes");
}

void convertSqueeze(NodeConverter& c) {
  Value* x = c.required(0);
  std::optional<std::vector<int64_t>> axes = axesOperand(c);
  if (!axes) {  // all static dims of size 1 (a symbolic batch is not known to be 1)
    axes.emplace();
    for (size_t i = 0; i < x->type.shape.rank(); ++i)
      if (x->type.shape[i] == 1) axes->push_back(static_cast<int64_t>(i));
  }
  Attributes a;
  a.set("axes", *axes);
  c.emit("Squeeze", {x}, a);
}

void convertUnsqueeze(NodeConverter& c) {
  std::optional<std::vector<int64_t>> axes = axesOperand(c);
  if (!axes) c.fail("axes are required");
  Attributes a;
  a.set("axes", *axes);
  c.emit("Unsqueeze", {c.required(0)}, a);
}

// Reduction axes: an attribute, or input 1 in the forms that take them as an
// operand (ReduceSum from opset 13, the others from 18); there,
// noop_with_empty_axes=1 makes an empty or omitted axes list the identity
// instead of a reduction over every axis.
void convertReduce(NodeConverter& c, const std::string& op) {
  std::vector<int64_t> axes = c.input(1) ? c.constantInts(1, "axes") : c.intsAttr("axes").value_or(std::vector<int64_t>{});
  if (axes.empty() && c.intAttr("noop_with_empty_axes", 0) != 0) {
    c.emit("Identity", {c.required(0)});
    return;
  }
  Attributes a;
  a.set("axes", axes);
  a.set("keepdims", c.intAttr("keepdims", 1));
  c.emit(op, {c.required(0)}, a);
}

// Split sizes: the `split` attribute before opset 13, input 1 from 13 on;
// omitted, the dim is cut into as many equal parts as the node has outputs.
void convertSplit(NodeConverter& c) {
  Value* x = c.required(0);
  const Shape& shape = x->type.shape;
  const int64_t axis = c.intAttr("axis", 0), rank = static_cast<int64_t>(shape.rank());
  if (axis < -rank || axis >= rank) c.fail("axis " + std::to_string(axis) + " is out of range for " + x->type.str());
  std::optional<std::vector<int64_t>> sizes = c.opset() < 13 ? c.intsAttr("split") : std::nullopt;
  if (c.opset() >= 13 && c.input(1)) sizes = c.constantInts(1, "split");
  if (!sizes) {
    const int64_t dim = shape[normalizeAxis(axis, shape.rank())], parts = c.numOutputs();
    if (dim == kBatch) c.fail("cannot split the symbolic batch of " + x->type.str());
    if (parts < 1 || dim % parts != 0)
      c.fail("dim " + std::to_string(axis) + " of " + x->type.str() + " does not split into " + std::to_string(parts) +
             " equal parts");
    sizes.emplace(static_cast<size_t>(parts), dim / parts);
  }
  if (static_cast<int>(sizes->size()) != c.numOutputs())
    c.fail("split lists " + std::to_string(sizes->size()) + " parts for " + std::to_string(c.numOutputs()) + " outputs");
  Attributes a;
  a.set("axis", axis);
  a.set("split", *sizes);
  c.emit("Split", {x}, a);
}

// Expand's shape operand becomes an attribute; a symbolic batch in it (from
// x.expand(x.size(0), ...)) is written as 1, which broadcasts to the batch.
void convertExpand(NodeConverter& c) {
  Value* x = c.required(0);
  const Tensor* shapeTensor = c.constant(1, "shape", /*allowBatchSentinel=*/true);
  if (!shapeTensor) c.fail("operand 'shape' (input 1) is required");
  std::vector<int64_t> shape = c.ints(*shapeTensor, "shape");
  if (c.isBatchTainted(1))
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == kBatchSentinel) {
        if (i != 0 || shape.size() != x->type.shape.rank() || !x->type.shape.hasSymbolicBatch())
          throw Unsupported{kBatchArithmeticMessage};
        shape[i] = 1;
      }
  Attributes a;
  a.set("shape", shape);
  c.emit("Expand", {x}, a);
}

void convertTile(NodeConverter& c) {
  Attributes a;
  a.set("repeats", c.constantInts(1, "repeats"));
  c.emit("Tile", {c.required(0)}, a);
}

void convertPad(NodeConverter& c) {
  Attributes a;
  a.set("pads", c.constantInts(1, "pads"));
  a.set("mode", c.stringAttr("mode", "constant"));
  if (std::optional<float> value = c.constantScalar(2, "constant_value")) a.set("value", *value);
  c.emit("Pad", {c.required(0)}, a);
}

void convertSlice(NodeConverter& c) {
  std::vector<int64_t> starts = c.constantInts(1, "starts"), ends = c.constantInts(2, "ends");
  std::vector<int64_t> axes, steps(starts.size(), 1);
  for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (c.input(3)) axes = c.constantInts(3, "axes");
  if (c.input(4)) steps = c.constantInts(4, "steps");
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts, ends, axes and steps differ in length");
  Attributes a;
  a.set("starts", starts);
  a.set("ends", ends);
  a.set("axes", axes);
  a.set("steps", steps);
  c.emit("Slice", {c.required(0)}, a);
}

// Softmax/LogSoftmax/Hardmax before opset 13 coerce the input to 2-D at `axis`; unless
// that axis is the last, this is Flatten -> softmax over dim 1 -> Reshape back.
void convertSoftmax(NodeConverter& c, const std::string& op) {
  Value* x = c.required(0);
  int64_t axis = c.intAttr("axis", c.opset() < 13 ? 1 : -1);
  const Shape& shape = x->type.shape;
  Attributes a;
  if (c.opset() >= 13 || normalizeAxis(axis, shape.rank()) + 1 == shape.rank()) {
    a.set("axis", axis);
    c.emit(op, {x}, a);
    return;
  }
  Attributes flatten, inner, back;
  flatten.set("axis", axis);
  inner.set("axis", int64_t{1});
  std::vector<int64_t> dims = shape.dims;
  if (shape.hasSymbolicBatch()) dims[0] = 0;  // Reshape's 0 copies the batch
  back.set("shape", dims);
  Value* flat = c.emitStep("Flatten", "coerce_2d", {x}, flatten);
  Value* soft = c.emitStep(op, "softmax_2d", {flat}, inner);
  c.emit("Reshape", {soft}, back);
}

// IR Pow takes a base and an exponent of one type (f32, i64, i32), the
// base's: an exponent of another type is cast to it, except a float exponent
// of an integer base, where the power is taken in f32 and truncated back
// (numpy's and ONNX's result; exact while the power fits f32's 24 bits).
void convertPow(NodeConverter& c) {
  Value* x = c.required(0);
  Value* y = c.required(1);
  auto cast = [&](Value* v, DType to, const std::string& step) {
    Attributes a;
    a.set("to", std::string(dtypeName(to)));
    return c.emitStep("Cast", step, {v}, a);
  };
  const DType base = x->type.dtype;
  if (base != DType::F32 && base != DType::I64 && base != DType::I32)
    throw Unsupported{std::string("Pow of a ") + dtypeName(base) + " base is not supported (f32, int64, int32)"};
  if (base != DType::F32 && y->type.dtype == DType::F32) {
    Value* power = c.emitStep("Pow", "power_f32", {cast(x, DType::F32, "base_f32"), y}, {});
    Attributes a;
    a.set("to", std::string(dtypeName(base)));
    c.emit("Cast", {power}, a);
    return;
  }
  if (y->type.dtype != base) y = cast(y, base, std::string("exponent_") + dtypeName(base));
  c.emit("Pow", {x, y});
}

// Range: ONNX's constant start, limit and delta give the element count
// max(ceil((limit - start) / delta), 0), computed exactly for integers and
// in double for floats (as numpy's arange and torch.arange do).
void convertRange(NodeConverter& c) {
  const Tensor* start = c.constant(0, "start");
  const Tensor* limit = c.constant(1, "limit");
  const Tensor* delta = c.constant(2, "delta");
  if (!start || !limit || !delta) c.fail("start, limit and delta are required");
  int64_t size = 0;
  if (start->dtype() == DType::F32) {
    const double first = c.scalarFloat(*start, "start"), step = c.scalarFloat(*delta, "delta");
    if (step == 0) c.fail("delta is 0");
    const double count = std::ceil((c.scalarFloat(*limit, "limit") - first) / step);
    if (!(count < 1e15)) c.fail("the range has too many elements");
    size = std::max<int64_t>(static_cast<int64_t>(count), 0);
  } else {
    const int64_t first = c.ints(*start, "start").at(0), last = c.ints(*limit, "limit").at(0);
    const int64_t step = c.ints(*delta, "delta").at(0);
    if (step == 0) c.fail("delta is 0");
    int64_t span = 0;
    if (__builtin_sub_overflow(last, first, &span) || (step == -1 && span == INT64_MIN))
      c.fail("the range has too many elements");
    const int64_t count = span / step + (span % step != 0 && (span < 0) == (step < 0));
    size = std::max<int64_t>(count, 0);
  }
  Attributes a;
  a.set("size", size);
  c.emit("Range", {c.input(0), c.input(2)}, a);
}

// --- Einsum ---
//
// Einsum has no IR op: it is lowered here into the ops that compute its
// parts. Every equation is a sequence of diagonals (Transpose, Reshape and a
// strided Slice), sums over labels no one else needs (ReduceSum), pairwise
// contractions (Transpose + Reshape into one batched MatMul, or a broadcast
// Mul when nothing is contracted) and a last Transpose to the output's
// order. The exporters' einsums (attention's "bhid,bhjd->bhij") are batched
// matrix products, which MatMul's tuned kernel computes better than a
// generic einsum loop nest would, and the existing passes (transpose
// cancelling, identity removal, folding) see through the pieces.

// A label: a letter as its character code, or kEllipsisLabel + i for dim i
// of the broadcast dims an ellipsis stands for (counted over the widest one).
constexpr int kEllipsisLabel = 256;

struct EinsumTerm {
  Value* value;
  std::vector<int> labels;  // one per dim of value
};

// One side of an equation: its letters, and where its "..." stands, if any.
struct EinsumSubscripts {
  std::vector<int> letters;
  std::optional<size_t> ellipsisAt;  // index into letters
};

class EinsumLowering {
 public:
  explicit EinsumLowering(NodeConverter& c) : c_(c) {}

  void run() {
    std::string equation;
    for (char ch : c_.stringAttr("equation", ""))
      if (ch != ' ') equation += ch;
    const size_t arrow = equation.find("->");
    std::vector<EinsumSubscripts> inputs;
    for (size_t begin = 0;;) {
      const size_t end = std::min(equation.find(',', begin), arrow);
      inputs.push_back(parse(equation.substr(begin, end - begin)));
      if (end == arrow || end == std::string::npos) break;
      begin = end + 1;
    }
    std::vector<Value*> values = c_.inputs();
    if (inputs.size() != values.size())
      c_.fail("the equation names " + std::to_string(inputs.size()) + " operands, the node has " +
              std::to_string(values.size()));
    for (Value* v : values)
      if (!v || v->type.dtype != DType::F32)
        throw Unsupported{"Einsum of " + (v ? std::string(dtypeName(v->type.dtype)) : std::string("an omitted input")) +
                          " operands is not supported (f32 only)"};
    size_t ellipsisRank = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const size_t rank = values[i]->type.shape.rank();
      if (rank < inputs[i].letters.size() || (!inputs[i].ellipsisAt && rank != inputs[i].letters.size()))
        c_.fail("operand " + std::to_string(i) + " " + values[i]->type.str() + " does not have the rank its subscripts give");
      if (inputs[i].ellipsisAt) ellipsisRank = std::max(ellipsisRank, rank - inputs[i].letters.size());
    }
    std::vector<EinsumTerm> terms;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const size_t rank = values[i]->type.shape.rank();
      terms.push_back({values[i], expand(inputs[i], rank - inputs[i].letters.size(), ellipsisRank)});
      for (size_t d = 0; d < rank; ++d) recordSize(terms.back().labels[d], values[i]->type.shape[d], i);
    }
    std::vector<int> output;
    if (arrow != std::string::npos) {
      output = expand(parse(equation.substr(arrow + 2)), ellipsisRank, ellipsisRank);
    } else {  // implicit: the ellipsis dims, then the letters used once, alphabetically
      std::map<int, int> uses;
      for (const EinsumTerm& t : terms)
        for (int l : t.labels) ++uses[l];
      for (const auto& [label, count] : uses)
        if (label >= kEllipsisLabel || count == 1) output.push_back(label);
      std::stable_partition(output.begin(), output.end(), [](int l) { return l >= kEllipsisLabel; });
    }
    for (size_t i = 0; i < output.size(); ++i) {
      if (!sizes_.count(output[i])) c_.fail("output subscript " + labelName(output[i]) + " is in no operand");
      if (std::count(output.begin(), output.end(), output[i]) > 1)
        c_.fail("output subscript " + labelName(output[i]) + " repeats");
    }

    // Each operand on its own: diagonals, then sums over labels only it has.
    for (size_t i = 0; i < terms.size(); ++i) {
      takeDiagonals(terms[i]);
      std::set<int> needed(output.begin(), output.end());
      for (size_t j = 0; j < terms.size(); ++j)
        if (j != i) needed.insert(terms[j].labels.begin(), terms[j].labels.end());
      sumOutAllBut(terms[i], needed);
    }
    // Contract left to right, keeping what the output and later operands need.
    EinsumTerm result = terms[0];
    for (size_t i = 1; i < terms.size(); ++i) {
      std::set<int> needed(output.begin(), output.end());
      for (size_t j = i + 1; j < terms.size(); ++j) needed.insert(terms[j].labels.begin(), terms[j].labels.end());
      result = contract(result, terms[i], needed);
    }
    sumOutAllBut(result, std::set<int>(output.begin(), output.end()));
    Attributes a;
    a.set("perm", permutation(result.labels, output));
    c_.emit("Transpose", {result.value}, a);
  }

 private:
  std::string labelName(int label) const {
    return label >= kEllipsisLabel ? "'...' dim " + std::to_string(label - kEllipsisLabel)
                                   : "'" + std::string(1, static_cast<char>(label)) + "'";
  }

  EinsumSubscripts parse(const std::string& text) const {
    EinsumSubscripts s;
    for (size_t i = 0; i < text.size(); ++i) {
      const char ch = text[i];
      if (std::isalpha(static_cast<unsigned char>(ch))) {
        s.letters.push_back(ch);
      } else if (text.compare(i, 3, "...") == 0 && !s.ellipsisAt) {
        s.ellipsisAt = s.letters.size();
        i += 2;
      } else {
        c_.fail("equation subscripts '" + text + "' must be letters and at most one '...'");
      }
    }
    return s;
  }

  // The labels of subscripts whose ellipsis stands for `dims` dims (the last
  // of the `ellipsisRank` broadcast dims, aligned right as numpy does).
  static std::vector<int> expand(const EinsumSubscripts& s, size_t dims, size_t ellipsisRank) {
    std::vector<int> labels(s.letters.begin(), s.letters.end());
    if (s.ellipsisAt) {
      std::vector<int> broadcast;
      for (size_t j = 0; j < dims; ++j) broadcast.push_back(kEllipsisLabel + static_cast<int>(ellipsisRank - dims + j));
      labels.insert(labels.begin() + static_cast<std::ptrdiff_t>(*s.ellipsisAt), broadcast.begin(), broadcast.end());
    }
    return labels;
  }

  // A label's size over all operands: letters agree; the ellipsis dims
  // broadcast (1 against n).
  void recordSize(int label, int64_t size, size_t operand) {
    auto [it, inserted] = sizes_.emplace(label, size);
    if (inserted || it->second == size) return;
    if (label >= kEllipsisLabel && (it->second == 1 || size == 1)) {
      if (it->second == 1) it->second = size;
      return;
    }
    c_.fail("subscript " + labelName(label) + " has size " + std::to_string(size) + " in operand " +
            std::to_string(operand) + " but " + std::to_string(it->second) + " elsewhere");
  }

  Value* step(std::string_view op, const std::vector<Value*>& ins, const Attributes& attrs) {
    return c_.emitStep(op, "einsum_" + std::to_string(steps_++), ins, attrs);
  }

  static std::vector<int64_t> permutation(const std::vector<int>& from, const std::vector<int>& to) {
    std::vector<int64_t> perm;
    for (int l : to) perm.push_back(std::find(from.begin(), from.end(), l) - from.begin());
    return perm;
  }

  void transposeTo(EinsumTerm& t, const std::vector<int>& labels) {
    if (t.labels == labels) return;
    Attributes a;
    a.set("perm", permutation(t.labels, labels));
    t.value = step("Transpose", {t.value}, a);
    t.labels = labels;
  }

  Value* reshape(Value* v, std::vector<int64_t> dims) {
    if (v->type.shape.dims == dims) return v;
    for (size_t d = 0; d < dims.size(); ++d)
      if (dims[d] == kBatch) {
        if (d != 0 || !v->type.shape.hasSymbolicBatch())
          throw Unsupported{"this einsum would move the symbolic batch off dim 0"};
        dims[d] = 0;  // Reshape's 0 copies the batch
      }
    Attributes a;
    a.set("shape", dims);
    return step("Reshape", {v}, a);
  }

  std::vector<int64_t> dimsOf(const EinsumTerm& t, const std::vector<int>& labels) const {
    std::vector<int64_t> dims;
    for (int l : labels) dims.push_back(t.value->type.shape[static_cast<size_t>(std::find(t.labels.begin(), t.labels.end(), l) - t.labels.begin())]);
    return dims;
  }

  int64_t product(const std::vector<int64_t>& dims) const {
    int64_t p = 1;
    for (int64_t d : dims) {
      if (d == kBatch) throw Unsupported{"this einsum would fold the symbolic batch into a matrix dim"};
      if (__builtin_mul_overflow(p, d, &p)) c_.fail("einsum dims overflow");
    }
    return p;
  }

  // A repeated label keeps only its diagonal: its two dims moved last,
  // merged, and every (n+1)-th element sliced out.
  void takeDiagonals(EinsumTerm& t) {
    for (size_t p = 0; p < t.labels.size(); ++p) {
      const auto q = std::find(t.labels.begin() + static_cast<std::ptrdiff_t>(p) + 1, t.labels.end(), t.labels[p]);
      if (q == t.labels.end()) continue;
      const int label = t.labels[p];
      std::vector<int> order;
      for (size_t d = 0; d < t.labels.size(); ++d)
        if (d != p && d != static_cast<size_t>(q - t.labels.begin())) order.push_back(t.labels[d]);
      const int64_t n = t.value->type.shape[p];
      std::vector<int64_t> perm = permutation(t.labels, order);
      perm.push_back(static_cast<int64_t>(p));
      perm.push_back(q - t.labels.begin());
      Attributes a;
      a.set("perm", perm);
      Value* moved = step("Transpose", {t.value}, a);
      std::vector<int64_t> dims;
      for (int64_t axis : perm) dims.push_back(t.value->type.shape[static_cast<size_t>(axis)]);
      dims.resize(dims.size() - 2);
      dims.push_back(product({n, n}));
      Value* merged = reshape(moved, dims);
      Attributes slice;
      slice.set("starts", std::vector<int64_t>{0});
      slice.set("ends", std::vector<int64_t>{n * n});
      slice.set("axes", std::vector<int64_t>{-1});
      slice.set("steps", std::vector<int64_t>{n + 1});
      t.value = step("Slice", {merged}, slice);
      order.push_back(label);
      t.labels = order;
      p = static_cast<size_t>(-1);  // start over: positions moved
    }
  }

  void sumOut(EinsumTerm& t, const std::vector<int>& labels) {
    if (labels.empty()) return;
    std::vector<int64_t> axes = permutation(t.labels, labels);
    Attributes a;
    a.set("axes", axes);
    a.set("keepdims", int64_t{0});
    t.value = step("ReduceSum", {t.value}, a);
    std::vector<int> kept;
    for (int l : t.labels)
      if (std::find(labels.begin(), labels.end(), l) == labels.end()) kept.push_back(l);
    t.labels = kept;
  }

  void sumOutAllBut(EinsumTerm& t, const std::set<int>& needed) {
    std::vector<int> unneeded;
    for (int l : t.labels)
      if (!needed.count(l)) unneeded.push_back(l);
    sumOut(t, unneeded);
  }

  static bool has(const EinsumTerm& t, int label) {
    return std::find(t.labels.begin(), t.labels.end(), label) != t.labels.end();
  }

  // A and B into one term over batch (both, needed), aOnly and bOnly labels,
  // summing the labels both have and nothing later needs.
  EinsumTerm contract(EinsumTerm a, EinsumTerm b, const std::set<int>& needed) {
    std::set<int> keepA = needed, keepB = needed;
    keepA.insert(b.labels.begin(), b.labels.end());
    keepB.insert(a.labels.begin(), a.labels.end());
    // A contracted ellipsis dim that is 1 on one side: sum each side alone.
    for (int l : a.labels)
      if (has(b, l) && !needed.count(l) && dimsOf(a, {l}) != dimsOf(b, {l})) keepA.erase(l), keepB.erase(l);
    sumOutAllBut(a, keepA);
    sumOutAllBut(b, keepB);
    if (std::any_of(b.labels.begin(), b.labels.end(), [&](int l) { return !has(a, l) && sizes_.at(l) == kBatch; }))
      std::swap(a, b);  // the symbolic batch must lead
    std::vector<int> batch, contracted, aOnly, bOnly;
    for (int l : a.labels) (has(b, l) ? (needed.count(l) ? batch : contracted) : aOnly).push_back(l);
    for (int l : b.labels)
      if (!has(a, l)) bOnly.push_back(l);
    auto concat = [](std::vector<int> x, const std::vector<int>& y) {
      x.insert(x.end(), y.begin(), y.end());
      return x;
    };
    std::vector<int> labels = concat(concat(batch, aOnly), bOnly);
    const std::vector<int64_t> aDims = dimsOf(a, aOnly), bDims = dimsOf(b, bOnly);
    if (contracted.empty()) {  // a broadcast product: A [batch, aOnly, 1...] * B [batch, 1..., bOnly]
      transposeTo(a, concat(batch, aOnly));
      transposeTo(b, concat(batch, bOnly));
      std::vector<int64_t> aShape = dimsOf(a, a.labels), bShape = dimsOf(b, batch);
      aShape.resize(aShape.size() + bOnly.size(), 1);
      bShape.resize(bShape.size() + aOnly.size(), 1);
      bShape.insert(bShape.end(), bDims.begin(), bDims.end());
      return {step("Mul", {reshape(a.value, aShape), reshape(b.value, bShape)}, {}), labels};
    }
    // A [batch, M, K] x B [batch, K, N]; aOnly dims stay apart when one is
    // the symbolic batch (MatMul takes it as the leading dim of A).
    transposeTo(a, concat(concat(batch, aOnly), contracted));
    transposeTo(b, concat(concat(batch, contracted), bOnly));
    const int64_t k = product(dimsOf(a, contracted));
    const bool symbolicRows = std::find(aDims.begin(), aDims.end(), kBatch) != aDims.end();
    std::vector<int64_t> rows = symbolicRows ? aDims : std::vector<int64_t>{product(aDims)};
    if (rows.empty()) rows.push_back(1);
    std::vector<int64_t> aShape = dimsOf(a, batch), bShape = dimsOf(b, batch);
    aShape.insert(aShape.end(), rows.begin(), rows.end());
    aShape.push_back(k);
    bShape.resize(bShape.size() + rows.size() - 1, 1);
    bShape.insert(bShape.end(), {k, product(bDims)});
    Value* matmul = step("MatMul", {reshape(a.value, aShape), reshape(b.value, bShape)}, {});
    // The batch dims as MatMul broadcast them.
    std::vector<int64_t> outShape = dimsOf(a, batch);
    const std::vector<int64_t> bBatch = dimsOf(b, batch);
    for (size_t i = 0; i < outShape.size(); ++i)
      if (outShape[i] == 1) outShape[i] = bBatch[i];
    outShape.insert(outShape.end(), aDims.begin(), aDims.end());
    outShape.insert(outShape.end(), bDims.begin(), bDims.end());
    return {reshape(matmul, outShape), labels};
  }

  NodeConverter& c_;
  std::map<int, int64_t> sizes_;
  int steps_ = 0;
};

// Training-mode Dropout is the identity too when its ratio is a constant 0
// (torchvision 0.14's Swin calls F.dropout(attn, p=0.0), training=True).
void convertDropout(NodeConverter& c) {
  const Tensor* training = c.constant(2, "training_mode");
  const auto zeroRatio = [&] {
    const Tensor* ratio = c.input(1) && c.input(1)->isConstant() ? c.constant(1, "ratio") : nullptr;
    return ratio && c.scalarFloat(*ratio, "ratio") == 0.f;
  };
  if (training && c.scalarFloat(*training, "training_mode") != 0.f && !zeroRatio())
    throw Unsupported{"training_mode=1 (training-time Dropout) with a ratio other than 0 is not supported"};
  c.emit("Dropout", {c.required(0)});
}

void convertCast(NodeConverter& c) {
  Attributes a;
  a.set("to", std::string(dtypeName(dtypeFromOnnx(static_cast<int32_t>(c.intAttr("to", 0)), "Cast target"))));
  c.emit("Cast", {c.required(0)}, a);
}

void convertConstant(NodeConverter& c) {
  const AttrProto& a = *c.onlyAttr();
  if (a.name() == "value") {
    c.bindConstant(convertTensor(a.t()));
  } else if (a.name() == "value_float") {
    c.bindConstant(Tensor::scalar<float>(a.f()));
  } else if (a.name() == "value_floats") {
    std::vector<float> v(a.floats().begin(), a.floats().end());
    c.bindConstant(Tensor::fromVector<float>(Shape{static_cast<int64_t>(v.size())}, v));
  } else if (a.name() == "value_int") {
    c.bindConstant(Tensor::scalar<int64_t>(a.i()));
  } else if (a.name() == "value_ints") {
    std::vector<int64_t> v(a.ints().begin(), a.ints().end());
    c.bindConstant(Tensor::fromVector<int64_t>(Shape{static_cast<int64_t>(v.size())}, v));
  } else {
    c.fail("attribute '" + a.name() + "' is not supported");
  }
}

void convertConstantOfShape(NodeConverter& c) {
  Attributes a;
  a.set("shape", c.constantInts(0, "shape"));
  if (const AttrProto* value = c.attr("value", AttrProto::TENSOR)) {
    Tensor t = convertTensor(value->t());
    a.set("value", c.scalarFloat(t, "value"));
    a.set("dtype", std::string(dtypeName(t.dtype())));
  }
  c.emit("ConstantOfShape", {}, a);
}

// Shape of a value is always known at import: static dims, and the batch
// sentinel for a symbolic batch.
void convertShape(NodeConverter& c) {
  std::vector<int64_t> dims = c.required(0)->type.shape.dims;
  for (int64_t& d : dims)
    if (d == kBatch) d = kBatchSentinel;
  const auto rank = static_cast<int64_t>(dims.size());
  auto clampIndex = [rank](int64_t i) { return std::clamp(i < 0 ? i + rank : i, int64_t{0}, rank); };
  int64_t start = clampIndex(c.intAttr("start", 0));
  int64_t end = std::max(start, clampIndex(c.intAttr("end", rank)));
  std::vector<int64_t> slice(dims.begin() + start, dims.begin() + end);
  bool tainted = std::find(slice.begin(), slice.end(), kBatchSentinel) != slice.end();
  c.bindConstant(Tensor::fromVector<int64_t>(Shape{static_cast<int64_t>(slice.size())}, slice), tainted);
}

// Resize, opsets 11 and 13: constant roi, scales and sizes become
// attributes, and the output shape is resolved here. (Upsample and opset-10
// Resize reach the importer as opset-11 Resizes: model_loader.cpp upgrades
// their models with ONNX's version converter and keeps their semantics.)
void convertResize(NodeConverter& c) {
  Value* x = c.required(0);
  const Shape& xs = x->type.shape;
  const size_t rank = xs.rank();
  auto nonEmpty = [](const Tensor* t) { return t && t->numElements() > 0 ? t : nullptr; };
  auto floats = [&](const Tensor& t, const std::string& what) {
    if (t.dtype() != DType::F32) c.fail("operand '" + what + "' must be float32");
    if (t.numElements() != static_cast<int64_t>(rank) * (what == "roi" ? 2 : 1))
      c.fail("operand '" + what + "' has " + std::to_string(t.numElements()) + " values for input " + xs.str());
    return std::vector<float>(t.data<float>(), t.data<float>() + t.numElements());
  };
  const Tensor* roi = nonEmpty(c.constant(1, "roi"));
  const Tensor* scales = nonEmpty(c.constant(2, "scales"));
  const Tensor* sizes = nonEmpty(c.constant(3, "sizes", /*allowBatchSentinel=*/true));
  if (!scales == !sizes) c.fail("exactly one of 'scales' and 'sizes' must be given");
  Attributes a = c.copyAttrs({"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a",
                              "exclude_outside", "extrapolation_value"});
  std::vector<int64_t> out;
  if (sizes) {
    out = c.ints(*sizes, "sizes");
    if (out.size() != rank) c.fail("operand 'sizes' has " + std::to_string(out.size()) + " values for input " + xs.str());
    if (xs.hasSymbolicBatch() && out[0] != kBatchSentinel)
      throw Unsupported{"'sizes' fixes the symbolic batch dim to " + std::to_string(out[0])};
    for (int64_t& d : out)
      if (d == kBatchSentinel) d = kBatch;
  } else {
    std::vector<float> s = floats(*scales, "scales");
    for (size_t d = 0; d < rank; ++d) {
      if (xs[d] == kBatch) {
        if (s[d] != 1.f) throw Unsupported{"scale " + attrToString(s[d]) + " of the symbolic batch dim (only 1 is supported)"};
        out.push_back(kBatch);
      } else {
        out.push_back(static_cast<int64_t>(std::floor(static_cast<float>(xs[d]) * s[d])));  // as ONNX's shape inference
      }
    }
    a.set("scales", s);
  }
  if (roi) a.set("roi", floats(*roi, "roi"));
  a.set("sizes", out);
  c.emit("Resize", {x}, a);
}

// --- proto-level support checks ---

std::vector<std::string> checkBatchNorm(const FlatNode& n, const std::set<std::string>& used) {
  std::vector<std::string> out = extraOutputsUnused(1, "a training statistics output")(n, used);
  if (const AttrProto* t = findAttr(n.proto, "training_mode"); t && t->i() != 0)
    out.push_back("training_mode=1 (training-time BatchNormalization) is not supported");
  return out;
}

std::vector<std::string> checkLayerNorm(const FlatNode& n, const std::set<std::string>&) {
  if (const AttrProto* stash = findAttr(n.proto, "stash_type"); stash && stash->i() != 1)
    return {"stash_type " + std::to_string(stash->i()) + " is not supported (statistics are computed in f32)"};
  return {};
}

std::vector<std::string> checkPad(const FlatNode& n, const std::set<std::string>&) {
  const AttrProto* mode = findAttr(n.proto, "mode");
  if (!mode || mode->s() == "constant" || mode->s() == "reflect" || mode->s() == "edge") return {};
  return {"mode '" + mode->s() + "' is not supported"};
}

std::vector<std::string> checkCast(const FlatNode& n, const std::set<std::string>&) {
  const AttrProto* to = findAttr(n.proto, "to");
  if (to && isSupportedElemType(static_cast<int32_t>(to->i()))) return {};
  std::string name = to && ::onnx::TensorProto::DataType_IsValid(static_cast<int>(to->i()))
                         ? ::onnx::TensorProto::DataType_Name(static_cast<::onnx::TensorProto::DataType>(to->i()))
                         : "?";
  return {"cast to " + name + " is not supported"};
}

std::vector<std::string> checkConstant(const FlatNode& n, const std::set<std::string>&) {
  static const std::set<std::string> supported = {"value", "value_float", "value_floats", "value_int", "value_ints"};
  std::vector<std::string> out;
  for (const AttrProto& a : n.proto.attribute())
    if (!supported.count(a.name())) out.push_back("attribute '" + a.name() + "' is not supported");
  return out;
}

// String attributes of Resize/Upsample outside what kiln implements
// (Upsample has no cubic mode).
std::vector<std::string> checkResize(const FlatNode& n, const std::set<std::string>&) {
  std::vector<std::string> out;
  for (const char* name : {"mode", "coordinate_transformation_mode", "nearest_mode"}) {
    const AttrProto* a = findAttr(n.proto, name);
    if (!a) continue;
    const std::vector<std::string>& values = resizeAttributeValues(name);
    if (std::find(values.begin(), values.end(), a->s()) == values.end() ||
        (n.proto.op_type() == "Upsample" && a->s() == "cubic"))
      out.push_back(std::string(name) + " '" + a->s() + "' is not supported");
  }
  return out;
}

std::string qualifiedOp(const ::onnx::NodeProto& n) {
  if (n.domain().empty() || n.domain() == "ai.onnx") return n.op_type();
  return n.domain() + ":" + n.op_type();
}

const std::map<std::string, OpRule>& rules() {
  static const std::map<std::string, OpRule> table = [] {
    std::map<std::string, OpRule> r;
    for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSwish", "Softplus", "Log", "Exp", "Sqrt", "Erf", "Abs",
                           "Neg", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "PRelu", "Add", "Sub", "Mul", "Div",
                           "Sum", "Max", "Min", "Mean", "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
                           "And", "Or", "Xor", "Not", "Where", "GlobalAveragePool", "GlobalMaxPool", "MatMul",
                           "Identity"})
      r[op] = direct(op);
    r["LeakyRelu"] = direct("LeakyRelu", {"alpha"});
    r["Elu"] = direct("Elu", {"alpha"});
    r["Selu"] = direct("Selu", {"alpha", "gamma"});
    r["HardSigmoid"] = direct("HardSigmoid", {"alpha", "beta"});
    r["Gemm"] = direct("Gemm", {"alpha", "beta", "transA", "transB"});
    r["Flatten"] = direct("Flatten", {"axis"});
    r["Concat"] = direct("Concat", {"axis"});
    r["Gather"] = direct("Gather", {"axis"});
    for (const Reduction& red : reductions())
      r[red.op] = {[op = std::string(red.op)](NodeConverter& c) { convertReduce(c, op); }, nullptr};
    r["Split"] = {convertSplit, nullptr};
    r["Expand"] = {convertExpand, nullptr};
    r["Tile"] = {convertTile, nullptr};
    r["DepthToSpace"] = direct("DepthToSpace", {"blocksize", "mode"});
    r["SpaceToDepth"] = direct("SpaceToDepth", {"blocksize"});
    for (const char* op : {"ArgMax", "ArgMin"}) r[op] = direct(op, {"axis", "keepdims", "select_last_index"});
    r["BatchNormalization"] = direct("BatchNormalization", {"epsilon"}, checkBatchNorm);
    r["InstanceNormalization"] = direct("InstanceNormalization", {"epsilon"});
    r["LRN"] = direct("LRN", {"size", "alpha", "beta", "bias"});
    r["LayerNormalization"] = direct("LayerNormalization", {"axis", "epsilon"}, checkLayerNorm);
    r["Conv"] = {convertConv, nullptr};
    r["ConvTranspose"] = {convertConvTranspose, nullptr};
    r[std::string(kKerasDomain) + ":SeparableConv2D"] = {convertSeparableConv2D, nullptr};
    r["MaxPool"] = {[](NodeConverter& c) { convertPool(c, true); }, extraOutputsUnused(1, "the Indices output")};
    r["AveragePool"] = {[](NodeConverter& c) { convertPool(c, false); }, nullptr};
    r["Clip"] = {convertClip, nullptr};
    r["Reshape"] = {convertReshape, nullptr};
    r["Transpose"] = {convertTranspose, nullptr};
    r["Squeeze"] = {convertSqueeze, nullptr};
    r["Unsqueeze"] = {convertUnsqueeze, nullptr};
    r["Pad"] = {convertPad, checkPad};
    r["Slice"] = {convertSlice, nullptr};
    r["Softmax"] = {[](NodeConverter& c) { convertSoftmax(c, "Softmax"); }, nullptr};
    r["LogSoftmax"] = {[](NodeConverter& c) { convertSoftmax(c, "LogSoftmax"); }, nullptr};
    r["Hardmax"] = {[](NodeConverter& c) { convertSoftmax(c, "Hardmax"); }, nullptr};
    r["Pow"] = {convertPow, nullptr};
    r["Mod"] = direct("Mod", {"fmod"});
    r["Range"] = {convertRange, nullptr};
    r["ScatterND"] = direct("ScatterND", {"reduction"});
    r["Einsum"] = {[](NodeConverter& c) { EinsumLowering(c).run(); }, nullptr};
    r["Dropout"] = {convertDropout, extraOutputsUnused(1, "the mask output")};
    r["Cast"] = {convertCast, checkCast};
    r["Constant"] = {convertConstant, checkConstant};
    r["ConstantOfShape"] = {convertConstantOfShape, nullptr};
    r["Shape"] = {convertShape, nullptr};
    r["Resize"] = {convertResize, checkResize};
    // Only the support scan of models of opsets 7-9 sees Upsample: the
    // importer gets them upgraded (Upsample is deprecated from opset 10 on).
    r["Upsample"] = {[](NodeConverter& c) { c.fail("Upsample is imported from models of opsets 7 to 9 only"); },
                     checkResize};
    return r;
  }();
  return table;
}

}  // namespace

void checkSupport(const FlatNode& n, const std::set<std::string>& used, Issues& issues) {
  std::string where = nodeWhere(n.label, n.proto.op_type());
  const std::string& domain = n.proto.domain();
  auto rule = rules().find(qualifiedOp(n.proto));
  if (rule == rules().end()) {
    bool known = domain.empty() || domain == "ai.onnx" || domain == kKerasDomain;
    issues.add(where, known ? "unsupported op '" + n.proto.op_type() + "'"
                            : "unsupported domain '" + domain + "' (op '" + n.proto.op_type() + "')");
    return;
  }
  if (rule->second.check)
    for (const std::string& problem : rule->second.check(n, used)) issues.add(where, problem);
}

void convertNode(const FlatNode& n, GraphBuilder& b) {
  NodeConverter c(n, b);
  rules().at(qualifiedOp(n.proto)).convert(c);
}

}  // namespace kiln::onnx_import
