#!/usr/bin/python3
"""Summarises bench/out/engine.jsonl (make bench-engine).

Per model and thread count: ONNX Runtime's and PyTorch's dense latency, pare's latency for
the dense model and each pruned variant, how many times faster than ONNX Runtime dense each
one is (ORT dense ms / pare ms), the share of the dense work it still does, pare's effective
GFLOP/s (the dense model's MACs x 2 / time: pare bench's effective_gflops) and its share of
the FMA peak measured by bench/peak.c, and the wall time of the untimed first compile (which
tunes the kernels unless the tuning cache already has them). Then the issue's targets at one
thread, each met or MISSED, and one JSON line per target.

Latencies are medians over all timed runs; ONNX Runtime runs before and after pare on each
model and thread count, and its figure is the median of those runs' medians (their mean
when there are two).

usage: /usr/bin/python3 bench/engine_summary.py bench/out/engine.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

VARIANTS = ["dense", "pattern-0.75", "pattern-0.9", "block4x4-0.75", "block4x4-0.9",
            "unstructured-0.75", "unstructured-0.9", "2:4", "1x1-block4x4-0.75"]
MODELS = ["resnet18", "mobilenetv2-224", "vgg16"]

# (variant, models, kind, bound, text): kind "latency" asks pare ms <= bound x ORT dense ms,
# kind "speedup" asks ORT dense ms / pare ms >= bound. All at one thread.
TARGETS = [
    ("dense", ["resnet18", "vgg16", "mobilenetv2-224"], "latency", 1.1, "dense <= 1.1x ORT dense latency"),
    ("pattern-0.9", ["resnet18", "vgg16"], "speedup", 4.0, "90% pattern >= 4x faster than ORT dense"),
    ("block4x4-0.9", ["resnet18", "vgg16"], "speedup", 4.0, "90% block 4x4 >= 4x faster than ORT dense"),
    ("unstructured-0.9", ["resnet18", "vgg16"], "speedup", 2.5, "90% unstructured >= 2.5x faster than ORT dense"),
    ("2:4", ["resnet18", "vgg16"], "speedup", 1.5, "2:4 >= 1.5x faster than ORT dense"),
    ("1x1-block4x4-0.75", ["mobilenetv2-224"], "speedup", 1.8,
     "1x1 convs at 75% block 4x4 >= 1.8x faster than ORT dense"),
]

NOTES = {
    ("mobilenetv2-224", "pattern-0.75"): "a",
    ("mobilenetv2-224", "pattern-0.9"): "a",
}
NOTE_TEXT = {
    "a": "mobilenetv2-224 has one 3x3 conv that is not depthwise, the stem, which stays dense (the first "
         "conv): patterns only reach the depthwise 3x3 convs, a few % of the work, so these rows say little.",
    "b": "the plan does far less work than the sparsity leaves: whole filters came out zero (e.g. block 4x4 over "
         "depthwise convs, whose filters are one 3x3 kernel each), and the engine drops them and what only they "
         "feed, so most of the network is gone: not a speed figure for this sparsity.",
}


def target_sparsity(variant):
    """The sparsity a variant's name asks for (None when it does not say)."""
    if variant == "2:4":
        return 0.5
    if variant.startswith("1x1-"):
        return None
    try:
        return float(variant.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                sys.stderr.write("engine_summary: %s:%d is not JSON, skipped\n" % (path, n))
    return rows


def threads_word(t):
    return "1 thread" if t == 1 else "%d threads" % t


def fmt_ms(x):
    return "-" if x is None else ("%.1f" % x if x >= 100 else "%.2f" % x)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: engine_summary.py engine.jsonl\n")
        return 2
    rows = load(argv[1])

    peak = {}
    peak_isa = None
    ort = defaultdict(list)          # (model, threads) -> [median_ms, ...]
    torch = {}                       # (model, threads) -> row
    pare = {}                        # (model, threads, variant) -> row
    compile_s = {}                   # (model, threads, variant) -> wall s
    failed = set()                   # (engine, model, threads, variant)
    versions = {}
    unavailable = []
    meta = {}
    for r in rows:
        eng, m, t, v = r.get("engine"), r.get("model"), r.get("threads"), r.get("variant", "dense")
        if r.get("event") == "meta":
            meta = r
        elif "unavailable" in r:
            unavailable.append(r)
        elif eng == "peak" and "gflops" in r:
            peak[t] = max(peak.get(t, 0.0), r["gflops"])
            peak_isa = r.get("isa")
        elif r.get("failed"):
            failed.add((eng, m, t, v))
        elif r.get("event") == "compile":
            compile_s[(m, t, v)] = r["wall_s"]
        elif "median_ms" in r:
            if eng == "ort":
                ort[(m, t)].append(r["median_ms"])
                versions["ort"] = r.get("ort")
            elif eng == "torch":
                torch[(m, t)] = r
                versions["torch"] = r.get("torch")
            elif eng == "pare":
                pare[(m, t, v)] = r

    print("== bench-engine summary: batch 1, 3x224x224, random weights; latency = median ms over all timed runs")
    if meta:
        print("   %s; %s (%s cores); OPENBLAS_CORETYPE unset (was %r)" % (
            meta.get("pare_version", "pare ?"), meta.get("cpu", "?"), meta.get("cores", "?"),
            meta.get("openblas_coretype_was", "")))
    if peak:
        print("   FMA peak (bench/peak.c, %s): %s" % (peak_isa, ", ".join(
            "%s %.1f GFLOP/s" % (threads_word(t), g) for t, g in sorted(peak.items()))))
    peers = []
    if versions.get("ort"):
        peers.append("ONNX Runtime %s (node, CPU, graph optimisation 'all')" % versions["ort"])
    if versions.get("torch"):
        peers.append("PyTorch %s eager" % versions["torch"])
    if peers:
        print("   peers (dense models): " + "; ".join(peers))
    for u in unavailable:
        print("   not measured: %s%s: %s" % (u.get("engine"), " " + u["model"] if u.get("model") else "",
                                              u["unavailable"]))

    models = [m for m in MODELS if any(k[0] == m for k in pare)] + \
        sorted({k[0] for k in pare} - set(MODELS))
    thread_counts = sorted({k[1] for k in pare})
    used_notes = []
    for m in models:
        for t in thread_counts:
            if not any(k[0] == m and k[1] == t for k in pare):
                continue
            o = ort.get((m, t))
            ort_ms = statistics.median(o) if o else None
            tr = torch.get((m, t))
            dense_row = pare.get((m, t, "dense"))
            dense_macs = dense_row["dense_macs"] if dense_row else None
            print()
            head = "%s, %s: ONNX Runtime dense %s ms" % (m, threads_word(t), fmt_ms(ort_ms))
            if o and len(o) > 1:
                head += " (runs: %s)" % " / ".join(fmt_ms(x) for x in o)
            head += ", PyTorch dense %s ms" % fmt_ms(tr["median_ms"] if tr else None)
            print(head)
            if dense_macs and peak.get(t):
                parts = []
                for name, ms in (("ONNX Runtime", ort_ms), ("PyTorch", tr["median_ms"] if tr else None)):
                    if ms:
                        g = 2 * dense_macs / (ms * 1e-3) * 1e-9
                        parts.append("%s %.0f GFLOP/s (%.0f%% of peak)" % (name, g, 100 * g / peak[t]))
                if parts:
                    print("   peers at %.2f GMAC: %s" % (dense_macs * 1e-9, ", ".join(parts)))
            print("   %-20s %9s %8s %7s %8s %12s %7s %9s" % (
                "pare", "median ms", "p90 ms", "work", "ORT/pare", "eff GFLOP/s", "% peak", "compile s"))
            variants = [v for v in VARIANTS if (m, t, v) in pare or ("pare", m, t, v) in failed]
            variants += sorted({k[2] for k in pare if k[0] == m and k[1] == t} - set(VARIANTS))
            for v in variants:
                r = pare.get((m, t, v))
                work = r["macs"] / r["dense_macs"] if r and r.get("dense_macs") else None
                sp = target_sparsity(v)
                marks = [NOTES[(m, v)]] if (m, v) in NOTES else []
                if work is not None and sp is not None and work < 0.5 * (1 - sp):
                    marks.append("b")
                for mark in marks:
                    if mark not in used_notes:
                        used_notes.append(mark)
                label = v + (" (%s)" % ",".join(marks) if marks else "")
                if r is None:
                    print("   %-20s failed" % label)
                    continue
                speed = ort_ms / r["median_ms"] if ort_ms else None
                g = r.get("effective_gflops")
                share = 100 * g / peak[t] if g and peak.get(t) else None
                c = compile_s.get((m, t, v))
                print("   %-20s %9s %8s %7s %8s %12s %7s %9s" % (
                    label, fmt_ms(r["median_ms"]), fmt_ms(r["p90_ms"]),
                    "-" if work is None else "%.1f%%" % (100 * work),
                    "-" if speed is None else "%.2fx" % speed,
                    "-" if g is None else "%.1f" % g,
                    "-" if share is None else "%.0f%%" % share,
                    "-" if c is None else "%.2f" % c))
    for mark in used_notes:
        print("   (%s) %s" % (mark, NOTE_TEXT[mark]))
    print("   work: the share of the dense model's MACs the compiled plan does; ORT/pare: times faster than "
          "ONNX Runtime dense;\n   eff GFLOP/s: dense-equivalent (dense MACs x 2 / time); compile s: the untimed "
          "first pare compile (tuning)")

    print()
    print("== targets (1 thread; ORT = ONNX Runtime dense)")
    results = []
    for v, tmodels, kind, bound, text in TARGETS:
        for m in tmodels:
            o = ort.get((m, 1))
            ort_ms = statistics.median(o) if o else None
            r = pare.get((m, 1, v))
            res = dict(target=text, model=m, variant=v, threads=1, need=bound,
                       ort_ms=None if ort_ms is None else round(ort_ms, 4),
                       pare_ms=None if r is None else round(r["median_ms"], 4))
            if ort_ms is None or r is None:
                res.update(value=None, met=None)
                why = "no ONNX Runtime figure" if ort_ms is None else "no pare figure"
                verdict, shown = "n/a (%s)" % why, "-"
            elif kind == "latency":
                val = r["median_ms"] / ort_ms
                res.update(measure="pare_ms / ort_ms", value=round(val, 3), met=val <= bound)
                shown = "pare %s ms vs ORT %s ms = %.2fx the latency (need <= %.1fx)" % (
                    fmt_ms(r["median_ms"]), fmt_ms(ort_ms), val, bound)
                verdict = "met" if res["met"] else "MISSED"
            else:
                val = ort_ms / r["median_ms"]
                res.update(measure="ort_ms / pare_ms", value=round(val, 3), met=val >= bound)
                shown = "pare %s ms vs ORT %s ms = %.2fx faster (need >= %.1fx)" % (
                    fmt_ms(r["median_ms"]), fmt_ms(ort_ms), val, bound)
                verdict = "met" if res["met"] else "MISSED"
            print("   %-6s %-16s %-19s %s" % (verdict if verdict in ("met", "MISSED") else "n/a", m, v,
                                            shown if res["met"] is not None else verdict))
            results.append(res)
    done = [r for r in results if r["met"] is not None]
    print("   %d of %d targets met (%d without figures)" % (
        sum(1 for r in done if r["met"]), len(results), len(results) - len(done)))
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
