#!/bin/sh
# make bench-share: W1 (fmnist-cnn, 3 epochs, the recipe of WORKLOADS.md), then
# pare share with 16 and 4 centroids per layer (runs of 3 in the convs, scalars
# in the linear layers), each without training, with 1 epoch of centroid
# fine-tuning, and with 1 epoch of the Deep k-Means regulariser before it; also
# scalar sharing and SmartExchange. One JSON line per configuration (test
# accuracy, file size) in bench/out/share/share.jsonl, and a table at the end.
# usage: bench/share.sh PARE
#   env: THREADS=2  BASE=model.pare (a trained W1 to start from; default: train one,
#        or reuse bench/out/share/w1.pare with REUSE=1)  LAMBDA=20  CONFIGS="k16 k16-ft ..."
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/share
mkdir -p "$out"
threads=${THREADS:-2}
lambda=${LAMBDA:-20}
configs=${CONFIGS:-"k16 k16-ft k16-reg-ft k4 k4-ft k4-reg-ft s16 s4 se se-ft"}
log=$out/share.jsonl
base=${BASE:-$out/w1.pare}
if [ -z "${BASE:-}" ] && { [ "${REUSE:-0}" != 1 ] || [ ! -f "$base" ]; }; then
    echo "== training W1 (pare, 3 epochs)"
    env -u OPENBLAS_CORETYPE "$pare" train --model fmnist-cnn --data fashion-mnist --epochs 3 \
        --threads "$threads" --out "$base" --quiet --json > "$out/train.json"
fi
: > "$log"
echo "== float W1 ($base)"
env -u OPENBLAS_CORETYPE "$pare" eval "$base" --data fashion-mnist --threads "$threads" --json |
    /usr/bin/python3 -c 'import json,os,sys; d=json.load(sys.stdin); print(json.dumps({"tag":"float","acc_final":d.get("accuracy"),"file_bytes_after":os.path.getsize(sys.argv[1])}))' "$base" >> "$log"
run() { # tag, then pare share options
    tag=$1
    shift
    echo "== pare share $tag: $*"
    env -u OPENBLAS_CORETYPE "$pare" share "$base" --threads "$threads" --quiet --json \
        --out "$out/tmp.pare" "$@" |
        /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("layers",None); d["tag"]=sys.argv[1]; print(json.dumps(d))' "$tag" >> "$log" ||
        echo "{\"tag\":\"$tag\",\"failed\":true}" >> "$log"
}
for c in $configs; do
    case $c in
    k16) run k16 --k 16 ;;
    k16-ft) run k16-ft --k 16 --finetune 1 ;;
    k16-reg-ft) run k16-reg-ft --k 16 --reg "$lambda" --finetune 1 ;;
    k4) run k4 --k 4 ;;
    k4-ft) run k4-ft --k 4 --finetune 1 ;;
    k4-reg-ft) run k4-reg-ft --k 4 --reg "$lambda" --finetune 1 ;;
    s16) run s16 --k 16 --sub 1 ;;
    s4) run s4 --k 4 --sub 1 ;;
    se) run se --smartexchange ;;
    se-ft) run se-ft --smartexchange --finetune 1 ;;
    *) echo "bench-share: unknown configuration $c" >&2; exit 2 ;;
    esac
done
/usr/bin/python3 - "$log" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
flt = next((r for r in rows if r.get("tag") == "float"), {})
fb = flt.get("file_bytes_after") or 0
def pct(v):
    return "-" if v is None or v < 0 else "%.2f%%" % (100 * v)
print("\n%-12s %10s %10s %10s %10s %12s %8s" % ("config", "before", "reg", "shared", "final", "file bytes", "of float"))
for r in rows:
    if r.get("failed"):
        print("%-12s failed" % r["tag"])
        continue
    b = r.get("file_bytes_after") or 0
    print("%-12s %10s %10s %10s %10s %12d %7.1f%%" % (r["tag"], pct(r.get("acc_before")), pct(r.get("acc_reg")),
          pct(r.get("acc_shared")), pct(r.get("acc_final")), b, 100.0 * b / fb if fb else 0))
EOF
