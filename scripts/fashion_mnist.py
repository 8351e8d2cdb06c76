"""Reads Debian's Fashion-MNIST IDX files (dataset-fashion-mnist).

As a script: `fashion_mnist.py INDEX OUT.npy` writes test image INDEX as a
1x1x28x28 float32 array scaled to [0, 1] (the input the demo model expects)
and prints its true label.
"""
import gzip
import sys

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(f"{DATA_DIR}/{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(f"{DATA_DIR}/{prefix}-labels-idx1-ubyte.gz")
    return images.astype(np.float32)[:, None, :, :] / 255.0, labels.astype(np.int64)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: fashion_mnist.py INDEX OUT.npy")
    images, labels = load("test")
    index = int(sys.argv[1])
    np.save(sys.argv[2], images[index:index + 1])
    print(f"test image {index}: true class {labels[index]} ({CLASSES[labels[index]]})")
