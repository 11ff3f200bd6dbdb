#!/bin/sh
# make bench-int8: latency of pare's int8 engine on ResNet-18 and MobileNetV2 (batch 1,
# 3x224x224, random weights as make bench-engine builds them): int8 dense, int8 + 90% block
# sparse (4x4 blocks of pare's GEMM view, and 4x36: 4 filters x one channel quad x all 9 taps,
# the block the int8 layout holds whole) and int8 + 90% pattern, beside pare float32 dense and
# ONNX Runtime float32 dense in the same run; 1 and 2 threads; medians over 3 blocks of runs.
# Each quantized file is made by bench/int8_quant.c (per-channel 8-bit weights, 8-bit
# activations calibrated on random inputs: latency only); `pare bench` times a quantized
# model in int8 and, block by block in turn, the same model in float32, so every int8 line
# also carries its float32 twin and the per-layer times of both (--verbose).
# Every figure goes to bench/out/int8.jsonl; bench/int8_summary.py prints the table and the
# issue's targets.
#
# ONNX Runtime int8 (QDQ, static quantization) is timed on the dense model in the same run:
# bench/qdq_model.c quantizes it as ONNX Runtime's static quantization would (uint8
# activations after every layer, so ONNX Runtime fuses every conv into QLinearConv), pare
# exports it as QDQ, and pare times the very same quantized model too ("pare int8, ORT's
# quantization"), so the two int8 engines are compared on one model.
#
# usage: bench/int8.sh PARE_BINARY INT8_QUANT_BINARY [QDQ_MODEL_BINARY]
# env:   THREADS="1 2"  MODELS="resnet18 mobilenetv2-224"  RUNS=N (timed runs per block, 50)
#        REUSE=1  keep the model files of an earlier run in bench/out/int8/
#        ORT_INT8=0  skip ONNX Runtime int8 (on by default when QDQ_MODEL_BINARY is given)
set -eu
pare=$1
quant=$2
qdq=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out
dir=$out/int8
log=$out/int8.jsonl
threads=${THREADS:-"1 2"}
models=${MODELS:-"resnet18 mobilenetv2-224"}
runs=${RUNS:-50}
reuse=${REUSE:-0}
py=/usr/bin/python3
unset OPENBLAS_CORETYPE
mkdir -p "$dir" "$dir/onnx"

[ -x "$pare" ] || { echo "bench-int8: no pare binary at $pare" >&2; exit 1; }
[ -x "$quant" ] || { echo "bench-int8: no int8_quant binary at $quant" >&2; exit 1; }
[ -x "$py" ] || { echo "bench-int8: $py is needed (the summary)" >&2; exit 1; }

# tag KEY=VALUE...: the JSON objects of stdin to the log, one a line, with these fields added
# (VALUE as JSON when it parses); pare's "model" (a file path) moves to "file".
tag() {
    "$py" -c '
import json, sys
extra = {}
for kv in sys.argv[1:]:
    k, v = kv.split("=", 1)
    try:
        extra[k] = json.loads(v)
    except ValueError:
        extra[k] = v
text, pos, dec = sys.stdin.read(), 0, json.JSONDecoder()
while True:
    pos = text.find("{", pos)
    if pos < 0:
        break
    d, pos = dec.raw_decode(text, pos)
    if "model" in extra and "model" in d and d["model"] != extra["model"]:
        d["file"] = d["model"]
    d.update(extra)
    print(json.dumps(d), flush=True)
' "$@" >> "$log"
}
note() { echo '{}' | tag "$@"; }

: > "$log"
note event=meta pare_version="$("$pare" --version 2>&1 | head -n 1)" threads="$threads" models="$models" \
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" cores="$(nproc)" \
    vnni="$(grep -o -m1 -w 'avx512_vnni' /proc/cpuinfo || echo no)" date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "bench-int8: $models; threads $threads; batch 1, 3x224x224, random weights"

# --- ONNX Runtime (float32 dense, as bench/engine.sh runs it) ---
have_ort=0
if command -v node > /dev/null 2>&1 && (cd "$here/peers" && node -e "require('onnxruntime-node')") > /dev/null 2>&1; then
    have_ort=1
    note engine=ort version="$(cd "$here/peers" && node -p "require('onnxruntime-node/package.json').version")"
else
    echo "bench-int8: no ONNX Runtime (node and bench/peers/node_modules: cd bench/peers && npm install --ignore-scripts)" >&2
    note engine=ort unavailable="onnxruntime-node does not load in bench/peers"
fi
onnx_file() { # MODEL: prints a float ONNX file of the torchvision model, exporting it when needed
    for f in "$dir/onnx/$1.onnx" "$out/engine/onnx/$1.onnx"; do
        [ -s "$f" ] && { echo "$f"; return 0; }
    done
    if "$py" -c 'import torch, torchvision' 2> /dev/null &&
        "$py" "$here/peers/export_onnx.py" "$dir/onnx" "$1" > /dev/null 2>> "$dir/export.log" && [ -s "$dir/onnx/$1.onnx" ]; then
        echo "$dir/onnx/$1.onnx"
        return 0
    fi
    return 1
}
ort_run() { # MODEL THREADS PASS
    [ "$have_ort" = 1 ] && [ -n "$onnx" ] || return 0
    echo "   ort     float32 dense ($3)"
    if node "$here/peers/ort_bench.js" "$onnx" "$2" "$runs" 10 3 "$1" > "$dir/run.json" 2>> "$dir/ort.log"; then
        tag pass="$3" precision=float32 < "$dir/run.json"
    else
        note engine=ort model="$1" threads="$2" failed=true
    fi
}

