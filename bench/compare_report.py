"""Writes bench/compare's results: compare.json (all of it), compare.md (the
tables) and compare.png (the speedup ratios, matplotlib's Agg backend).
`results` is the dictionary that becomes compare.json; see bench/compare."""
import json
import math
import os


def fmt_ms(v):
    """4 significant digits: the small models run in microseconds."""
    if v is None or not math.isfinite(v):
        return "n/a"
    digits = max(0, 3 - int(math.floor(math.log10(abs(v))))) if v else 3
    return f"{v:.{min(digits, 5)}f}"


def fmt(v, digits):
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def fmt_sci(v):
    return "n/a" if v is None else f"{v:.1e}"


def header_line(r):
    return (f"Host: {r['host_cpu']} ({r['target_cpu']}, {r['cpus']} CPUs); date {r['date_utc']}; "
            f"kiln {r['kiln_git_revision']}; onnxruntime-node {r['onnxruntime_node_version']} "
            f"(Node {r['node_version']}); PyTorch {r['torch_version']}, torchvision {r['torchvision_version']}")


def write_markdown(results, path):
    s = results["settings"]
    lines = ["# kiln vs ONNX Runtime vs PyTorch", ""]
    if s["quick"]:
        lines += ["**`--quick` smoke run: too few runs for these numbers to mean anything.**", ""]
    lines += [header_line(results), ""]
    lines += ["| model | batch | threads | kiln ms | ORT ms | PyTorch ms | ORT/kiln | PyTorch/kiln "
              "| kiln GFLOP/s | kiln % of peak |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["results"]:
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['threads']} | {fmt_ms(row['kiln_median_ms'])} "
            f"| {fmt_ms(row['ort_median_ms'])} | {fmt_ms(row['torch_median_ms'])} "
            f"| {fmt(row['ort_over_kiln'], 2)}x | {fmt(row['torch_over_kiln'], 2)}x "
            f"| {fmt(row['kiln_gflops_per_s'], 1)} | {fmt(row['kiln_percent_of_peak'], 1)} |")
    lines += [
        "",
        "ms: latency of one run of the whole batch, the median over "
        f"{s['rounds']} interleaved rounds (kiln, ORT, PyTorch, kiln, ...) of each round's median of "
        f"its timed runs (each round one process: {s['warmup_seconds']} s of warm-up runs, then "
        f"~{s['budget_seconds']} s of timed runs, at least {s['min_iterations']}, the counts sized by "
        "kiln's probe run and shared by the three; ORT and PyTorch cut the warm-up and the timed runs short "
        f"after {s['cap_factor']:g}x the time they take kiln). Ratios > 1: kiln is faster. GFLOP/s: kiln's FLOPs per run "
        "(`kiln bench`) at its median latency; % of peak: of the measured FP32 FMA peak of the threads used "
        f"(single core {fmt(results['kiln_single_core_peak_gflops_per_s'], 1)} GFLOP/s).",
        "",
        "kiln: `kiln bench` (runtime C API, -O2 artifact compiled for the host CPU, `--threads T`). "
        "ORT: onnxruntime-node, CPU provider, graphOptimizationLevel 'all', intraOpNumThreads T, "
        "interOpNumThreads 1, sequential; timed around `await session.run()`, so each run includes the JS "
        f"binding, about {fmt_ms(results['ort_binding_overhead_ms'])} ms (an Identity model's run; "
        "not subtracted). PyTorch: eager, eval, `torch.inference_mode()`, `torch.set_num_threads(T)`, the "
        "exported weights; each run includes Python's per-module call overhead.",
        "",
        "## Output check",
        "",
        f"One seeded input per model (uniform [0, 1), the batches {', '.join(map(str, s['batches']))} "
        f"sliced from it), each pair compared elementwise with rtol {s['rtol']:g}, atol {s['atol']:g} "
        f"(|a - b| <= atol + rtol |b|); max rel over elements with |b| > atol (the near-zero ones dominate it); "
        "ok: every element within tolerance, and the largest |a - b| / (atol + rtol |b|) of the three pairs.",
        "",
        "| model | kiln vs ORT max abs / rel | kiln vs PyTorch max abs / rel | ORT vs PyTorch max abs / rel | ok |",
        "|---|---:|---:|---:|---|"]
    for c in results["checks"]:
        cells = []
        for pair in ("kiln_vs_ort", "kiln_vs_torch", "ort_vs_torch"):
            d = c[pair]
            cells.append(f"{fmt_sci(d['max_abs_diff'])} / {fmt_sci(d['max_rel_diff'])}")
        worst = max(c[p]["max_diff_over_tolerance"] for p in ("kiln_vs_ort", "kiln_vs_torch", "ort_vs_torch"))
        lines.append(f"| {c['model']} | " + " | ".join(cells) +
                     f" | {'yes' if c['ok'] else '**NO**'} ({worst:.2g} of tol) |")
    lines += ["", "Models:", ""]
    for m in results["models"]:
        lines.append(f"- `{m['name']}`: {m['description']}; input `{m['input']}` "
                     f"Nx{'x'.join(map(str, m['sample_shape']))}, `kiln compile` {fmt(m['compile_seconds'], 1)} s")
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


