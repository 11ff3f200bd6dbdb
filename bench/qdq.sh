#!/bin/sh
# make bench-qdq: ONNX Runtime's float32 against its int8 on the same models (docs/ONNX.md,
# "Quantized models"): ResNet-18 and MobileNetV2 from `pare zoo` (random weights, as
# make bench-engine builds them), quantized by bench/qdq_model.c as ONNX Runtime's static
# quantization would (per-channel int8 weights, int32 biases, uint8 activations after every
# layer, min/max calibration on seeded normal inputs) and exported by pare as QDQ.
#  1. Which ops ONNX Runtime runs (its optimised graph: QLinearConv for every conv means
#     int8), and how its int8 outputs on 8 inputs compare with pare's (the same quantized
#     model run by `pare run`) and correlate with the float model's.
#  2. Latency, batch 1, THREADS (1 2): float32 then int8 then float32 then int8, each
#     3 blocks of RUNS runs; each figure is the mean of its two medians. pare bench on the
#     float and the quantized model as well, for reference.
# Needs node with onnxruntime-node (cd bench/peers && npm install --ignore-scripts) and
# Debian's python3-onnx and numpy. Results: bench/out/qdq/results.jsonl.
set -eu
pare=$1
tool=$2
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/qdq
mkdir -p "$out"
py=/usr/bin/python3
RUNS=${RUNS:-50}
THREADS=${THREADS:-"1 2"}
MODELS=${MODELS:-"resnet18 mobilenetv2-224"}
unset OPENBLAS_CORETYPE
if ! node -e "require('$here/peers/node_modules/onnxruntime-node')" 2>/dev/null; then
    echo "bench-qdq: onnxruntime-node is missing: cd bench/peers && npm install --ignore-scripts" >&2
    exit 1
fi
res=$out/results.jsonl
: > "$res"

for m in $MODELS; do
    echo "== $m: quantize, export"
    "$pare" zoo "$m" --out "$out/$m.pare" > /dev/null
    q=$("$tool" "$out/$m.pare" "$out/$m")
    rm -f "$out/$m.in.bin"
    ORT_OPTIMIZED="$out/$m.int8.opt.onnx" node "$here/peers/ort_run.js" "$out/$m.int8.onnx" \
        "$out/$m.in.bin" "$out/$m.ort8.bin" 8 7 > /dev/null 2> "$out/$m.ort.log"
    node "$here/peers/ort_run.js" "$out/$m.f32.onnx" "$out/$m.in.bin" "$out/$m.ort32.bin" > /dev/null
    "$pare" run "$out/$m.int8.pare" --input "$out/$m.in.bin" --output "$out/$m.pare8.bin" \
        --threads 1 --quiet
    "$py" - "$m" "$q" "$out" >> "$res" <<'PY'
import collections, json, sys
import numpy as np
import onnx
m, q, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ops = collections.Counter(n.op_type for n in onnx.load(f"{out}/{m}.int8.opt.onnx").graph.node)
i8, f32, p8 = (np.fromfile(f"{out}/{m}.{k}.bin", np.float32).reshape(8, -1) for k in ("ort8", "ort32", "pare8"))
print(json.dumps({"part": "ops", "model": m, "convs": q["convs"], "fakequants": q["fakequants"],
                  "ort_qlinearconv": ops.get("QLinearConv", 0), "ort_ops": dict(sorted(ops.items())),
                  "max_abs_diff_ort_int8_vs_pare": float(np.abs(i8 - p8).max()),
                  "max_abs_output": float(np.abs(p8).max()),
                  "argmax_ort_int8_vs_pare": int((i8.argmax(1) == p8.argmax(1)).sum()), "samples": 8,
                  # random weights: the outputs hardly depend on the input, so this says little
                  # of accuracy (make bench-int8 and the W1 runs measure that)
                  "corr_ort_int8_vs_float": float(np.corrcoef(i8.ravel(), f32.ravel())[0, 1])}))
PY
    tail -1 "$res"
    for t in $THREADS; do
        echo "== $m, $t thread(s): ONNX Runtime float32 / int8, pare float32 / quantized"
        b() { node "$here/peers/ort_bench.js" "$out/$m.$1.onnx" "$t" "$RUNS" 10 3 "$m" "$2"; }
        f1=$(b f32 float32)
        i1=$(b int8 int8-qdq)
        f2=$(b f32 float32)
        i2=$(b int8 int8-qdq)
        p32=$("$pare" bench "$out/$m.pare" --threads "$t" --runs "$RUNS" --json 2>/dev/null || echo null)
        p8=$("$pare" bench "$out/$m.int8.pare" --threads "$t" --runs "$RUNS" --json 2>/dev/null || echo null)
        "$py" - "$m" "$t" "$f1" "$i1" "$f2" "$i2" "$p32" "$p8" >> "$res" <<'PY'
import json, sys
m, t = sys.argv[1], int(sys.argv[2])
f1, i1, f2, i2, p32, p8 = (json.loads(s) for s in sys.argv[3:9])
def med(d):
    if not isinstance(d, dict):
        return None
    for k in ("median_ms", "latency_median_ms", "median"):
        if k in d:
            return float(d[k])
    lat = d.get("latency") or {}
    return float(lat["median_ms"]) if "median_ms" in lat else None
f32 = (med(f1) + med(f2)) / 2
i8 = (med(i1) + med(i2)) / 2
line = {"part": "latency", "model": m, "threads": t, "ort_float32_ms": round(f32, 4),
        "ort_int8_ms": round(i8, 4), "ort_int8_speedup": round(f32 / i8, 3),
        "ort_runs_ms": [med(f1), med(i1), med(f2), med(i2)],
        "pare_float32_ms": med(p32), "pare_quantized_ms": med(p8)}
print(json.dumps(line))
PY
        tail -1 "$res"
    done
done
