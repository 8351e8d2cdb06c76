#!/usr/bin/python3
"""The models of bench/compare, built in PyTorch with fixed seeds, and their
ONNX export.

  compare_models.py export WORKDIR [--models a,b]   (run by bench/compare)

For each model WORKDIR gets NAME.onnx (what kiln and ONNX Runtime run) and
NAME.pt (its PyTorch state_dict, which compare_torch.py loads into the same
architecture); WORKDIR/models.json lists them with their input/output names
and per-sample input shape. WORKDIR/identity.onnx (an Identity on 1x1x28x28)
measures ONNX Runtime's JS binding overhead.

  separable_cnn_64   examples/fashion_mnist/separable_cnn.json (Conv-BN-ReLU,
                     four Keras SeparableConv2D blocks as depthwise + pointwise
                     convs with BN-ReLU, two max pools, GAP, Dense-softmax)
                     on a 1x1x64x64 input (the spec's one channel), random
                     weights (he_normal) and random BN statistics, exported by
                     torch.onnx
  fashion_mnist_cnn  examples/fashion_mnist/cnn.onnx as shipped; for PyTorch
                     the same nn.Sequential (scripts/train_demo_model.py's
                     build()) with its weights read from the ONNX initializers
  mobilenet_v2_224   torchvision.models.mobilenet_v2(), random weights, BN
                     running statistics measured on random inputs (see
                     _calibrated_torchvision)
  resnet18_224       torchvision.models.resnet18(), likewise

Exports: eval mode, opset 13, batch axis dynamic ("N"), torch.onnx's
defaults otherwise (constant folding on).
"""
import argparse
import json
import os
import sys

import numpy as np

# Debian's onnx 1.12 predates numpy 1.24, which removed these aliases.
np.float = float
np.int = int
np.bool = bool
np.object = object

import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "fashion_mnist")
SEED = 0


# ---- separable_cnn.json in PyTorch ----------------------------------------

def _same_padding(kernel):
    if kernel % 2 != 1:
        raise ValueError(f"'same' padding with an even kernel {kernel} is not symmetric")
    return kernel // 2


def build_from_spec(spec, in_channels):
    """nn.Sequential of the Keras-style layer list of a kiln-train spec (the
    layer types separable_cnn.json uses)."""
    layers, c = [], in_channels
    for i, l in enumerate(spec["layers"]):
        t = l["type"]
        if t in ("Conv2D", "SeparableConv2D"):
            k = l["kernel_size"]
            pad = _same_padding(k) if l.get("padding", "valid") == "same" else 0
            bias = l.get("use_bias", True)
            if t == "Conv2D":
                layers.append(nn.Conv2d(c, l["filters"], k, padding=pad, bias=bias))
            else:  # Keras SeparableConv2D: depthwise (groups=C) then pointwise 1x1
                dm = l.get("depth_multiplier", 1)
                layers += [nn.Conv2d(c, c * dm, k, padding=pad, groups=c, bias=False),
                           nn.Conv2d(c * dm, l["filters"], 1, bias=bias)]
            c = l["filters"]
        elif t == "BatchNormalization":
            layers.append(nn.BatchNorm2d(c))
        elif t == "Activation":
            if l["activation"] != "relu":
                raise ValueError(f"layer {i}: activation {l['activation']} not supported here")
            layers.append(nn.ReLU())
        elif t == "MaxPooling2D":
            p = l["pool_size"]
            layers.append(nn.MaxPool2d(p, stride=l.get("strides", p)))
        elif t == "GlobalAveragePooling2D":
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif t == "Dropout":
            layers.append(nn.Dropout(l["rate"]))
        elif t == "Dense":
            layers.append(nn.Linear(c, l["units"]))
            c = l["units"]
            act = l.get("activation")
            if act == "softmax":
                layers.append(nn.Softmax(dim=1))
            elif act not in (None, "linear"):
                raise ValueError(f"layer {i}: Dense activation {act} not supported here")
        else:
            raise ValueError(f"layer {i}: type {t} not supported here")
    return nn.Sequential(*layers)