def write_png(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = results["results"]
    # configurations side by side, a gap between models; the model's name
    # under its group
    xs, groups, x = [], [], 0.0
    for i, r in enumerate(rows):
        if i and r["model"] != rows[i - 1]["model"]:
            x += 0.6
        if not groups or groups[-1][0] != r["model"]:
            groups.append([r["model"], x, x])
        groups[-1][2] = x
        xs.append(x)
        x += 1.0
    series = [("vs ONNX Runtime (ORT ms / kiln ms)", "ort_over_kiln", "#4c72b0"),
              ("vs PyTorch (PyTorch ms / kiln ms)", "torch_over_kiln", "#dd8452")]
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(8.0, 0.75 * x + 2), 5.6))
    values = []
    for i, (name, key, color) in enumerate(series):
        ys = [r[key] if r[key] and math.isfinite(r[key]) else float("nan") for r in rows]
        values += [y for y in ys if math.isfinite(y)]
        bars = ax.bar([v + (i - 0.5) * width for v in xs], ys, width, label=name, color=color)
        for b, y in zip(bars, ys):
            if math.isfinite(y):
                ax.annotate(f"{y:.2f}" if y < 100 else f"{y:.0f}", (b.get_x() + b.get_width() / 2, y),
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=6.5)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    if values:
        lo, hi = min(values + [1.0]), max(values + [1.0])
        ax.set_ylim(lo / 1.6, hi * 1.8)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(xs)
    ax.set_xticklabels([f"b{r['batch']} t{r['threads']}" for r in rows], fontsize=7)
    ax.set_xlim(-0.7, x - 0.3)
    for name, first, last in groups:
        ax.annotate(name, ((first + last) / 2, 0), xycoords=("data", "axes fraction"), xytext=(0, -22),
                    textcoords="offset points", ha="center", va="top", fontsize=8, fontweight="bold")
    ax.set_ylabel("kiln speedup (> 1: kiln faster)")
    title = "kiln vs ONNX Runtime and PyTorch: ratio of median latencies (b = batch, t = threads)"
    if results["settings"]["quick"]:
        title += " [--quick smoke run, not results]"
    r = results
    sub = (f"{r['host_cpu']} ({r['target_cpu']}, {r['cpus']} CPUs), {r['date_utc']}, kiln {r['kiln_git_revision']}, "
           f"onnxruntime-node {r['onnxruntime_node_version']}, PyTorch {r['torch_version']}")
    ax.set_title(title + "\n" + sub, fontsize=8.5)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f) for f in ("compare.json", "compare.md", "compare.png")]
    write_json(results, paths[0])
    write_markdown(results, paths[1])
    write_png(results, paths[2])
    return paths
