#!/usr/bin/python3
"""PyTorch side of bench/compare: one process per measurement.

  compare_torch.py time WORKDIR NAME --batch B --threads T --warmup W --iterations N
                       [--max-seconds S] [--max-warmup-seconds S]
      prints one JSON object: per-run milliseconds' min / median / mean / p90
      (each run timed on its own with perf_counter, after W warm-up runs; the
      warm-up and the timed runs stop early once they took their S seconds)
  compare_torch.py check WORKDIR NAME IN.npy:OUT.npy ...
      runs each input once and writes the output

The model is rebuilt eagerly (no TorchScript) from compare_models.py and
loaded with WORKDIR/NAME.pt, the weights the ONNX export carries; it runs in
eval mode under torch.inference_mode() with torch.set_num_threads(T) and one
inter-op thread.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_models  # noqa: E402


def stats(ms):
    s = sorted(ms)
    n = len(s)
    return {"runs": n, "min_ms": s[0], "median_ms": s[(n - 1) // 2], "mean_ms": sum(s) / n,
            "p90_ms": s[min(n - 1, max(0, round(0.9 * n) - 1))]}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("workdir")
    t.add_argument("name")
    t.add_argument("--batch", type=int, required=True)
    t.add_argument("--threads", type=int, required=True)
    t.add_argument("--warmup", type=int, required=True)
    t.add_argument("--iterations", type=int, required=True)
    t.add_argument("--max-seconds", type=float, default=float("inf"))
    t.add_argument("--max-warmup-seconds", type=float, default=float("inf"))
    c = sub.add_parser("check")
    c.add_argument("workdir")
    c.add_argument("name")
    c.add_argument("pairs", nargs="+", metavar="IN.npy:OUT.npy")
    a = p.parse_args()

    torch.set_num_threads(a.threads if a.cmd == "time" else 1)
    torch.set_num_interop_threads(1)
    model = compare_models.load_torch_model(a.workdir, a.name)

    with torch.inference_mode():
        if a.cmd == "check":
            for pair in a.pairs:
                src, dst = pair.split(":")
                y = model(torch.from_numpy(np.load(src)))
                np.save(dst, y.numpy().astype(np.float32))
            return
        g = torch.Generator().manual_seed(12345)
        x = torch.rand(a.batch, *compare_models.MODELS[a.name]["shape"], generator=g)
        t0 = time.perf_counter()
        model(x)
        first_ms = (time.perf_counter() - t0) * 1e3
        warmup, warm_end = 0, time.perf_counter() + a.max_warmup_seconds
        while warmup < a.warmup and time.perf_counter() < warm_end:
            model(x)
            warmup += 1
        ms, total_ms, cap_ms = [], 0.0, a.max_seconds * 1e3
        while len(ms) < a.iterations and total_ms < cap_ms:
            t0 = time.perf_counter()
            model(x)
            ms.append((time.perf_counter() - t0) * 1e3)
            total_ms += ms[-1]
    out = stats(ms)
    out.update({"first_run_ms": first_ms, "warmup_runs": warmup, "threads": torch.get_num_threads(),
                "batch": a.batch, "torch_version": torch.__version__})
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