# ONNX Runtime int8 (QDQ, static quantization) and pare on the same quantized model:
# FLOATFILE quantized by bench/qdq_model.c (once per model and variant), exported as QDQ.
ort_int8() { # MODEL VARIANT FLOATFILE THREADS
    [ "${ORT_INT8:-1}" = 1 ] && [ "$have_ort" = 1 ] && [ -n "$qdq" ] || return 0
    p=$dir/onnx/$1-$2
    if { fresh "$p.int8.onnx" || fresh "$p.int8.pare"; } && ! "$qdq" "$3" "$p" > /dev/null 2>> "$dir/ort.log"; then
        note engine=ort model="$1" variant="$2" precision=int8 unavailable="qdq_model failed on $3"
        return 0
    fi
    echo "   ort     int8 $2 (QDQ, static quantization)"
    if node "$here/peers/ort_bench.js" "$p.int8.onnx" "$4" "$runs" 10 3 "$1" int8-qdq > "$dir/run.json" 2>> "$dir/ort.log"; then
        tag variant="$2" precision=int8 < "$dir/run.json"
    else
        note engine=ort model="$1" variant="$2" precision=int8 threads="$4" failed=true
    fi
    echo "   pare    int8 $2, ONNX Runtime's quantization (the same model)"
    if "$pare" compile "$p.int8.pare" --threads "$4" --quiet &&
        "$pare" bench "$p.int8.pare" --threads "$4" --runs "$runs" --blocks 3 --json > "$dir/run.json"; then
        tag model="$1" variant="$2" precision=int8-qdq < "$dir/run.json"
    else
        note engine=pare model="$1" variant="$2" precision=int8-qdq threads="$4" failed=true
    fi
}

fresh() { [ "$reuse" != 1 ] || [ ! -s "$1" ]; }

# variant MODEL NAME SCHEME: the pruned (unless SCHEME is -) and quantized file; prints its path
variant() {
    m=$1 v=$2 s=$3
    f=$dir/$m-$v.pare
    q=$dir/$m-$v-q.pare
    if fresh "$q"; then
        if [ "$s" = - ]; then
            cp "$dir/$m.pare" "$f"
        elif ! "$pare" prune "$dir/$m.pare" --scheme "$s" --sparsity 0.9 --exempt-first --finetune 0 --quiet \
            --out "$f" >&2; then
            echo "bench-int8: pare prune $m $s failed" >&2
            return 1
        fi
        "$quant" "$f" "$q" >&2 || { echo "bench-int8: int8_quant failed on $f" >&2; return 1; }
    fi
    echo "$q"
}

for m in $models; do
    echo "== $m"
    if fresh "$dir/$m.pare"; then
        "$pare" zoo "$m" --out "$dir/$m.pare" > /dev/null || { echo "bench-int8: pare zoo $m failed" >&2; continue; }
    fi
    list=""
    for vs in dense:- block4x4-0.9:block:4x4 block4x36-0.9:block:4x36 pattern-0.9:pattern; do
        v=${vs%%:*}
        s=${vs#*:}
        q=$(variant "$m" "$v" "$s") && list="$list $v=$q"
    done
    onnx=$(onnx_file "$m" || true)
    [ -n "$onnx" ] || note engine=ort model="$m" unavailable="no ONNX file (export needs python3-torch)"
    for t in $threads; do
        echo "== $m, $t thread(s): $runs runs x 3 blocks"
        ort_run "$m" "$t" before
        echo "   pare    float32 dense"
        if "$pare" compile "$dir/$m.pare" --threads "$t" --quiet &&
            "$pare" bench "$dir/$m.pare" --threads "$t" --runs "$runs" --blocks 3 --json > "$dir/run.json"; then
            tag model="$m" variant=dense precision=float32 < "$dir/run.json"
        fi
        for vq in $list; do
            v=${vq%%=*}
            q=${vq#*=}
            echo "   pare    int8 $v (and its float32 twin)"
            t0=$(date +%s.%N)
            "$pare" compile "$q" --threads "$t" --quiet || { note engine=pare model="$m" variant="$v" failed=true; continue; }
            note engine=pare event=compile model="$m" variant="$v" threads="$t" \
                wall_s="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')"
            if "$pare" bench "$q" --threads "$t" --runs "$runs" --blocks 3 --verbose --json > "$dir/run.json"; then
                tag model="$m" variant="$v" precision=int8 < "$dir/run.json"
            else
                note engine=pare model="$m" variant="$v" threads="$t" failed=true
            fi
            [ "$v" = dense ] && ort_int8 "$m" "$v" "$dir/$m-$v.pare" "$t"
        done
        ort_run "$m" "$t" after
    done
done
echo
"$py" "$here/int8_summary.py" "$log"
