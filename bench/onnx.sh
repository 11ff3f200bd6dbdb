#!/bin/sh
# make bench-onnx: the figures of ONNX import and export (docs/ONNX.md, "Figures").
#  1. pare-exported models under ONNX Runtime against pare's own outputs: ResNet-18 and
#     MobileNetV2 (random weights, pare zoo) and fmnist-cnn trained for one epoch on 10k
#     Fashion-MNIST images then pruned to 90 % (global unstructured); 8 inputs each, the max
#     absolute difference of the outputs and the largest output magnitude.
#  2. torchvision ResNet-18 and MobileNetV2 (random weights) exported by PyTorch, imported
#     with pare convert, then timed: pare bench against ONNX Runtime on the same ONNX file,
#     batch 1, 1 and 2 threads, medians of 3 blocks of RUNS runs; ORT runs before and after
#     pare and its figure is the median of both.
# Needs node with onnxruntime-node (cd bench/peers && npm install --ignore-scripts) and
# Debian's python3-torch/python3-torchvision for step 2. Results: bench/out/onnx/.
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/onnx
mkdir -p "$out"
py=/usr/bin/python3
RUNS=${RUNS:-50}
THREADS=${THREADS:-"1 2"}
unset OPENBLAS_CORETYPE
if ! node -e "require('$here/peers/node_modules/onnxruntime-node')" 2>/dev/null; then
    echo "bench-onnx: onnxruntime-node is missing: cd bench/peers && npm install --ignore-scripts" >&2
    exit 1
fi
res=$out/results.jsonl
: > "$res"

echo "== 1. pare's exported models under ONNX Runtime"
"$pare" zoo resnet18 --out "$out/resnet18.pare" > /dev/null
"$pare" zoo mobilenetv2-224 --out "$out/mobilenetv2-224.pare" > /dev/null
if [ ! -f "$out/fmnist-cnn-90.pare" ]; then
    "$pare" train --model fmnist-cnn --limit 10000 --epochs 1 --quiet --out "$out/fmnist-cnn.pare"
    "$pare" prune "$out/fmnist-cnn.pare" --scheme unstructured --global --sparsity 0.9 --finetune 0 \
        --quiet --out "$out/fmnist-cnn-90.pare"
fi
for m in resnet18 mobilenetv2-224 fmnist-cnn-90; do
    "$pare" convert "$out/$m.pare" "$out/$m.onnx" --quiet
    rm -f "$out/$m.in.bin"
    node "$here/peers/ort_run.js" "$out/$m.onnx" "$out/$m.in.bin" "$out/$m.ort.bin" 8 7 > /dev/null
    "$pare" run "$out/$m.pare" --input "$out/$m.in.bin" --output "$out/$m.pare.bin" --threads 1 --quiet
    "$py" - "$m" "$out/$m.ort.bin" "$out/$m.pare.bin" >> "$res" <<'PY'
import json, sys
import numpy as np
m, a, b = sys.argv[1], np.fromfile(sys.argv[2], np.float32), np.fromfile(sys.argv[3], np.float32)
if a.shape != b.shape:
    sys.exit(f"bench-onnx: {m}: ONNX Runtime gave {a.size} outputs, pare {b.size}")
print(json.dumps({"part": "export", "model": m, "outputs": int(a.size),
                  "max_abs_diff": float(np.max(np.abs(a - b))), "max_abs_output": float(np.max(np.abs(a))),
                  "argmax_agree": float(np.mean(a.reshape(8, -1).argmax(1) == b.reshape(8, -1).argmax(1)))}))
PY
    tail -1 "$res"
done

echo "== 2. imported torchvision models: pare bench vs ONNX Runtime"
if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    echo "bench-onnx: no python3-torch/python3-torchvision: part 2 skipped" >&2
    exit 0
fi
tv=$out/torchvision
mkdir -p "$tv"
"$py" "$here/peers/export_onnx.py" "$tv" resnet18 mobilenetv2-224 > /dev/null
for m in resnet18 mobilenetv2-224; do
    "$pare" convert "$tv/$m.onnx" "$tv/$m.pare" --quiet
    for t in $THREADS; do
        o1=$(node "$here/peers/ort_bench.js" "$tv/$m.onnx" "$t" "$RUNS" 10 3 "$m")
        p=$("$pare" bench "$tv/$m.pare" --threads "$t" --runs "$RUNS" --json)
        o2=$(node "$here/peers/ort_bench.js" "$tv/$m.onnx" "$t" "$RUNS" 10 3 "$m")
        "$py" - "$m" "$t" "$o1" "$p" "$o2" >> "$res" <<'PY'
import json, sys
m, t = sys.argv[1], int(sys.argv[2])
o1, p, o2 = (json.loads(s) for s in sys.argv[3:6])
def med(d):
    for k in ("median_ms", "latency_median_ms", "median"):
        if k in d:
            return float(d[k])
    lat = d.get("latency") or {}
    return float(lat.get("median_ms"))
ort = sorted([med(o1), med(o2)])
ort_ms = (ort[0] + ort[1]) / 2
pare_ms = med(p)
print(json.dumps({"part": "import", "model": m, "threads": t, "ort_ms": ort_ms, "ort_runs_ms": ort,
                  "pare_ms": pare_ms, "pare_over_ort": pare_ms / ort_ms}))
PY
        tail -1 "$res"
    done
done
