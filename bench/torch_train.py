#!/usr/bin/python3
"""PyTorch twin of examples/fashion_mnist/bn_cnn.json for bench/train_compare.sh.

Same layers, initializers (he_normal untruncated), loss (label smoothing),
AdamW (decoupled decay), per-step cosine schedule and shift/flip
augmentation as kiln-train; trains STEPS batches as warm-up, then times
STEPS more and prints "samples/s N". Only the training steps are timed.
"""
import argparse
import gzip
import json
import math
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def init_kernel(weight, layer):
    """Keras' initializer names (he_normal untruncated here)."""
    if layer.get("kernel_initializer", "glorot_uniform") == "he_normal":
        nn.init.kaiming_normal_(weight, nonlinearity="relu")
    else:
        nn.init.xavier_uniform_(weight)


def build_model(spec):
    """The spec's layers (the subset bn_cnn.json uses), NCHW like kiln."""
    height, width, channels = spec["input_shape"]
    layers, features = [], None  # features: set once flattened
    for layer in spec["layers"]:
        kind = layer["type"]
        if kind == "Conv2D":
            assert layer["padding"] == "same" and layer["kernel_size"] == 3
            conv = nn.Conv2d(channels, layer["filters"], 3, padding=1, bias=layer.get("use_bias", True))
            init_kernel(conv.weight, layer)
            layers.append(conv)
            channels = layer["filters"]
        elif kind == "BatchNormalization":
            # Keras momentum 0.99 is PyTorch momentum 0.01.
            bn = nn.BatchNorm2d if features is None else nn.BatchNorm1d
            layers.append(bn(features or channels, eps=1e-3, momentum=0.01))
        elif kind == "Activation":
            assert layer["activation"] == "relu"
            layers.append(nn.ReLU())
        elif kind == "MaxPooling2D":
            layers.append(nn.MaxPool2d(layer["pool_size"]))
            height, width = height // layer["pool_size"], width // layer["pool_size"]
        elif kind == "Flatten":
            layers.append(nn.Flatten())
            features = channels * height * width
        elif kind == "Dense":
            dense = nn.Linear(features, layer["units"], bias=layer.get("use_bias", True))
            init_kernel(dense.weight, layer)
            layers.append(dense)
            features = layer["units"]
        elif kind == "Dropout":
            layers.append(nn.Dropout(layer["rate"]))
        else:
            raise ValueError(f"unsupported layer {kind}")
    return nn.Sequential(*layers)  # the final softmax is inside the loss


def augment(x, max_shift, flip, gen):
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4)
    shifts = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen).tolist()
    out = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(shifts)])
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out[mask] = out[mask].flip(3)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = json.load(open(a.spec))
    t = spec["training"]
    images = torch.from_numpy(read_idx(f"{a.data}/train-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(read_idx(f"{a.data}/train-labels-idx1-ubyte.gz").astype(np.int64))
    model = build_model(spec)
    opt_cfg = t["optimizer"]
    opt = torch.optim.AdamW(model.parameters(), lr=opt_cfg["learning_rate"], eps=opt_cfg.get("epsilon", 1e-7),
                            weight_decay=opt_cfg.get("weight_decay", 0.0))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=t["loss"].get("label_smoothing", 0.0))
    batch, total = t["batch_size"], 2 * a.steps
    final = t["lr_schedule"].get("final_fraction", 0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: final + (1 - final) * 0.5 * (1 + math.cos(math.pi * s / total)))
    aug, gen = t.get("augmentation", {}), torch.Generator().manual_seed(0)
    order = torch.randperm(len(labels), generator=gen)
    model.train()
    start = 0.0
    for step in range(total):
        if step == a.steps:
            start = time.perf_counter()
        idx = order[(step * batch) % len(order):][:batch]
        x = augment(images[idx], aug.get("max_shift", 0), aug.get("horizontal_flip", False), gen)
        loss = loss_fn(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    print(f"samples/s {a.steps * batch / seconds:.1f}")


if __name__ == "__main__":
    main()
