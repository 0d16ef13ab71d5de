"""Identify throughput and peak memory on euro-kaa ``test/`` (1,539 crops, 150 px).

Runs, in one process on the same images:
- the PyTorch baseline of the recognition issue: untuned EfficientNet-Lite0 at 224 px, batch 32,
  eager PyTorch, one orientation (the 27-31 images/s reference);
- coinlens: decode, localise and crop, embed at the model's input size and rotations (trained
  models: 192 px, 2 rotations) in ONNX Runtime, exact search and scoring (keypoint verification
  where uncertain, and without it).

Prints and writes JSON (``bench/results/identify.json``). Usage:
``python bench/identify.py [--home HOME] [--data DIR] [--limit N]`` (HOME: use its current model
and references; default: the pretrained backbone with euro-kaa ``train/`` as references).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from coinlens.catalog import Home
from coinlens.identify.engine import Matcher, current_model, store_verifier, sync_index
from coinlens.model.network import CoinNet
from coinlens.model.transforms import crop_to_array, to_tensor
from coinlens.storage import atomic_write
from coinlens.vision import load_image
from coinlens.vision.cues import crop_cues
from coinlens.vision.localise import crop_coin, locate_coins
from common import bench_parser


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_images_per_second(paths: list[Path]) -> float:
    """Untuned Lite0, 224 px, batch 32, eager PyTorch: decode + resize + embed."""
    model = CoinNet(dim=None).eval()
    started = time.perf_counter()
    for start in range(0, len(paths), 32):
        batch = np.stack(
            [crop_to_array(load_image(p.read_bytes()).rgb, 224) for p in paths[start : start + 32]]
        )
        with torch.inference_mode():
            model(to_tensor(batch))
    return len(paths) / (time.perf_counter() - started)


def coinlens_images_per_second(
    paths: list[Path], model, matcher: Matcher, verify: bool
) -> tuple[float, int]:
    """decode + localise + crop + embed (ONNX, the model's rotations) + search + score + decide."""
    started = time.perf_counter()
    verified = 0
    for start in range(0, len(paths), 64):
        crops, keypoint_crops, framed = [], [], []
        for path in paths[start : start + 64]:
            image = load_image(path.read_bytes()).rgb
            layout = locate_coins(image)
            crop = crop_coin(image, layout.boxes[0], max_size=320)
            crops.append(crop_to_array(crop, model.embedder.input_size))
            keypoint_crops.append(np.asarray(crop))
            framed.append(layout.kind == "crop")
        vectors = model.embedder.embed_arrays(np.stack(crops))
        before = matcher.verifier.verified if matcher.verifier else 0
        matcher.match(
            vectors,
            [[i] for i in range(len(crops))],
            query_crop=(lambda row, kc=keypoint_crops: kc[row]) if verify else None,
            query_cues=crop_cues(np.stack(crops), framed),
        )
        verified += (matcher.verifier.verified if matcher.verifier else 0) - before
    return len(paths) / (time.perf_counter() - started), verified


def main() -> None:
    parser = bench_parser("identify", __doc__)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N test crops")
    args = parser.parse_args()
    test = args.data / "euro-kaa" / "test"
    if not test.is_dir():
        sys.exit(f"bench/identify.py: {test} not found (pass --data DIR)")
    paths = sorted(test.rglob("*.jpg"))[: args.limit or None]
    torch.set_num_threads(os.cpu_count() or 1)

    if args.home is None:
        import tempfile

        from coinlens.ingest import ingest_items, scan_folder

        args.home = Path(tempfile.mkdtemp()) / "home"
        home = Home.init(args.home)
        scan = scan_folder(args.data / "euro-kaa" / "train")
        ingest_items(scan.items, home.catalog, home.store, home.settings, target="bench")
    else:
        home = Home.open(args.home)
    with home:
        model = current_model(home)
        index = sync_index(home, model)
        matcher = Matcher(index, model.calibration, verifier=store_verifier(home))
        coinlens_images_per_second(paths[:64], model, matcher, False)  # warm-up
        results = {
            "benchmark": "identify euro-kaa/test crops",
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "torch_threads": torch.get_num_threads(),
            },
            "images": len(paths),
            "model_version": model.version.id,
            "references": len(index),
        }
        rss = peak_rss_mb()
        results["pytorch_baseline_224px_images_per_second"] = round(
            baseline_images_per_second(paths), 1
        )
        results["peak_rss_mb_after_baseline"] = round(max(rss, peak_rss_mb()), 1)
        speed, _ = coinlens_images_per_second(paths, model, matcher, verify=False)
        results["coinlens_images_per_second"] = round(speed, 1)
        speed, verified = coinlens_images_per_second(paths, model, matcher, verify=True)
        results["coinlens_with_verification_images_per_second"] = round(speed, 1)
        results["verified_share"] = round(verified / len(paths), 3)
        results["speedup_vs_baseline"] = round(
            results["coinlens_images_per_second"]
            / results["pytorch_baseline_224px_images_per_second"],
            2,
        )
        results["peak_rss_mb"] = round(peak_rss_mb(), 1)
    text = json.dumps(results, indent=2)
    print(text)
    atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    main()
