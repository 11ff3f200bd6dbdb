#!/usr/bin/python3
"""The table of make bench-int8 (bench/int8.sh) from bench/out/int8.jsonl: per model and thread
count, ONNX Runtime float32 dense, pare float32 dense, and each int8 variant with its float32
twin (the same file in float32), how many times faster than pare float32 dense and ONNX Runtime
float32 dense it is, and the layers whose int8 step took longer than the same layer in float32.
Then the issue's targets, each met or MISSED, and one JSON line per target."""
import json
import statistics
import sys


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    ort, f32, q8, ort8, qdq8 = {}, {}, {}, {}, {}
    for d in rows:
        if "median_ms" not in d:
            continue
        key = (d.get("model"), d.get("threads"))
        if d.get("engine") == "ort" and d.get("precision") == "int8":
            ort8[key + (d.get("variant"),)] = d["median_ms"]
        elif d.get("engine") == "ort":
            ort.setdefault(key, []).append(d["median_ms"])
        elif d.get("engine") == "pare" and d.get("precision") == "float32":
            f32[key] = d["median_ms"]
        elif d.get("engine") == "pare" and d.get("precision") == "int8":
            q8[key + (d.get("variant"),)] = d
        elif d.get("engine") == "pare" and d.get("precision") == "int8-qdq":
            qdq8[key + (d.get("variant"),)] = d["median_ms"]
    keys = sorted(set(k[:2] for k in q8) | set(f32) | set(ort.keys()), key=lambda k: (str(k[0]), k[1] or 0))
    targets = []
    print("%-16s %2s  %-14s %9s %9s %8s %8s %7s  %s" %
          ("model", "t", "variant", "int8 ms", "f32 ms", "x pare", "x ORT", "MB act", "layers slower in int8"))
    for model, t in keys:
        o = statistics.mean(ort[(model, t)]) if ort.get((model, t)) else None
        pf = f32.get((model, t))
        print("%-16s %2s  %-14s %9s %9s" % (model, t, "ORT float32", "", "%.3f" % o if o else "-"))
        print("%-16s %2s  %-14s %9s %9s" % (model, t, "pare float32", "", "%.3f" % pf if pf else "-"))
        for v in ("dense", "block4x4-0.9", "block4x36-0.9", "pattern-0.9"):
            d = q8.get((model, t, v))
            if not d:
                continue
            m = d["median_ms"]
            twin = d.get("float32_median_ms")
            slower = [(s["name"], s["ms"], s["float32_ms"]) for s in d.get("steps", [])
                      if s.get("float32_ms", -1) > 0 and s["ms"] > s["float32_ms"]]
            worst = max((a / b for _, a, b in slower), default=None)
            print("%-16s %2s  %-14s %9.3f %9s %8s %8s %7.2f  %d%s" % (
                model, t, "int8 " + v, m, "%.3f" % twin if twin else "-",
                "%.2f" % (pf / m) if pf else "-", "%.2f" % (o / m) if o else "-",
                d.get("activation_bytes", 0) / 1e6, len(slower),
                " (worst %.2fx: %s)" % (worst, max(slower, key=lambda s: s[1] / s[2])[0]) if slower else ""))
            if (model, t, v) in ort8:
                o8 = ort8[(model, t, v)]
                print("%-16s %2s  %-14s %9.3f %9s %8s %8s   (QDQ, ONNX Runtime's static quantization)" % (
                    model, t, "ORT int8 " + v, o8, "", "%.2f" % (pf / o8) if pf else "-",
                    "%.2f" % (o / o8) if o else "-"))
                if (model, t, v) in qdq8:
                    p8 = qdq8[(model, t, v)]
                    print("%-16s %2s  %-14s %9.3f %9s %8s %8s   (the same QDQ model in pare: %.2fx ORT int8)" % (
                        model, t, "pare int8 QDQ", p8, "", "%.2f" % (pf / p8) if pf else "-",
                        "%.2f" % (o / p8) if o else "-", o8 / p8))
            if v == "dense" and pf:
                targets.append(("int8 dense >= 2x pare float32 dense", model, t, pf / m, 2.0))
            if v.startswith("block") and o:
                targets.append(("int8 + 90%% %s >= 6x ORT float32 dense" % v.split("-")[0], model, t, o / m, 6.0))
            targets.append(("%s: no layer slower in int8 than float32" % v, model, t, -len(slower), 0.0))
    print()
    for name, model, t, got, want in targets:
        ok = got >= want
        shown = ("%.2fx" % got) if want > 0 else ("%d layers" % -got)
        print("%-6s %-52s %-16s t%s: %s" % ("met" if ok else "MISSED", name, model, t, shown))
    for name, model, t, got, want in targets:
        print(json.dumps({"target": name, "model": model, "threads": t, "value": got, "want": want,
                          "met": got >= want}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/out/int8.jsonl")
