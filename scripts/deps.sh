#!/bin/sh
# Installs the Debian packages pare needs (as root), or prints the apt-get line.
# Usage: scripts/deps.sh [--bench]   (--bench adds the peers used by bench/)
set -u
pkgs="gcc make pkg-config libopenblas-dev zlib1g-dev dataset-fashion-mnist"
# ONNX import/export and its conformance data
pkgs="$pkgs libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata"
# oracles of the ONNX tests: ONNX's checker, and PyTorch to export models and their outputs
pkgs="$pkgs python3-onnx python3-torch python3-torchvision"
if [ "${1:-}" = "--bench" ]; then
    pkgs="$pkgs hyperfine time"
fi
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all Debian packages present"
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $missing; } || {
        echo "deps: apt-get could not install:$missing" >&2
        exit 1
    }
    echo "deps: done"
else
    echo "deps: missing Debian packages; run as root:"
    echo "  apt-get install -y$missing"
    exit 1
fi
