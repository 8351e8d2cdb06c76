// split-separable: SeparableConv2D(x, Wd, Wp, b) becomes a depthwise
// Conv(x, Wd; group = C) followed by a 1x1 pointwise Conv(., Wp, b). Legal
// because that is the composite's definition (compiler/ops/conv.cpp); once
// split, a following BatchNormalization folds into the pointwise Conv. Both
// halves carry the same `fusion_group` so the backend can fuse them again at
// tile level (the depthwise tile feeding the pointwise kernel while in cache).
#include "compiler/passes/passes.h"
#include "compiler/passes/rewrite.h"

namespace kiln {

PassDef splitSeparablePass() {
  return {"split-separable", "split SeparableConv2D into depthwise + pointwise Conv",
          [](Graph& g, PassStats& stats, const PassOptions&) {
            for (Node* sep : g.nodes()) {
              if (sep->opName() != "SeparableConv2D") continue;
              Value* x = sep->input(0);
              std::string group = sep->name.empty() ? g.uniqueName("separable") : sep->name;
              Attributes dw;
              dw.set("strides", sep->attrs.getInts("strides"));
              dw.set("pads", sep->attrs.getInts("pads"));
              dw.set("dilations", sep->attrs.getInts("dilations"));
              dw.set("group", x->type.shape[1]);
              dw.set("fusion_group", group);
              Node* depthwise = g.addNode("Conv", sep->name + "/depthwise", {x, sep->input(1)}, dw);
              Attributes pw;
              pw.set("strides", std::vector<int64_t>{1, 1});
              pw.set("pads", std::vector<int64_t>{0, 0, 0, 0});
              pw.set("dilations", std::vector<int64_t>{1, 1});
              pw.set("fusion_group", group);
              std::vector<Value*> pwInputs{depthwise->output(), sep->input(2)};
              if (sep->input(3)) pwInputs.push_back(sep->input(3));
              Node* pointwise = g.addNode("Conv", sep->name + "/pointwise", pwInputs, pw);
              replaceValue(g, sep->output(), pointwise->output());
              stats.add("separable convs split");
            }
            g.topoSort();
          }};
}

}  // namespace kiln
