#!/usr/bin/python3
"""Exports torchvision 0.14 models with torch.onnx (random weights, seed 0),
compiles each with `kiln compile`, runs it with `kiln predict` and compares
the output with PyTorch's at rtol 1e-3 / atol 1e-4. One row per model on
stdout (a markdown table), progress on stderr. Not a CTest test: the whole
list takes tens of minutes on 2 cores; tests/conformance compiles a subset
(gen_torch_fixtures.py --set zoo) in CI.

  scripts/torchvision_sweep.py KILN_BINARY WORKDIR [--only NAME ...] [--opset N] [--size S]

--only also takes any other torchvision.models (or .segmentation) builder
name, built with its defaults at SxS (default 64).

Exit status: 0 when every model that exported compiled and matched, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_torch_fixtures import randomize_batchnorm  # noqa: E402  (the fixtures' BN statistics)

def with_random_head(vit):
    """torchvision's ViT starts with a zero classifier head: every output 0."""
    torch.nn.init.normal_(vit.heads.head.weight, std=0.02)
    return vit


# name -> (builder, input side). 64x64 where the network takes it; the ViTs
# fix 224, Inception-v3 needs 75 or more, AlexNet's and VGG's adaptive
# pooling exports only at 224.
MODELS = {
    "alexnet": (lambda: torchvision.models.alexnet(), 224),
    "convnext_tiny": (lambda: torchvision.models.convnext_tiny(), 64),
    "densenet121": (lambda: torchvision.models.densenet121(), 64),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(), 64),
    "efficientnet_v2_s": (lambda: torchvision.models.efficientnet_v2_s(), 64),
    "googlenet": (lambda: torchvision.models.googlenet(aux_logits=False, init_weights=True), 64),
    # init_weights' truncated normal (std 0.1) grows the activations to ~1e9,
    # where float32 rounding alone breaks the tolerance: PyTorch's default init.
    "inception_v3": (lambda: torchvision.models.inception_v3(aux_logits=False, init_weights=False), 96),
    "mnasnet0_5": (lambda: torchvision.models.mnasnet0_5(), 64),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), 64),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(), 64),
    "regnet_x_400mf": (lambda: torchvision.models.regnet_x_400mf(), 64),
    "regnet_y_400mf": (lambda: torchvision.models.regnet_y_400mf(), 64),
    "resnet18": (lambda: torchvision.models.resnet18(), 64),
    "resnet50": (lambda: torchvision.models.resnet50(), 64),
    "resnext50_32x4d": (lambda: torchvision.models.resnext50_32x4d(), 64),
    "shufflenet_v2_x1_0": (lambda: torchvision.models.shufflenet_v2_x1_0(), 64),
    "squeezenet1_0": (lambda: torchvision.models.squeezenet1_0(), 64),
    "swin_t": (lambda: torchvision.models.swin_t(), 224),
    "vgg11_bn": (lambda: torchvision.models.vgg11_bn(), 224),
    "vit_b_16": (lambda: with_random_head(torchvision.models.vit_b_16()), 224),
    "wide_resnet50_2": (lambda: torchvision.models.wide_resnet50_2(), 64),
    "fcn_resnet50": (lambda: torchvision.models.segmentation.fcn_resnet50(weights_backbone=None, aux_loss=False), 64),
    "deeplabv3_resnet50": (
        lambda: torchvision.models.segmentation.deeplabv3_resnet50(weights_backbone=None, aux_loss=False), 64),
    "deeplabv3_mobilenet_v3_large": (
        lambda: torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights_backbone=None), 64),
    "lraspp_mobilenet_v3_large": (
        lambda: torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights_backbone=None), 64),
}


