#include "compiler/ops/epilogue.h"

#include "compiler/ops/scalar_functions.h"

namespace kiln {

Epilogue::Epilogue(const Attributes& attrs) {
  const std::string& act = attrs.getString("activation");
  alpha_ = attrs.getFloat("activation_alpha");
  beta_ = attrs.getFloat("activation_beta");
  if (act.empty()) kind_ = Kind::None;
  else if (act == "Relu") kind_ = Kind::Relu;
  else if (act == "Clip") kind_ = Kind::Clip;
  else if (act == "LeakyRelu") kind_ = Kind::LeakyRelu;
  else if (act == "Sigmoid") kind_ = Kind::Sigmoid;
  else if (act == "HardSwish") kind_ = Kind::HardSwish;
  else throw Error("unknown fused activation '" + act + "'");
}

void Epilogue::apply(float* v, int64_t n) const {
  switch (kind_) {
    case Kind::None: return;
    case Kind::Relu: for (int64_t i = 0; i < n; ++i) v[i] = scalar::relu(v[i]); return;
    case Kind::Clip: for (int64_t i = 0; i < n; ++i) v[i] = scalar::clip(v[i], alpha_, beta_); return;
    case Kind::LeakyRelu: for (int64_t i = 0; i < n; ++i) v[i] = scalar::leakyRelu(v[i], alpha_); return;
    case Kind::Sigmoid: for (int64_t i = 0; i < n; ++i) v[i] = scalar::sigmoid(v[i]); return;
    case Kind::HardSwish: for (int64_t i = 0; i < n; ++i) v[i] = scalar::hardSwish(v[i]); return;
  }
}

std::vector<AttrSpec> epilogueAttrSpecs() {
  return {{"activation", AttrKind::String, AttrValue{std::string()}},
          {"activation_alpha", AttrKind::Float, AttrValue{0.f}},
          {"activation_beta", AttrKind::Float, AttrValue{0.f}}};
}

void checkEpilogue(const InferContext& ctx) {
  try {
    Epilogue e(ctx.attrs());
  } catch (const Error& e) {
    ctx.fail(e.message());
  }
}

}  // namespace kiln