def _randomize(model):
    """he_normal convs (as the spec asks) and non-trivial BN statistics, so a
    wrong BN fold would show in the output check."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def separable_cnn_64():
    with open(os.path.join(EXAMPLES, "separable_cnn.json")) as f:
        spec = json.load(f)
    model = build_from_spec(spec, in_channels=spec["input_shape"][2])
    _randomize(model)
    return model


# ---- the shipped demo CNN ---------------------------------------------------

def fashion_mnist_cnn_arch():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from train_demo_model import build  # the architecture cnn.onnx was exported from
    return build()


def fashion_mnist_cnn():
    """The architecture with cnn.onnx's weights (initializer names are the
    nn.Sequential's state_dict keys)."""
    import onnx
    from onnx import numpy_helper
    model = fashion_mnist_cnn_arch()
    graph = onnx.load(os.path.join(EXAMPLES, "cnn.onnx")).graph
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"cnn.onnx initializers do not match the architecture: missing {missing}, "
                           f"unexpected {unexpected}")
    return model


def _torchvision(name):
    import torchvision
    return getattr(torchvision.models, name)()  # random weights (no weights= given)


def _calibrated_torchvision(name):
    """Random weights, and BN running statistics measured on random inputs.
    With torchvision's init and the default statistics (mean 0, var 1) the
    eval-mode activations shrink layer by layer (MobileNetV2's logits come
    out near 1e-15, ResNet-18's near 1e-3), and outputs that small would pass
    any output check; statistics of the model's own activations keep them
    near unit scale, so the check compares real numbers."""
    model = _torchvision(name)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(8, 3, 224, 224))
    return model.eval()


# name -> builder of the model with its weights, builder of the bare
# architecture the state_dict loads into, per-sample input shape, the ONNX
# file to use instead of an export, input and output names, a description)
MODELS = {
    "separable_cnn_64": dict(build=separable_cnn_64, arch=separable_cnn_64, shape=[1, 64, 64],
                             onnx=None, input="input", output="output",
                             about="examples/fashion_mnist/separable_cnn.json in PyTorch (SeparableConv2D as "
                                   "depthwise + pointwise convs), 64x64, random weights and BN statistics"),
    "fashion_mnist_cnn": dict(build=fashion_mnist_cnn, arch=fashion_mnist_cnn_arch, shape=[1, 28, 28],
                              onnx=os.path.join(EXAMPLES, "cnn.onnx"), input="image", output="probabilities",
                              about="examples/fashion_mnist/cnn.onnx as shipped; PyTorch: the same layers "
                                    "with its initializers"),
    "mobilenet_v2_224": dict(build=lambda: _calibrated_torchvision("mobilenet_v2"), arch=lambda: _torchvision("mobilenet_v2"),
                             shape=[3, 224, 224], onnx=None, input="input", output="output",
                             about="torchvision mobilenet_v2(), random weights, BN statistics from random inputs, 224x224"),
    "resnet18_224": dict(build=lambda: _calibrated_torchvision("resnet18"), arch=lambda: _torchvision("resnet18"),
                         shape=[3, 224, 224], onnx=None, input="input", output="output",
                         about="torchvision resnet18(), random weights, BN statistics from random inputs, 224x224"),
}


def load_torch_model(workdir, name):
    """The eval-mode PyTorch model of `name` with the exported weights."""
    model = MODELS[name]["arch"]()
    model.load_state_dict(torch.load(os.path.join(workdir, f"{name}.pt")))
    return model.eval()


def write_identity(path):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 28, 28])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def export(workdir, names):
    os.makedirs(workdir, exist_ok=True)
    listing = []
    for name in names:
        info = MODELS[name]
        torch.manual_seed(SEED)
        model = info["build"]().eval()
        torch.save(model.state_dict(), os.path.join(workdir, f"{name}.pt"))
        onnx_path = info["onnx"]
        if onnx_path is None:
            onnx_path = os.path.join(workdir, f"{name}.onnx")
            dummy = torch.rand(1, *info["shape"])
            torch.onnx.export(model, dummy, onnx_path, opset_version=13, input_names=[info["input"]],
                              output_names=[info["output"]],
                              dynamic_axes={info["input"]: {0: "N"}, info["output"]: {0: "N"}})
        listing.append({"name": name, "onnx": onnx_path, "torch_state": os.path.join(workdir, f"{name}.pt"),
                        "input": info["input"], "output": info["output"], "sample_shape": info["shape"],
                        "description": info["about"]})
        print(f"compare_models: {name}: {onnx_path}", file=sys.stderr)
    write_identity(os.path.join(workdir, "identity.onnx"))
    with open(os.path.join(workdir, "models.json"), "w") as f:
        json.dump({"seed": SEED, "models": listing}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("workdir")
    e.add_argument("--models", default=",".join(MODELS))
    a = p.parse_args()
    names = [n for n in a.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    export(a.workdir, names)


if __name__ == "__main__":
    main()
