#!/usr/bin/python3
"""Builds small PyTorch CNNs (fixed seeds, eval mode), exports them to ONNX
and writes one ONNX test case per model for kiln_conformance:
OUTDIR/<name>/model.onnx + test_data_set_0/input_0.pb, output_0.pb.

Usage: gen_torch_fixtures.py OUTDIR [--set fixtures|zoo] [--only NAME ...]

`--set zoo` writes whole torchvision 0.14 networks instead (random weights,
low resolution): the classification and segmentation models users bring,
compiled once by the conformance.zoo_* tests.

Besides the exported models, a few fixtures are written directly with
onnx.helper, for constructs PyTorch never exports (a Keras SeparableConv2D as
a model-local function in domain ai.kiln.keras); their expected outputs come
from the same computation written with torch.nn.functional in float64.

Exports keep BatchNormalization as a node (TrainingMode.PRESERVE on an eval
model, no constant folding), and BN running statistics are randomized, so a
wrong BN fold or a wrong epsilon shows up numerically. Expected outputs are
computed in float64 (a double copy of the model) and rounded to float32, so
the reference is not itself carrying float32 accumulation error.
"""
import argparse
import copy
import os
import shutil
import sys
import time

import numpy as np

# Debian's onnx 1.12 predates numpy 1.24, which removed these aliases.
np.float = float
np.int = int
np.bool = bool
np.object = object

import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402


def conv_bn(cin, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=False, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class ConvBnReluStack(nn.Module):
    """Conv+BN+ReLU with and without bias, stride 2, asymmetric kernel and
    per-axis padding, dilation, and a 1x1 conv ending in BN (no ReLU)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(3, 8, 3, padding=1, act=nn.ReLU()),
            conv_bn(8, 16, 3, stride=2, padding=1, bias=True, act=nn.ReLU()),
            conv_bn(16, 16, 3, padding=2, dilation=2, act=nn.ReLU()),
            conv_bn(16, 12, (3, 5), stride=(2, 1), padding=(1, 2), bias=True, act=nn.ReLU()),
            conv_bn(12, 8, 1),
        )

    def forward(self, x):
        return self.body(x)


class DepthwiseSeparable(nn.Module):
    """MobileNet-v1 style blocks: depthwise conv (groups=C) + BN + ReLU6,
    then pointwise conv + BN + ReLU6; the second block has stride 2."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, padding=1, act=nn.ReLU6())
        self.block1 = nn.Sequential(conv_bn(16, 16, 3, padding=1, groups=16, act=nn.ReLU6()),
                                    conv_bn(16, 24, 1, act=nn.ReLU6()))
        self.block2 = nn.Sequential(conv_bn(24, 24, 3, stride=2, padding=1, groups=24, act=nn.ReLU6()),
                                    conv_bn(24, 32, 1, act=nn.ReLU6()))
        # depth multiplier 2: groups=C with 2C output channels
        self.block3 = nn.Sequential(conv_bn(32, 64, 3, padding=1, groups=32, bias=True, act=nn.ReLU6()),
                                    conv_bn(64, 16, 1))

    def forward(self, x):
        return self.block3(self.block2(self.block1(self.stem(x))))


class ResidualBlocks(nn.Module):
    """An identity-shortcut basic block and a downsampling one whose shortcut
    is a strided 1x1 conv + BN."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, padding=1, act=nn.ReLU())
        self.a1 = conv_bn(16, 16, 3, padding=1, act=nn.ReLU())
        self.a2 = conv_bn(16, 16, 3, padding=1)
        self.b1 = conv_bn(16, 32, 3, stride=2, padding=1, act=nn.ReLU())
        self.b2 = conv_bn(32, 32, 3, padding=1)
        self.b_short = conv_bn(16, 32, 1, stride=2)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.a2(self.a1(x)) + x)
        x = F.relu(self.b2(self.b1(x)) + self.b_short(x))
        return x


class KerasClassifier(nn.Module):
    """The classic Keras MNIST CNN: conv/relu/maxpool twice, flatten, dense,
    dense, softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.softmax(self.fc2(x), dim=1)


class DynamicViewMlp(nn.Module):
    """Dynamic batch; `x.view(x.size(0), -1)` exports as Shape/Gather/
    Unsqueeze/Concat/Reshape, which the importer must fold."""

    def __init__(self):
        super().__init__()
        self.conv = conv_bn(3, 6, 3, stride=2, padding=1, act=nn.ReLU())
        self.fc = nn.Linear(6 * 6 * 6, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x.view(x.size(0), -1)
        return F.log_softmax(self.fc(x), dim=1)


class ConvAct(nn.Module):
    """conv + BN + one activation + conv, so the activation sees both signs."""

    def __init__(self, act):
        super().__init__()
        self.conv1 = conv_bn(3, 8, 3, padding=1, bias=True, act=act)
        self.conv2 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class Pools(nn.Module):
    """Average pooling with ceil_mode (with and without counting the padding)
    and max pooling with ceil_mode."""

    def __init__(self):
        super().__init__()
        self.avg_ceil = nn.AvgPool2d(3, stride=2, ceil_mode=True)
        self.avg_ceil_pad = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        self.avg_ceil_nopad = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.max_ceil = nn.MaxPool2d(3, stride=2, ceil_mode=True)

    def forward(self, x):
        # four outputs: the shapes differ, and a multi-output case exercises the runner
        return self.avg_ceil(x), self.avg_ceil_pad(x), self.avg_ceil_nopad(x), self.max_ceil(x)


class PadModes(nn.Module):
    """Reflect, edge (replicate) and constant padding, asymmetric per side;
    exported as ONNX Pad with mode reflect/edge/constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        a = self.conv(nn.ReflectionPad2d((1, 2, 2, 1))(x))
        b = self.conv(nn.ReplicationPad2d((2, 1, 1, 2))(x))
        c = self.conv(nn.ConstantPad2d((1, 2, 2, 1), 0.5)(x))
        return torch.cat([a, b, c], dim=1)


class MoreActivations(nn.Module):
    """PReLU (per channel), Tanh, Softplus, SELU, HardSigmoid and a global
    max pool, each after a conv so every branch sees both signs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.prelu = nn.PReLU(8, init=0.2)
        with torch.no_grad():
            self.prelu.weight.uniform_(0.05, 0.5)

    def forward(self, x):
        x = self.conv(x)
        y = self.prelu(x) + torch.tanh(x) + F.softplus(x) + F.selu(x) + F.hardsigmoid(x)
        return y * F.adaptive_max_pool2d(x, 1)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: rank-5 Reshape, Transpose, Reshape back,
    between grouped convs."""

    def __init__(self, groups=4):
        super().__init__()
        self.groups = groups
        self.conv1 = conv_bn(8, 16, 1, groups=groups, act=nn.ReLU())
        self.conv2 = conv_bn(16, 16, 3, padding=1, groups=16)

    def forward(self, x):
        x = self.conv1(x)
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.conv2(x)


class TokenMlp(nn.Module):
    """Linear layers on a rank-3 tensor (MatMul + Add rather than Gemm), a
    Transpose, and a mean over an axis (ReduceMean)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = self.conv(x).flatten(2).transpose(1, 2)  # [N, tokens, 8]
        x = self.fc2(F.relu(self.fc1(x)))
        return x.mean(dim=1)


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1(x)), F.relu(self.expand3(x))], dim=1)


