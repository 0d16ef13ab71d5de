#!/usr/bin/env bash
# A short GPU check (< 5 minutes on one datacenter GPU): train one epoch on euro-kaa train/ with
# CUDA and mixed precision, then embed 10,000 crops on the GPU; prints images/s and writes
# bench/results/gpu_check.json.
#
# Usage: bench/gpu_check.sh [DATA_DIR]   (DATA_DIR holds euro-kaa/; default ../shared/data)
# Needs coinlens installed with a CUDA build of torch (pip install -e . in a venv with CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-../shared/data}"
PY="${PYTHON:-.venv/bin/python}"
HOME_DIR="$(mktemp -d)/gpu-home"
trap 'rm -rf "$(dirname "$HOME_DIR")"' EXIT

"$PY" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
"$PY" -m coinlens ingest "$DATA/euro-kaa/train" --home "$HOME_DIR" --json > /dev/null
START=$(date +%s.%N)
"$PY" -m coinlens train --home "$HOME_DIR" --epochs 1 --device cuda --json > "$HOME_DIR/train.json"
END=$(date +%s.%N)
HOME_DIR="$HOME_DIR" TRAIN_SECONDS="$(python3 -c "print($END - $START)")" "$PY" - <<'PY'
import json, os, sys, time
import numpy as np, torch
from coinlens.catalog import Home
from coinlens.identify.engine import catalogued_crops, current_model, load_crops

home = Home.open(os.environ["HOME_DIR"])
train = json.load(open(os.path.join(os.environ["HOME_DIR"], "train.json")))
model = current_model(home, device="cuda", onnx=False)
# the stored crops ingest made (any image format), as identification embeds them
crops = load_crops(home.store, catalogued_crops(home), model.embedder.input_size)
if not len(crops):
    sys.exit("gpu_check: the home holds no catalogued crops to embed (did ingest find images?)")
crops = np.concatenate([crops] * (10_000 // len(crops) + 1))[:10_000]
model.embedder.embed_arrays(crops[:256])  # warm-up
torch.cuda.synchronize()
started = time.perf_counter()
vectors = model.embedder.embed_arrays(crops)
torch.cuda.synchronize()
seconds = time.perf_counter() - started
report = {
    "device": torch.cuda.get_device_name(0),
    "train_one_epoch": {
        "images": train["images"],
        "train_seconds": train["train_seconds"],
        "images_per_second": round(train["images"] / train["train_seconds"], 1),
        "command_seconds": round(float(os.environ["TRAIN_SECONDS"]), 1),
    },
    "embed": {
        "images": len(vectors),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(vectors) / seconds, 1),
        "rotations_per_image": 4,
    },
}
print(json.dumps(report, indent=2))
os.makedirs("bench/results", exist_ok=True)
json.dump(report, open("bench/results/gpu_check.json", "w"), indent=2)
PY
