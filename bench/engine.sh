#!/bin/sh
# make bench-engine: inference latency of pare's compiled engine on ResNet-18, MobileNetV2
# and VGG-16 (batch 1, 3x224x224, random weights; WORKLOADS.md), dense and pruned (pattern,
# block 4x4 and unstructured at 75% and 90%, 2:4; every conv and linear but the first conv),
# beside ONNX Runtime (node, CPU) and PyTorch eager on the dense models, interleaved per model
# and thread count so drift hits every engine; plus the machine's FMA peak (bench/peak.c).
# Every figure goes to bench/out/engine.jsonl; bench/engine_summary.py prints the table, the
# ratios to ONNX Runtime and the issue's targets.
#
# usage: bench/engine.sh PARE_BINARY
# env:   THREADS="1 2"  MODELS="resnet18 mobilenetv2-224 vgg16"
#        REUSE=1  keep the model files (zoo, pruned, ONNX) of an earlier run in bench/out/engine/
#        RUNS=N   timed runs per block for every model (default: 50; VGG-16 10)
#
# OPENBLAS_CORETYPE is unset for everything (WORKLOADS.md: it forces OpenBLAS onto its AVX2
# kernels on these machines; users' machines do not set it). Kernel tuning is cached
# (~/.cache/pare/tune.txt or $PARE_TUNE_CACHE): an untimed `pare compile` per file and thread
# count comes first, so tuning never lands in the timed runs; its wall time is logged apart.
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$here/out
dir=$out/engine
log=$out/engine.jsonl
threads=${THREADS:-"1 2"}
models=${MODELS:-"resnet18 mobilenetv2-224 vgg16"}
reuse=${REUSE:-0}
py=/usr/bin/python3
coretype=${OPENBLAS_CORETYPE:-}
unset OPENBLAS_CORETYPE
mkdir -p "$dir"

[ -x "$pare" ] || { echo "bench-engine: no pare binary at $pare" >&2; exit 1; }
[ -x "$py" ] || { echo "bench-engine: $py is needed (the summary and the PyTorch peer)" >&2; exit 1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# tag KEY=VALUE...: copies the JSON objects of stdin to the log, one a line, with these fields added (VALUE
# as JSON when it parses, else as a string); a "model" already there (pare's file path)
# moves to "file", and a per-layer list is dropped.
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
    d.pop("layers", None)
    if "model" in extra and "model" in d and d["model"] != extra["model"]:
        d["file"] = d["model"]
    d.update(extra)
    print(json.dumps(d), flush=True)
' "$@" >> "$log"
}
# note KEY=VALUE...: one JSON line of its own.
note() { echo '{}' | tag "$@"; }

: > "$log"
note event=meta pare_version="$("$pare" --version 2>&1 | head -n 1)" threads="$threads" models="$models" \
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)" cores="$(nproc)" \
    openblas_coretype_was="$coretype" reuse="$reuse" date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "bench-engine: $models; threads $threads; batch 1, 3x224x224, random weights; OPENBLAS_CORETYPE unset"

# --- the FMA peak (measured at the start and at the end; the summary keeps the higher) ---
peak_bin=$dir/peak
peak() {
    [ -x "$peak_bin" ] || return 0
    echo "== FMA peak ($1)"
    # shellcheck disable=SC2086 # one argument per thread count
    "$peak_bin" $threads | tag when="$1" || echo "bench-engine: bench/peak.c failed to run" >&2
}
if cc -O3 -march=native -fopenmp "$here/peak.c" -o "$peak_bin" 2> "$dir/peak.log"; then
    peak start
else
    echo "bench-engine: could not build bench/peak.c (see $dir/peak.log): no peak figure" >&2
    rm -f "$peak_bin"
    note engine=peak unavailable="cc -O3 -march=native -fopenmp bench/peak.c failed"
fi

# --- the peers: PyTorch (Debian python3-torch) and ONNX Runtime (npm onnxruntime-node) ---
have_torch=0
if "$py" -c 'import torch, torchvision' 2> /dev/null; then
    have_torch=1
