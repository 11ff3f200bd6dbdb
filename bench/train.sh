#!/bin/sh
# make bench-train: W0 (lenet, 10 epochs) and W1 (fmnist-cnn, 3 epochs) with the
# recipe of WORKLOADS.md, pare and PyTorch (Debian's python3-torch) alternately
# in the same run, same thread count; prints images/s, wall time per epoch,
# peak RSS and test accuracy for both, and the ratios.
# usage: bench/train.sh PARE_BINARY   (env: THREADS=2 REPEAT=1 MODELS="lenet fmnist-cnn")
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out
mkdir -p "$out"
threads=${THREADS:-2}
repeat=${REPEAT:-1}
models=${MODELS:-"lenet fmnist-cnn"}
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
    "$here/../scripts/deps.sh" --bench || { echo "bench-train: PyTorch (python3-torch) is needed for the peer" >&2; exit 1; }
fi
[ -x /usr/bin/time ] || "$here/../scripts/deps.sh" --bench
log=$out/train.jsonl
: > "$log"
echo "bench-train: $models, $threads threads, $repeat repeat(s); OPENBLAS_CORETYPE unset for both (see WORKLOADS.md)"
for r in $(seq 1 "$repeat"); do
    for m in $models; do
        case $m in lenet) ep=10 ;; *) ep=3 ;; esac
        echo "== run $r: pare $m, $ep epochs"
        env -u OPENBLAS_CORETYPE /usr/bin/time -f '{"engine":"pare","event":"rss","max_rss_kib":%M}' -o "$out/time.txt" \
            "$pare" train --model "$m" --data fashion-mnist --epochs "$ep" --threads "$threads" \
            --out "$out/$m.pare" --checkpoint "$out/$m.ckpt" --json --quiet > "$out/run.jsonl"
        sed "s/^{/{\"engine\":\"pare\",\"model\":\"$m\",\"run\":$r,/" "$out/run.jsonl" >> "$log"
        sed "s/^{/{\"model\":\"$m\",\"run\":$r,/" "$out/time.txt" >> "$log"
        echo "== run $r: torch $m, $ep epochs"
        env -u OPENBLAS_CORETYPE /usr/bin/time -f '{"engine":"torch","event":"rss","max_rss_kib":%M}' -o "$out/time.txt" \
            /usr/bin/python3 "$here/peers/torch_train.py" "$m" "$ep" "$threads" > "$out/run.jsonl"
        sed "s/^{/{\"run\":$r,/" "$out/run.jsonl" >> "$log"
        sed "s/^{/{\"model\":\"$m\",\"run\":$r,/" "$out/time.txt" >> "$log"
    done
done
/usr/bin/python3 "$here/train_summary.py" "$log"