class SqueezeNetish(nn.Module):
    """SqueezeNet head: conv, ceil-mode maxpool, two Fire modules (Concat),
    1x1 classifier conv, global average pool, flatten."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2)
        self.fire1 = Fire(16, 8, 16)
        self.fire2 = Fire(32, 8, 16)
        self.classifier = nn.Conv2d(32, 10, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 3, stride=2, ceil_mode=True)
        x = self.fire2(self.fire1(x))
        x = F.adaptive_avg_pool2d(F.relu(self.classifier(x)), 1)
        return torch.flatten(x, 1)


class NhwcConvBn(nn.Module):
    """Conv + BN on an NHWC tensor, computed in NCHW between two permutes:
    the Transpose pair tf2onnx puts around every conv of a TensorFlow model."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = conv_bn(cin, cout, k, stride=stride, padding=k // 2)

    def forward(self, x):
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class TfNhwcResidual(nn.Module):
    """A TensorFlow-style network as tf2onnx exports it: NHWC input, every
    conv wrapped in NHWC->NCHW / NCHW->NHWC Transposes, while activations, a
    per-channel bias add (a constant broadcast on the last axis), the residual
    add and the global mean run in NHWC. Transpose cancellation should leave
    only the edge Transposes (after the input, before the mean)."""

    def __init__(self):
        super().__init__()
        self.stem = NhwcConvBn(3, 16, 3, stride=2)
        self.a1 = NhwcConvBn(16, 16, 3)
        self.a2 = NhwcConvBn(16, 16, 3)
        self.shift = nn.Parameter(torch.randn(16) * 0.1)
        self.b1 = NhwcConvBn(16, 24, 3, stride=2)
        self.b2 = NhwcConvBn(24, 24, 1)
        self.fc = nn.Linear(24, 10)
        # The module, not F.relu6: that exports Clip's bounds through Cast
        # nodes, which the importer does not take as constant operands.
        self.relu6 = nn.ReLU6()

    def forward(self, x):
        x = self.relu6(self.stem(x))
        x = F.relu(self.a2(F.relu(self.a1(x))) + x + self.shift)
        x = F.leaky_relu(self.b2(torch.sigmoid(self.b1(x))), 0.1)
        return self.fc(x.mean(dim=(1, 2)))


