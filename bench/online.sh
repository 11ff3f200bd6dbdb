#!/bin/sh
# make bench-online: online fine-tuning on drifting Fashion-MNIST streams
# (docs/ONLINE.md). A model is pretrained briefly on undistorted data, then
# each stream (rotation and contrast drift, two drift points each, a few
# thousand records) is served by the three policies: edgeol, immediate, never.
# Reports fine-tuning time and FLOPs, prequential and served accuracy, rounds,
# drifts; edgeol against immediate as ratios (same run, same thread count).
# usage: bench/online.sh PARE_BINARY
#   env: MODEL=lenet|fmnist-cnn THREADS=1 SEEDS="1 2 3" DRIFTS="rotate contrast"
#        LENGTH=4500 AT=1501,3001 REUSE=1 (keep the pretrained model)
set -eu
pare=$1
here=$(cd "$(dirname "$0")" && pwd)
out=$here/out/online
mkdir -p "$out"
model=${MODEL:-lenet}
threads=${THREADS:-1}
seeds=${SEEDS:-"1 2 3"}
drifts=${DRIFTS:-"rotate contrast"}
length=${LENGTH:-4500}
at=${AT:-1501,3001}
log=$out/results.jsonl
: > "$log"
echo "bench-online: $model, $threads thread(s), streams of $length samples with drifts at $at, seeds: $seeds"
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$out/$model.pare" ]; then
    echo "== pretraining $model on 20000 undistorted Fashion-MNIST images, 2 epochs"
    rm -f "$out/$model.pare.ckpt"
    "$pare" train --model "$model" --data fashion-mnist --epochs 2 --limit 20000 --no-test --quiet \
        --threads "$threads" --seed 1 --out "$out/$model.pare" --checkpoint "$out/$model.ckpt" > /dev/null
    rm -f "$out/$model.ckpt"
fi
for d in $drifts; do
    for s in $seeds; do
        "$pare" stream-sim --out "$out/$d-$s.stream" --drift "$d" --length "$length" --at "$at" --seed "$s" > /dev/null
        for p in never immediate edgeol; do
            echo "== $d stream, seed $s, policy $p"
            "$pare" online "$out/$model.pare" --stream "$out/$d-$s.stream" --policy "$p" --seed "$s" \
                --threads "$threads" --json > "$out/run.json"
            sed "s/^{/{\"bench\":\"online\",\"model\":\"$model\",\"drift\":\"$d\",\"seed\":$s,\"threads\":$threads,/" \
                "$out/run.json" >> "$log"
        done
        rm -f "$out/$d-$s.stream"
    done
done
rm -f "$out/run.json"
/usr/bin/python3 - "$log" <<'EOF' | tee "$out/table.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in rows:
    k = (r["drift"], r["policy"])
    if k not in keys:
        keys.append(k)
def mean(v):
    return statistics.mean(v) if v else float("nan")
agg = {}
for k in keys:
    rs = [r for r in rows if (r["drift"], r["policy"]) == k]
    agg[k] = {f: mean([r[f] for r in rs if r.get(f) is not None]) for f in
              ("finetune_seconds", "finetune_flops", "accuracy", "served_accuracy", "rounds", "forced_rounds",
               "drifts", "steps")}
    agg[k]["n"] = len(rs)
print()
print("means over %d seed(s); accuracy is prequential (each label predicted before training on it)" %
      max(a["n"] for a in agg.values()))
hdr = ("stream", "policy", "fine-tune s", "GFLOP", "rounds", "forced", "drifts", "accuracy", "served acc.")
lines = [hdr]
for (d, p) in keys:
    a = agg[(d, p)]
    lines.append((d, p, "%.2f" % a["finetune_seconds"], "%.1f" % (a["finetune_flops"] / 1e9), "%.1f" % a["rounds"],
                  "%.1f" % a["forced_rounds"], "%.1f" % a["drifts"], "%.2f%%" % (100 * a["accuracy"]),
                  "%.2f%%" % (100 * a["served_accuracy"])))
w = [max(len(l[i]) for l in lines) for i in range(len(hdr))]
for i, l in enumerate(lines):
    print("  ".join(c.ljust(w[j]) if j < 2 else c.rjust(w[j]) for j, c in enumerate(l)))
    if i == 0:
        print("  ".join("-" * x for x in w))
print()
print("edgeol vs immediate (target: >= 60% less fine-tuning time at equal or better average accuracy)")
for d in dict.fromkeys(k[0] for k in keys):
    e, i = agg.get((d, "edgeol")), agg.get((d, "immediate"))
    if not e or not i:
        continue
    ts = 1 - e["finetune_seconds"] / i["finetune_seconds"] if i["finetune_seconds"] > 0 else float("nan")
    fs = 1 - e["finetune_flops"] / i["finetune_flops"] if i["finetune_flops"] > 0 else float("nan")
    da = 100 * (e["accuracy"] - i["accuracy"])
    ok = ts >= 0.6 and da >= 0
    print("  %-9s time -%.1f%%, FLOPs -%.1f%%, accuracy %+.2f points: %s" %
          (d, 100 * ts, 100 * fs, da, "met" if ok else "not met"))
EOF
echo "bench-online: $log, $out/table.txt"