elif "$root/scripts/deps.sh" --bench >&2 && "$py" -c 'import torch, torchvision' 2> /dev/null; then
    have_torch=1
fi
if [ "$have_torch" = 1 ]; then
    note engine=torch version="$("$py" -c 'import torch; print(torch.__version__)')"
else
    echo "bench-engine: no PyTorch for $py (python3-torch, python3-torchvision; scripts/deps.sh --bench):" \
        "no PyTorch figures, and no ONNX export unless bench/out/engine/onnx has the files" >&2
    note engine=torch unavailable="python3-torch / python3-torchvision not importable"
fi

have_ort=0
why=
ort_ok() { (cd "$here/peers" && node -e "require('onnxruntime-node')") > /dev/null 2>&1; }
stamp=$here/peers/node_modules/.pare-installed # touched after an install of the current package.json
if ! command -v node > /dev/null 2>&1; then
    why="node is not installed"
elif ort_ok && [ -f "$stamp" ] && [ -z "$(find "$here/peers/package.json" -newer "$stamp")" ]; then
    have_ort=1
elif ! command -v npm > /dev/null 2>&1; then
    ort_ok && have_ort=1 || why="npm is not installed"
else
    # --ignore-scripts: the install script only downloads GPU libraries (WORKLOADS.md).
    echo "== npm install (bench/peers: onnxruntime-node)"
    if (cd "$here/peers" && npm install --ignore-scripts --no-audit --no-fund) > "$dir/npm.log" 2>&1; then
        touch "$stamp"
    else
        echo "bench-engine: npm install --ignore-scripts in bench/peers failed (see $dir/npm.log)" >&2
    fi
    ort_ok && have_ort=1 || why="onnxruntime-node does not load in bench/peers (npm install: see bench/out/engine/npm.log)"
fi
if [ "$have_ort" = 1 ]; then
    note engine=ort version="$(cd "$here/peers" && node -p "require('onnxruntime-node/package.json').version")"
else
    echo "bench-engine: no ONNX Runtime: $why" >&2
    note engine=ort unavailable="$why"
fi

# --- pare's model files ---
fresh() { [ "$reuse" != 1 ] || [ ! -s "$1" ]; }

# prune MODEL VARIANT OUT.pare OPTIONS...: a pruned variant of the model's dense file.
prune() {
    m=$1 v=$2 f=$3
    shift 3
    fresh "$f" || return 0
    echo "== pare prune $m -> $v"
    t0=$(now)
    if "$pare" prune "$dir/$m.pare" "$@" --exempt-first --finetune 0 --quiet --json --out "$f" > "$dir/prune.json"; then
        tag engine=pare event=prune model="$m" variant="$v" wall_s="$(since "$t0")" < "$dir/prune.json"
    else
        echo "bench-engine: pare prune failed for $m $v" >&2
        rm -f "$f"
        note engine=pare event=prune model="$m" variant="$v" failed=true
    fi
}

# variants MODEL: prints "VARIANT FILE" lines and makes the files that are missing.
variants() {
    m=$1
    echo "dense $dir/$m.pare"
    for sp in 0.75 0.9; do
        for s in pattern block:4x4 unstructured; do
            v=$(echo "$s" | tr -d :)-$sp
            prune "$m" "$v" "$dir/$m-$v.pare" --scheme "$s" --sparsity "$sp" >&2
            [ -s "$dir/$m-$v.pare" ] && echo "$v $dir/$m-$v.pare"
        done
    done
    prune "$m" 2:4 "$dir/$m-2of4.pare" --scheme 2:4 --sparsity 0.5 >&2
    [ -s "$dir/$m-2of4.pare" ] && echo "2:4 $dir/$m-2of4.pare"
    if [ "$m" = mobilenetv2-224 ]; then
        # The issue's special case: only the 1x1 convs (expand, project, head) at 75% block 4x4.
        ratios=$dir/$m-1x1.ratios
        "$pare" info "$dir/$m.pare" --json --all | "$py" -c '
import json, sys
names = [l["name"] for l in json.load(sys.stdin)["layers"] if l["op"] == "conv2d" and
         (l["name"].endswith((".expand.conv", ".project.conv")) or l["name"] == "head.conv")]
print("# the 1x1 convs of mobilenetv2-224: 75% block 4x4; every other layer stays dense")
for n in names:
    print(n, "0.75 block:4x4")
' > "$ratios"
        prune "$m" 1x1-block4x4-0.75 "$dir/$m-1x1-block4x4-0.75.pare" --scheme block:4x4 --ratios "$ratios" >&2
        [ -s "$dir/$m-1x1-block4x4-0.75.pare" ] && echo "1x1-block4x4-0.75 $dir/$m-1x1-block4x4-0.75.pare"
    fi
    return 0
}