def model_entry(name, size):
    if name in MODELS:
        return MODELS[name]
    segmentation = torchvision.models.segmentation
    if hasattr(segmentation, name):  # no pretrained backbone: nothing to download
        return (lambda: getattr(segmentation, name)(weights_backbone=None), size)
    if hasattr(torchvision.models, name):
        head = with_random_head if name.startswith("vit_") else (lambda m: m)
        return (lambda: head(getattr(torchvision.models, name)()), size)
    raise SystemExit(f"torchvision_sweep: no torchvision model '{name}'")


def export(name, opset, work, size):
    builder, side = model_entry(name, size)
    torch.manual_seed(0)
    model = builder().eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    x = torch.rand(1, 3, side, side)
    with torch.no_grad():
        y = model(x)
    if isinstance(y, dict):  # segmentation models return {"out": ...}
        y = y["out"]
    path = os.path.join(work, name + ".onnx")

    class Out(torch.nn.Module):  # one tensor output for every model
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t):
            r = self.m(t)
            return r["out"] if isinstance(r, dict) else r

    torch.onnx.export(Out(model), x, path, opset_version=opset, input_names=["input"], output_names=["output"])
    np.save(os.path.join(work, name + "_x.npy"), x.numpy())
    # The same network in float64: how far float32 rounding alone moves
    # PyTorch's own output, for nets whose activations grow large.
    with torch.no_grad():
        y64 = Out(model.double()).eval()(x.double()).numpy()  # export leaves the wrapper in training mode
    return path, x.numpy(), y.numpy(), y64, side


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("kiln")
    parser.add_argument("work")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    names = args.only or list(MODELS)
    print(f"| model | input | opset | compile s | max abs(ref) | max abs diff | max diff / (atol + rtol·abs(ref)) "
          "| kiln / PyTorch max error vs float64 | result |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    failed = 0
    for name in names:
        print(f"sweep: {name}", file=sys.stderr, flush=True)
        try:
            path, x, y, y64, side = export(name, args.opset, args.work, args.size)
        except Exception as e:  # an exporter failure is torch's, not kiln's: reported, not counted
            print(f"| {name} | {model_entry(name, args.size)[1]} | {args.opset} | | | | | | export failed: {type(e).__name__}: {e} |"[:300])
            continue
        so = os.path.join(args.work, name + ".so")
        start = time.monotonic()
        c = subprocess.run([args.kiln, "compile", path, "-o", so], capture_output=True, text=True)
        seconds = time.monotonic() - start
        if c.returncode != 0:
            failed += 1
            reason = (c.stderr.strip().splitlines() or ["?"])[-1][:160].replace("|", "/")
            print(f"| {name} | {side} | {args.opset} | {seconds:.1f} | | | | | compile failed: {reason} |")
            continue
        out = os.path.join(args.work, name + "_out")
        p = subprocess.run([args.kiln, "predict", so, "--input", f"input={os.path.join(args.work, name + '_x.npy')}",
                            "--output-dir", out], capture_output=True, text=True)
        if p.returncode != 0:
            failed += 1
            print(f"| {name} | {side} | {args.opset} | {seconds:.1f} | | | | | predict failed |")
            continue
        got = np.load(os.path.join(out, "output.npy"))
        diff = np.abs(got.astype(np.float64) - y)
        worst = float((diff / (1e-4 + 1e-3 * np.abs(y))).max())
        # Within tolerance of PyTorch, or (activations grown so large that
        # float32 rounding breaks it) no further from the float64 network
        # than PyTorch's float32 run is.
        kilnErr, torchErr = float(np.abs(got - y64).max()), float(np.abs(y - y64).max())
        ok = got.shape == y.shape and (worst <= 1.0 or kilnErr <= 2 * torchErr)
        failed += 0 if ok else 1
        print(f"| {name} | {side} | {args.opset} | {seconds:.1f} | {np.abs(y).max():.1e} | {diff.max():.1e} | {worst:.3f} | "
              f"{kilnErr:.1e} / {torchErr:.1e} | {'match' if worst <= 1.0 else 'as close as PyTorch' if ok else 'MISMATCH'} |",
              flush=True)
        for f in (so, path):
            os.remove(f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
