#!/bin/sh
# make bench-quant: W1 (fmnist-cnn, 3 epochs, the recipe of WORKLOADS.md; reused from
# bench-prune's or bench-train's output when there) quantized every way pare quantizes:
# float, PTQ int8 with each calibration method, QAT int8, QAT 4-bit, QAT and ADMM binary weights;
# test accuracy and file size of each, as JSON lines in bench/out/quant/quant.jsonl and a table.
# usage: bench/quant.sh PARE   env: THREADS=2 QAT_EPOCHS=2 ADMM_EPOCHS=2 FINETUNE=2
#        ROWS="float ptq-minmax ptq-percentile ptq-mse qat8 qat4 qat1 admm1" (a subset) RETRAIN=1
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/quant
mkdir -p "$out"
threads=${THREADS:-2}
qat_epochs=${QAT_EPOCHS:-2}
admm_epochs=${ADMM_EPOCHS:-2}
finetune=${FINETUNE:-2}
rows=${ROWS:-"float ptq-minmax ptq-percentile ptq-mse qat8 qat4 qat1 admm1"}
log=$out/quant.jsonl
base=$out/w1.pare
if [ "${RETRAIN:-0}" = 1 ] || [ ! -f "$base" ]; then
    if [ "${RETRAIN:-0}" != 1 ] && [ -f "$here/out/prune/w1.pare" ]; then
        cp "$here/out/prune/w1.pare" "$base"
    elif [ "${RETRAIN:-0}" != 1 ] && [ -f "$here/out/fmnist-cnn.pare" ]; then
        cp "$here/out/fmnist-cnn.pare" "$base"
    else
        echo "== training W1 (3 epochs)"
        env -u OPENBLAS_CORETYPE "$pare" train --model fmnist-cnn --epochs 3 --threads "$threads" \
            --out "$base" --checkpoint "$out/w1.ckpt" --quiet
    fi
fi
: > "$log"
# row TAG, then pare quantize options: one JSON line with the accuracy and the file size
row() {
    tag=$1
    shift
    echo "== $tag"
    t0=$(date +%s)
    if env -u OPENBLAS_CORETYPE "$pare" quantize "$base" --calib fashion-mnist --threads "$threads" \
        --out "$out/$tag.pare" --json --quiet "$@" > "$out/$tag.json"; then
        /usr/bin/python3 - "$tag" "$out/$tag.json" "$(($(date +%s) - t0))" "$threads" >> "$log" <<'EOF'
import json, sys
tag, path, secs, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d = json.load(open(path))
print(json.dumps({"bench": "quant", "tag": tag, "method": d["method"], "bits": d["bits"],
                  "act_bits": d["act_bits"], "granularity": d["granularity"],
                  "calib_method": d["calib_method"], "stages": d.get("stages"),
                  "acc": d["acc_final"], "acc_ptq": d["acc_ptq"], "acc_float": d["acc_float"],
                  "output_sqnr_db": d["output_sqnr_db"], "bytes": d["bytes_out"],
                  "bytes_float": d["bytes_in"], "seconds": secs, "threads": threads}))
EOF
    else
        echo "{\"bench\":\"quant\",\"tag\":\"$tag\",\"failed\":true}" >> "$log"
    fi
}
for r in $rows; do
    case $r in
    float)
        echo "== float"
        acc=$(env -u OPENBLAS_CORETYPE "$pare" eval "$base" --threads "$threads" --json |
            /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
        echo "{\"bench\":\"quant\",\"tag\":\"float\",\"method\":\"float\",\"bits\":32,\"act_bits\":32,\"acc\":$acc,\"bytes\":$(stat -c %s "$base"),\"threads\":$threads}" >> "$log"
        ;;
    ptq-minmax) row ptq-minmax --calib-method minmax ;;
    ptq-percentile) row ptq-percentile --calib-method percentile ;;
    ptq-mse) row ptq-mse --calib-method mse ;;
    qat8) row qat8 --method qat --bits 8 --epochs "$qat_epochs" ;;
    qat4) row qat4 --method qat --bits 4 --epochs "$qat_epochs" ;;
    qat1) row qat1 --method qat --bits 1 --epochs "$qat_epochs" ;; # binary by QAT alone, beside ADMM's
    admm1) row admm1 --method admm --bits 1 --progressive --admm-epochs "$admm_epochs" --finetune "$finetune" ;;
    # k-means rows (16 and 4 centroids per layer) go here: the weight-sharing work of issue 7
    # adds them with the same row() helper once `pare` can share weights.
    *) echo "bench-quant: unknown row $r" >&2 ;;
    esac
done
/usr/bin/python3 - "$log" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
flt = next((r for r in rows if r.get("tag") == "float"), None)
print("\n| model | weights / activations | test accuracy | vs float | file bytes |")
print("| --- | --- | --- | --- | --- |")
for r in rows:
    if r.get("failed"):
        print(f"| {r['tag']} | failed | | | |")
        continue
    wa = "float32" if r["method"] == "float" else f"{r['bits']}-bit / {r['act_bits']}-bit"
    d = "" if not flt or r is flt else f"{100 * (r['acc'] - flt['acc']):+.2f}"
    print(f"| {r['tag']} | {wa} | {100 * r['acc']:.2f}% | {d} | {r['bytes']:,} |")
EOF
