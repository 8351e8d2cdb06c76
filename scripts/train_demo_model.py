"""Trains the shipped demo classifier (examples/fashion_mnist/cnn.onnx).

A stand-in until kiln's own trainer exists: a small Conv+BN+ReLU network
trained with PyTorch on the Fashion-MNIST training set (test set untouched),
exported with BatchNormalization kept and a dynamic batch axis.
Recorded command:  /usr/bin/python3 scripts/train_demo_model.py examples/fashion_mnist/cnn.onnx
"""
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import fashion_mnist  # noqa: E402


def build():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.Conv2d(16, 32, 1, bias=False),
        nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, 10), nn.Softmax(dim=1))


def main(out_path):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    x, y = fashion_mnist.load("train")
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.NLLLoss()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    for epoch in range(6):
        perm = torch.randperm(len(x))
        model.train()
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(torch.log(model(x[idx]) + 1e-9), y[idx])
            loss.backward()
            opt.step()
        sched.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.3f}", flush=True)
    model.eval()
    # The test set is read once, after training, only to report accuracy.
    tx, ty = fashion_mnist.load("test")
    with torch.no_grad():
        pred = model(torch.from_numpy(tx)).argmax(1).numpy()
    print(f"test accuracy: {np.mean(pred == ty):.4f}")
    torch.onnx.export(model, x[:1], out_path, input_names=["image"], output_names=["probabilities"],
                      dynamic_axes={"image": {0: "N"}, "probabilities": {0: "N"}}, opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1])