ort_run() { # MODEL THREADS RUNS WARMUP PASS
    [ "$have_ort" = 1 ] && [ -s "$dir/onnx/$1.onnx" ] || return 0
    echo "   ort     dense ($5)"
    if node "$here/peers/ort_bench.js" "$dir/onnx/$1.onnx" "$2" "$3" "$4" 3 "$1" > "$dir/run.json" 2>> "$dir/ort.log"; then
        tag pass="$5" < "$dir/run.json"
    else
        echo "bench-engine: ONNX Runtime failed on $1 (see $dir/ort.log)" >&2
        note engine=ort model="$1" threads="$2" failed=true
    fi
}

for m in $models; do
    case $m in
        vgg16) runs=${RUNS:-10} warm=3 ;;
        *) runs=${RUNS:-50} warm=10 ;;
    esac
    echo "== $m"
    if fresh "$dir/$m.pare"; then
        "$pare" zoo "$m" --out "$dir/$m.pare" || { echo "bench-engine: pare zoo $m failed" >&2; continue; }
    fi
    list=$(variants "$m")
    if [ "$have_ort" = 1 ] && fresh "$dir/onnx/$m.onnx"; then
        if [ "$have_torch" = 1 ]; then
            echo "== ONNX export of $m (torchvision, opset 13)"
            if "$py" "$here/peers/export_onnx.py" "$dir/onnx" "$m" > "$dir/run.json" 2>> "$dir/export.log"; then
                tag < "$dir/run.json"
            else
                echo "bench-engine: ONNX export of $m failed (see $dir/export.log)" >&2
            fi
        fi
        [ -s "$dir/onnx/$m.onnx" ] || note engine=ort model="$m" unavailable="no ONNX file (export needs PyTorch)"
    fi
    for t in $threads; do
        echo "== $m, $t thread(s): $runs runs x 3 blocks after $warm warm-up runs"
        ort_run "$m" "$t" "$runs" "$warm" before
        if [ "$have_torch" = 1 ]; then
            echo "   torch   dense"
            if "$py" "$here/peers/torch_infer.py" "$m" "$t" "$runs" "$warm" 3 > "$dir/run.json" 2>> "$dir/torch.log"; then
                tag < "$dir/run.json"
            else
                echo "bench-engine: PyTorch failed on $m (see $dir/torch.log)" >&2
                note engine=torch model="$m" threads="$t" failed=true
            fi
        fi
        echo "$list" | while read -r v f; do
            [ -n "$v" ] || continue
            echo "   pare    $v"
            t0=$(now)
            if ! "$pare" compile "$f" --threads "$t" --quiet; then
                echo "bench-engine: pare compile failed on $f" >&2
                note engine=pare model="$m" variant="$v" threads="$t" failed=true
                continue
            fi
            note engine=pare event=compile model="$m" variant="$v" threads="$t" wall_s="$(since "$t0")"
            if "$pare" bench "$f" --threads "$t" --runs "$runs" --blocks 3 --warmup "$warm" --json > "$dir/run.json"; then
                tag model="$m" variant="$v" < "$dir/run.json"
            else
                echo "bench-engine: pare bench failed on $f" >&2
                note engine=pare model="$m" variant="$v" threads="$t" failed=true
            fi
        done
        ort_run "$m" "$t" "$runs" "$warm" after
    done
done
peak end
echo
"$py" "$here/engine_summary.py" "$log"