def mobilenet_v2():
    return torchvision.models.mobilenet_v2(weights=None, width_mult=1.0)


def resnet18():
    return torchvision.models.resnet18(weights=None)


def keras_separable_function(gen):
    """Keras SeparableConv2D layers as ai.kiln.keras.SeparableConv2D calls of a
    model-local function (body: depthwise Conv + 1x1 Conv with bias), each
    followed by BatchNormalization (Keras' epsilon 1e-3) and Relu, after a
    plain conv stem. The importer keeps each call as one IR op; -O2 must split
    it and fold the BN into the pointwise half. Returns (model, input, expected
    output), the output computed in float64 from the function's definition."""
    from onnx import helper, TensorProto

    c = 8  # channels into both separable convs: the body's group is fixed
    def ref_attr(name, kind):
        return onnx.AttributeProto(name=name, ref_attr_name=name, type=kind)
    depthwise = helper.make_node("Conv", ["x", "wd"], ["d"], name="depthwise", group=c)
    depthwise.attribute.extend([ref_attr("strides", onnx.AttributeProto.INTS),
                                ref_attr("pads", onnx.AttributeProto.INTS),
                                ref_attr("auto_pad", onnx.AttributeProto.STRING),
                                ref_attr("dilations", onnx.AttributeProto.INTS)])
    pointwise = helper.make_node("Conv", ["d", "wp", "b"], ["y"], name="pointwise")
    function = helper.make_function("ai.kiln.keras", "SeparableConv2D", ["x", "wd", "wp", "b"], ["y"],
                                    [depthwise, pointwise], [helper.make_opsetid("", 13)],
                                    ["strides", "pads", "auto_pad", "dilations", "depth_multiplier"])

    # Drawn in float32, computed with in float64: the reference then uses
    # exactly the weights the model stores.
    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).double()

    def bn_params(ch):
        return [(torch.rand(ch, generator=gen) + 0.5).double(), rand(ch, scale=0.2),
                rand(ch, scale=0.2), (torch.rand(ch, generator=gen) * 1.5 + 0.5).double()]

    x = rand(1, 3, 12, 12)
    w0, b0 = rand(c, 3, 3, 3, scale=0.3), rand(c, scale=0.1)
    # sep1: depth_multiplier 2, explicit pads; sep2: stride 2 with Keras'
    # padding="same" (SAME_UPPER: the odd padding row/column at the end).
    wd1, wp1, bp1 = rand(2 * c, 1, 3, 3, scale=0.3), rand(c, 2 * c, 1, 1, scale=0.3), rand(c, scale=0.1)
    wd2, wp2, bp2 = rand(c, 1, 3, 3, scale=0.3), rand(12, c, 1, 1, scale=0.3), rand(12, scale=0.1)
    bn1, bn2 = bn_params(c), bn_params(12)
    eps = 1e-3

    def bn(t, p):
        gamma, beta, mean, var = p
        return F.batch_norm(t, mean, var, gamma, beta, training=False, eps=eps)

    h = F.relu(F.conv2d(x, w0, b0, padding=1))
    h = F.relu(bn(F.conv2d(F.conv2d(h, wd1, padding=1, groups=c), wp1, bp1), bn1))
    h = F.relu(bn(F.conv2d(F.conv2d(F.pad(h, (0, 1, 0, 1)), wd2, stride=2, groups=c), wp2, bp2), bn2))

    inits = {"W0": w0, "B0": b0, "WD1": wd1, "WP1": wp1, "BP1": bp1, "WD2": wd2, "WP2": wp2, "BP2": bp2}
    for i, p in ((1, bn1), (2, bn2)):
        inits.update({f"bn{i}_scale": p[0], f"bn{i}_bias": p[1], f"bn{i}_mean": p[2], f"bn{i}_var": p[3]})
    nodes = [
        helper.make_node("Conv", ["x", "W0", "B0"], ["stem"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["stem"], ["stem_relu"], name="stem_relu"),
        helper.make_node("SeparableConv2D", ["stem_relu", "WD1", "WP1", "BP1"], ["sep1"], name="sep1",
                         domain="ai.kiln.keras", strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1],
                         depth_multiplier=2),
        helper.make_node("BatchNormalization", ["sep1", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["bn1"],
                         name="bn1", epsilon=eps),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("SeparableConv2D", ["relu1", "WD2", "WP2", "BP2"], ["sep2"], name="sep2",
                         domain="ai.kiln.keras", strides=[2, 2], auto_pad="SAME_UPPER", dilations=[1, 1],
                         depth_multiplier=1),
        helper.make_node("BatchNormalization", ["sep2", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["bn2"],
                         name="bn2", epsilon=eps),
        helper.make_node("Relu", ["bn2"], ["y"], name="relu2"),
    ]
    graph = helper.make_graph(
        nodes, "keras_separable", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(h.shape))],
        [numpy_helper.from_array(t.float().numpy(), n) for n, t in inits.items()])
    model = helper.make_model(graph, functions=[function],
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.kiln.keras", 1)])
    model.ir_version = 8  # functions need IR 8; Debian's onnx writes that already, newer ones more
    return model, x.float(), h.float()


# name -> (model factory, input shape used in the data, opset, dynamic batch)
class FunctionalOps(nn.Module):
    """Functional forms exporters lower differently from the modules:
    F.relu6 and torch.clamp (Clip with Cast(Constant) bounds), x*sigmoid(x),
    F.hardsigmoid, a mean over the spatial dims (ReduceMean), log_softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.relu6(self.bn(self.conv(x)))
        y = y * torch.sigmoid(y)
        y = torch.clamp(F.hardsigmoid(y) * y, -1.0, 2.0)
        return F.log_softmax(self.fc(y.mean(dim=(2, 3))), dim=1)


class ReduceSplitShuffle(nn.Module):
    """The reduction and data-movement ops: nn.InstanceNorm2d(affine=True)
    (InstanceNormalization), torch.split (Split with sizes as an input) and
    torch.chunk (Slices over folded shape arithmetic), Tensor.expand_as
    (Expand by the input's own shape, batch included: x.expand with -1 sizes
    exports Equal/Where on the sizes), nn.PixelShuffle (DepthToSpace, CRD),
    sums and amax over dims (ReduceSum with axes as an input, ReduceMax),
    torch.argmax (ArgMax, cast to float into the output). nn.LocalResponseNorm
    exports as its Pad/AveragePool/If decomposition, not as ONNX LRN, so the
    helper fixture lrn_instance_norm covers LRN."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.InstanceNorm2d(16, affine=True)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.normal_(0, 0.2)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        y = F.relu(self.norm(self.conv(x)))
        a, b = torch.split(y, [4, 12], dim=1)
        c1, c2, c3 = torch.chunk(b, 3, dim=1)
        up = self.shuffle(c1 + c2)
        s = (a * a[:, :, :1, :].expand_as(a)).sum(dim=(2, 3))
        m = c3.amax(dim=(1, 3))
        return s + m.mean(dim=1, keepdim=True) + torch.argmax(s, dim=1, keepdim=True).float(), up.sum(dim=1)


class UNetDecoder(nn.Module):
    """A tiny U-Net: Conv+BN+ReLU encoder stages with MaxPool down, decoder
    stages upsampling with ConvTranspose2d (k=2, s=2 with bias; k=3, s=2,
    p=1, output_padding=1 without) + BN + ReLU, each concatenated with its
    skip connection, and a 1x1 head."""

    def __init__(self):
        super().__init__()
        self.enc1 = conv_bn(3, 8, 3, padding=1, act=nn.ReLU())
        self.enc2 = conv_bn(8, 16, 3, padding=1, act=nn.ReLU())
        self.mid = conv_bn(16, 32, 3, padding=1, act=nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.Sequential(nn.ConvTranspose2d(32, 16, 2, stride=2), nn.BatchNorm2d(16), nn.ReLU())
        self.dec2 = conv_bn(32, 16, 3, padding=1, act=nn.ReLU())
        self.up1 = nn.Sequential(nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1, bias=False),
                                 nn.BatchNorm2d(8), nn.ReLU())
        self.dec1 = conv_bn(16, 8, 3, padding=1, act=nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)


class ConvNeXtBlock(nn.Module):
    """A ConvNeXt block after a 3x3 stem: depthwise 7x7 conv, permute to
    NHWC, nn.LayerNorm over the channels, Linear 4x expansion, GELU (exact
    or tanh), Linear back, permute to NCHW, residual add. Below opset 17
    torch.onnx decomposes the LayerNorm (ReduceMean ... Sqrt, Div, Mul, Add)
    and writes GELU as Erf/Tanh arithmetic, what fuse-layernorm and
    fuse-gelu match."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.dwconv = nn.Conv2d(16, 16, 7, padding=3, groups=16)
        self.norm = nn.LayerNorm(16)
        self.expand = nn.Linear(16, 64)
        self.act = nn.GELU(approximate=approximate)
        self.project = nn.Linear(64, 16)
        with torch.no_grad():  # affine params away from the 1/0 defaults
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        x = self.stem(x)
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.project(self.act(self.expand(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class FpnHead(nn.Module):
    """A small feature pyramid: a stem and two stride-2 stages, top-down merges
    that add a lateral 1x1 conv to the coarser level upsampled (nearest x2 by
    scale, bilinear align_corners=False to the finer level's size), and a head
    conv over the Concat of the levels brought to one size (the last, the
    24-channel stage, fills its last channel block only partly), resized
    down to a size at non-integer ratios."""

    def __init__(self):
        super().__init__()
        self.c1 = conv_bn(3, 12, 3, padding=1, act=nn.ReLU())
        self.c2 = conv_bn(12, 24, 3, stride=2, padding=1, act=nn.ReLU())
        self.c3 = conv_bn(24, 24, 3, stride=2, padding=1, act=nn.ReLU())
        self.lat1, self.lat2, self.lat3 = nn.Conv2d(12, 16, 1), nn.Conv2d(24, 16, 1), nn.Conv2d(24, 16, 1)
        self.head = nn.Conv2d(16 * 3 + 24, 12, 3, padding=1)

    def forward(self, x):
        c1 = self.c1(x)
        c2 = self.c2(c1)
        c3 = self.c3(c2)
        p3 = self.lat3(c3)
        p2 = self.lat2(c2) + F.interpolate(p3, scale_factor=2, mode="nearest")
        p1 = self.lat1(c1) + F.interpolate(p2, size=c1.shape[-2:], mode="bilinear", align_corners=False)
        size = p1.shape[-2:]
        levels = [p1, F.interpolate(p2, scale_factor=2, mode="nearest"),
                  F.interpolate(p3, size=size, mode="bilinear", align_corners=False),
                  F.interpolate(c3, scale_factor=4, mode="bilinear", align_corners=True)]
        return F.interpolate(self.head(torch.cat(levels, 1)), size=(20, 18), mode="bilinear", align_corners=False)


class EinsumForms(nn.Module):
    """The torch.einsum forms the importer lowers (ONNX's own einsum cases
    are float64, out of kiln's scope): a transpose, a sum, the batch
    diagonal, an implicit-output trace, an outer product scaled by an inner
    one, a linear map, a three-operand chain, a broadcast ellipsis and
    maxvit's attention pair in its spaced capital letters."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 5))
        self.v = nn.Parameter(torch.randn(5, 3))
        self.u = nn.Parameter(torch.randn(1, 3, 4, 4))

    def forward(self, x):  # x [2, 3, 4, 4]
        flat = x.flatten()
        q = x.reshape(1, 2, 3, 4, 4)
        k = x.transpose(-1, -2).reshape(1, 2, 3, 4, 4) * 0.5
        attn = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k).softmax(-1)
        return (torch.einsum("bcij->bcji", x),
                torch.einsum("bcij->bi", x),
                torch.einsum("...ii->...i", x),
                torch.einsum("bcii", x),
                torch.einsum("i,j->ij", flat[:6], flat[6:10]) * torch.einsum("i,i", flat[:16], flat[16:32]),
                torch.einsum("bcij,jk->bcik", x, self.w),
                torch.einsum("bcij,jk,kl->bcil", x, self.w, self.v),
                torch.einsum("...ij,...jk->...ik", x, self.u),
                torch.einsum("B G H I J, B G H J D -> B G H I D", attn, q))


class ShiftedWindowBlocks(nn.Module):
    """Two torchvision Swin blocks (window 4, the second shifted by 2) on a
    patch-embedded 10x10 grid, which they pad to whole windows: what swin_t
    exports at every stage. The padding and shift mask come from Mod, Range
    and ScatterND over constant shapes (folded at import and by
    constant-fold), torch.roll from Slice + Concat, the relative position
    bias from a Gather of its table."""

    def __init__(self):
        super().__init__()
        from torchvision.models.swin_transformer import SwinTransformerBlock
        self.embed = nn.Conv2d(3, 16, 2, stride=2)
        self.blocks = nn.Sequential(SwinTransformerBlock(16, 2, [4, 4], [0, 0]),
                                    SwinTransformerBlock(16, 2, [4, 4], [2, 2]))
        with torch.no_grad():  # a bias table away from its near-zero init
            for block in self.blocks:
                block.attn.relative_position_bias_table.normal_(0, 0.5)

    def forward(self, x):
        y = self.embed(x).permute(0, 2, 3, 1)
        return self.blocks(y).permute(0, 3, 1, 2)


def maxvit_attention():
    """maxvit's relative-position attention over [B, G, P, D] windows: two
    Einsums in its spaced capital-letter equations around a Softmax."""
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
    return RelativePositionalMultiHeadAttention(16, 8, 16)


def shufflenet_v2():
    return torchvision.models.shufflenet_v2_x0_5(num_classes=10)


def mobilenet_v3_small():
    return torchvision.models.mobilenet_v3_small(num_classes=10)


FIXTURES = {
    "conv_bn_relu_stack": (ConvBnReluStack, (1, 3, 17, 17), 13, False),
    "conv_bn_relu_stack_op11": (ConvBnReluStack, (1, 3, 17, 17), 11, False),
    "depthwise_separable": (DepthwiseSeparable, (1, 3, 16, 16), 13, False),
    "residual_blocks": (ResidualBlocks, (1, 3, 16, 16), 13, False),
    "residual_blocks_op11": (ResidualBlocks, (1, 3, 16, 16), 11, False),
    "keras_classifier": (KerasClassifier, (1, 1, 28, 28), 13, False),
    "keras_classifier_op17": (KerasClassifier, (1, 1, 28, 28), 17, False),
    "keras_classifier_dynamic": (KerasClassifier, (3, 1, 28, 28), 13, True),
    "act_relu6": (lambda: ConvAct(nn.ReLU6()), (1, 3, 8, 8), 13, False),
    "act_relu6_op11": (lambda: ConvAct(nn.ReLU6()), (1, 3, 8, 8), 11, False),
    "act_hardswish": (lambda: ConvAct(nn.Hardswish()), (1, 3, 8, 8), 13, False),
    "act_hardswish_op17": (lambda: ConvAct(nn.Hardswish()), (1, 3, 8, 8), 17, False),
    "act_leaky_relu": (lambda: ConvAct(nn.LeakyReLU(0.1)), (1, 3, 8, 8), 13, False),
    "act_sigmoid": (lambda: ConvAct(nn.Sigmoid()), (1, 3, 8, 8), 13, False),
    "act_elu": (lambda: ConvAct(nn.ELU(0.7)), (1, 3, 8, 8), 13, False),
    "pool_ceil_mode": (Pools, (1, 4, 10, 10), 13, False),
    "pad_modes": (PadModes, (1, 3, 7, 6), 13, False),
    "pad_modes_op11": (PadModes, (1, 3, 7, 6), 11, False),
    "more_activations": (MoreActivations, (1, 3, 6, 6), 13, False),
    "channel_shuffle": (ChannelShuffle, (1, 8, 6, 6), 13, False),
    "token_mlp": (TokenMlp, (1, 3, 16, 16), 13, False),
    "token_mlp_dynamic": (TokenMlp, (3, 3, 16, 16), 13, True),
    "dynamic_view_mlp": (DynamicViewMlp, (3, 3, 12, 12), 13, True),
    "dynamic_view_mlp_op11": (DynamicViewMlp, (3, 3, 12, 12), 11, True),
    "dynamic_view_mlp_op17": (DynamicViewMlp, (3, 3, 12, 12), 17, True),
    "squeezenet_fire": (SqueezeNetish, (1, 3, 33, 33), 13, False),
    "mobilenet_v2": (mobilenet_v2, (1, 3, 64, 64), 13, False),
    "resnet18": (resnet18, (1, 3, 64, 64), 13, False),
    "tf_nhwc_residual": (TfNhwcResidual, (1, 16, 16, 3), 13, False),
    "functional_ops_dynamic": (FunctionalOps, (3, 3, 8, 8), 13, True),
    "reduce_split_shuffle_dynamic": (ReduceSplitShuffle, (3, 3, 12, 12), 13, True),
    "shufflenet_v2": (shufflenet_v2, (1, 3, 64, 64), 13, False),
    "unet_decoder": (UNetDecoder, (1, 3, 32, 32), 13, False),
    "unet_decoder_dynamic": (UNetDecoder, (2, 3, 32, 32), 13, True),
    "mobilenet_v3_small": (mobilenet_v3_small, (1, 3, 64, 64), 17, False),
    "convnext_block": (ConvNeXtBlock, (1, 3, 16, 16), 13, False),
    "convnext_block_op17": (ConvNeXtBlock, (1, 3, 16, 16), 17, False),
    "convnext_block_tanh_dynamic": (lambda: ConvNeXtBlock("tanh"), (3, 3, 16, 16), 13, True),
    # Exported with a fixed batch (no dynamic axes): the batch is a static dim
    # 0 of every tensor, and `x.view(x.size(0), -1)` bakes it into Reshape.
    "resnet18_batch3": (resnet18, (3, 3, 64, 64), 13, False),
    "depthwise_separable_batch2": (DepthwiseSeparable, (2, 3, 16, 16), 13, False),
    "keras_classifier_batch4": (KerasClassifier, (4, 1, 28, 28), 13, False),
    "dynamic_view_mlp_batch3": (DynamicViewMlp, (3, 3, 12, 12), 13, False),
    "squeezenet_fire_batch2": (SqueezeNetish, (2, 3, 33, 33), 13, False),
    "tf_nhwc_residual_batch2": (TfNhwcResidual, (2, 16, 16, 3), 13, False),
    "tf_nhwc_residual_batch3": (TfNhwcResidual, (3, 16, 16, 3), 13, False),
    "fpn_head": (FpnHead, (1, 3, 28, 28), 13, False),
    "fpn_head_op11": (FpnHead, (1, 3, 28, 28), 11, False),
    "fpn_head_dynamic": (FpnHead, (3, 3, 28, 28), 13, True),
    "fpn_head_batch2": (FpnHead, (2, 3, 28, 28), 13, False),
    "einsum_forms": (EinsumForms, (2, 3, 4, 4), 13, False),
    "swin_window_blocks": (ShiftedWindowBlocks, (1, 3, 20, 20), 13, False),
    "maxvit_attention": (maxvit_attention, (1, 4, 16, 16), 13, False),
    "maxvit_attention_dynamic": (maxvit_attention, (3, 4, 16, 16), 13, True),
}

def torchvision_model(builder, **kwargs):
    """A torchvision network with random weights; a segmentation model's
    output dict becomes its "out" tensor."""
    class Unwrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = builder(weights=None, **kwargs)

        def forward(self, x):
            y = self.net(x)
            return y["out"] if isinstance(y, dict) else y
    return Unwrapped


# Whole torchvision networks at the lowest resolution their heads accept,
# each under ~50 MB of weights so that CI compiles them in minutes. (VGG and
# AlexNet need 224x224 and 0.25-0.5 GB of weights; ConvNeXt-tiny 110 MB:
# checked by hand, see the issue notes.)
ZOO_FIXTURES = {
    "zoo_densenet121": (torchvision_model(torchvision.models.densenet121), (1, 3, 64, 64), 13, False),
    "zoo_googlenet": (torchvision_model(torchvision.models.googlenet, aux_logits=False, init_weights=True),
                      (1, 3, 64, 64), 13, False),
    "zoo_regnet_y_400mf": (torchvision_model(torchvision.models.regnet_y_400mf), (1, 3, 64, 64), 13, False),
    "zoo_efficientnet_b0": (torchvision_model(torchvision.models.efficientnet_b0), (1, 3, 64, 64), 13, False),
    "zoo_mnasnet0_5": (torchvision_model(torchvision.models.mnasnet0_5), (1, 3, 64, 64), 13, False),
    "zoo_squeezenet1_1": (torchvision_model(torchvision.models.squeezenet1_1), (1, 3, 64, 64), 13, False),
    "zoo_mobilenet_v3_large": (torchvision_model(torchvision.models.mobilenet_v3_large), (1, 3, 64, 64), 17, False),
    "zoo_lraspp_mobilenet_v3_large": (
        torchvision_model(torchvision.models.segmentation.lraspp_mobilenet_v3_large, weights_backbone=None),
        (1, 3, 64, 64), 13, False),
    "zoo_deeplabv3_mobilenet_v3_large": (
        torchvision_model(torchvision.models.segmentation.deeplabv3_mobilenet_v3_large, weights_backbone=None),
        (1, 3, 64, 64), 13, False),
}

# name -> builder(torch.Generator) returning (ModelProto, input, expected output)
def lrn_instance_norm(gen):
    """ONNX LRN, which torch never exports, after an InstanceNormalization, on
    a dynamic batch: window sizes 3 and 5 (odd: torch's even windows reach
    one channel further before c, ONNX's one further after it). Expected from
    F.instance_norm and F.local_response_norm in float64."""
    from onnx import helper, TensorProto

    x = torch.randn(3, 6, 10, 10, generator=gen).double()
    scale = (torch.rand(6, generator=gen) + 0.5).double()
    bias = (torch.randn(6, generator=gen) * 0.2).double()
    h = F.instance_norm(x, weight=scale, bias=bias, eps=1e-5)
    h = F.local_response_norm(h, 3, alpha=1e-2, beta=0.75, k=2.0)
    h = F.local_response_norm(h, 5, alpha=0.5, beta=0.5, k=1.0)
    nodes = [
        helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["norm"], name="norm", epsilon=1e-5),
        helper.make_node("LRN", ["norm"], ["lrn3"], name="lrn3", size=3, alpha=1e-2, beta=0.75, bias=2.0),
        helper.make_node("LRN", ["lrn3"], ["y"], name="lrn5", size=5, alpha=0.5, beta=0.5, bias=1.0),
    ]
    graph = helper.make_graph(
        nodes, "lrn_instance_norm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 10, 10])],
        [numpy_helper.from_array(scale.float().numpy(), "scale"), numpy_helper.from_array(bias.float().numpy(), "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, x.float(), h.float()


HELPER_FIXTURES = {
    "keras_separable_function": keras_separable_function,
    "lrn_instance_norm": lrn_instance_norm,
}


def randomize_batchnorm(model, gen):
    """Non-trivial running stats and affine params so that a missing, doubled
    or mis-ordered BN (or a wrong epsilon) changes the output."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.eps = 1e-3 if c % 2 else 1e-5  # both Keras' and torch's default


def write_data_set(case_dir, x, ys, output_names):
    data_dir = os.path.join(case_dir, "test_data_set_0")
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    for i, (y, out_name) in enumerate(zip(ys, output_names)):
        with open(os.path.join(data_dir, f"output_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(y, out_name).SerializeToString())


def write_helper_fixture(outdir, name, build, seed):
    model, x, y = build(torch.Generator().manual_seed(seed))
    onnx.checker.check_model(model)
    case_dir = os.path.join(outdir, name)
    os.makedirs(case_dir)
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    write_data_set(case_dir, x.numpy(), [y.numpy()], [model.graph.output[0].name])
    op_types = sorted({f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in model.graph.node})
    print(f"{name}: onnx.helper, input {list(x.shape)}, output {list(y.shape)}, "
          f"max|y|={float(y.abs().max()):.3g}, ops={','.join(op_types)}")


def export_fixture(outdir, name, factory, shape, opset, dynamic, seed):
    torch.manual_seed(seed)
    model = factory()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    model.eval()

    gen = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(*shape, generator=gen)
    # A dynamic model is traced at another batch than the data's, so a batch
    # baked in by the exporter or importer fails the check.
    trace_x = torch.randn(2, *shape[1:], generator=gen) if dynamic else x

    case_dir = os.path.join(outdir, name)
    os.makedirs(case_dir)
    model_path = os.path.join(case_dir, "model.onnx")
    with torch.no_grad():
        y32 = model(x)
        y64 = copy.deepcopy(model).double()(x.double())
    multi = isinstance(y32, tuple)
    y32 = list(y32) if multi else [y32]
    y64 = list(y64) if multi else [y64]
    output_names = [f"y{i}" for i in range(len(y32))] if multi else ["y"]

    torch.onnx.export(model, (trace_x,), model_path,
                      input_names=["x"], output_names=output_names,
                      dynamic_axes={n: {0: "N"} for n in ["x"] + output_names} if dynamic else None,
                      opset_version=opset,
                      training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=False)

    onnx_model = onnx.load(model_path)
    onnx.checker.check_model(onnx_model)
    op_types = sorted({n.op_type for n in onnx_model.graph.node})
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if has_bn and "BatchNormalization" not in op_types:
        raise RuntimeError(f"{name}: the exporter folded BatchNormalization away")

    ys = [t.float().numpy() for t in y64]
    torch_err = max(float(np.max(np.abs(a.numpy() - b))) for a, b in zip(y32, ys))
    max_abs = max(float(np.max(np.abs(y))) for y in ys)

    write_data_set(case_dir, x.numpy(), ys, output_names)
    print(f"{name}: opset {opset}, input {list(shape)}, outputs {[list(y.shape) for y in ys]}, "
          f"max|y|={max_abs:.3g}, torch f32 err={torch_err:.2g}, ops={','.join(op_types)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--set", choices=["fixtures", "zoo"], default="fixtures",
                        help="small purpose-built models (default) or whole torchvision networks")
    parser.add_argument("--only", nargs="*", help="fixture names to (re)generate")
    args = parser.parse_args()

    start = time.time()
    torch.set_num_threads(1)
    exported, helpers = (FIXTURES, HELPER_FIXTURES) if args.set == "fixtures" else (ZOO_FIXTURES, {})
    names = args.only or list(exported) + list(helpers)
    unknown = [n for n in names if n not in exported and n not in helpers]
    if unknown:
        sys.exit(f"unknown fixture(s): {', '.join(unknown)}")
    if not args.only and os.path.exists(args.outdir):
        shutil.rmtree(args.outdir)
    os.makedirs(args.outdir, exist_ok=True)
    for i, name in enumerate(exported):
        if name not in names:
            continue
        shutil.rmtree(os.path.join(args.outdir, name), ignore_errors=True)
        factory, shape, opset, dynamic = exported[name]
        export_fixture(args.outdir, name, factory, shape, opset, dynamic, seed=1000 + 17 * i)
    for i, name in enumerate(helpers):
        if name not in names:
            continue
        shutil.rmtree(os.path.join(args.outdir, name), ignore_errors=True)
        write_helper_fixture(args.outdir, name, helpers[name], seed=5000 + 17 * i)
    print(f"wrote {len(names)} fixtures to {args.outdir} in {time.time() - start:.1f}s")


if __name__ == "__main__":
    main()
