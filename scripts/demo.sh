#!/bin/sh
# The main job end to end: train fmnist-cnn on Fashion-MNIST for one epoch,
# evaluate it, write the model and its training curves, show its layers.
# usage: scripts/demo.sh PARE_BINARY OUT_DIR
set -eu
pare=$1
out=$2
mkdir -p "$out"
echo "== pare train: fmnist-cnn on Fashion-MNIST, 1 epoch"
"$pare" train --model fmnist-cnn --data fashion-mnist --epochs 1 \
    --out "$out/fmnist-cnn.pare" --plot "$out/curves.svg"
echo
echo "== pare eval"
"$pare" eval "$out/fmnist-cnn.pare" --data fashion-mnist
echo
echo "== pare info"
"$pare" info "$out/fmnist-cnn.pare"
echo
echo "demo: model in $out/fmnist-cnn.pare, training curves in $out/curves.svg"
