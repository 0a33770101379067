"""Peak host memory of the whole ``Predictor.predict_image`` pipeline on a large CT, in a fresh process.

What a user runs: an int16 CT image in Hounsfield units (here synthetic, 512x512xZ at 1 mm) ->
reorientation/resampling to the model grid -> normalisation -> tiled prediction with a 125-class
network -> labels on the input grid. The network is tiny (widths 4) so the run takes minutes on
a CPU; the memory that scales with the volume (images, padded input, slab buffer, labels) is the
same as for the paper network apart from the feature buffer's channel count (5 here, 33 for the
paper's D), which the script also prints.

    python benchmarks/bench_memory.py --slices 600            # the issue's 512x512x600 case
    python benchmarks/bench_memory.py --slices 300 --device cuda
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch


def synthetic_ct(slices: int, size: int = 512):
    """int16 CT: an elliptic body of soft tissue with three bony rods, air outside, 1 mm voxels."""
    import SimpleITK as sitk

    yy, xx = np.ogrid[:size, :size]
    body = ((yy - size / 2) / (0.35 * size)) ** 2 + ((xx - size / 2) / (0.45 * size)) ** 2 < 1
    slab = np.where(body, 40, -1000).astype(np.int16)
    for cx in (0.3, 0.5, 0.7):
        slab[((yy - 0.6 * size) ** 2 + (xx - cx * size) ** 2) < (0.03 * size) ** 2] = 900
    image = sitk.GetImageFromArray(np.broadcast_to(slab, (slices, size, size)).copy())
    image.SetSpacing((1.0, 1.0, 1.0))
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--record", default="", help="append the result as a JSON line")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sneakynet.infer import Predictor
    from sneakynet.models import NetConfig, build_network

    torch.manual_seed(0)
    model = build_network(NetConfig("D", 1, 64, widths=(4, 4, 4, 4, 4))).eval()
    predictor = Predictor.from_model(model, (1.0, 1.0, 1.0), device=args.device, log=lambda m: None)
    image = synthetic_ct(args.slices)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # torch + the input CT
    t0 = time.perf_counter()
    prediction = predictor.segment(image)
    seconds = time.perf_counter() - t0
    assert prediction.labels.GetSize() == image.GetSize()
    result = {"slices": args.slices, "device": args.device, "seconds": seconds, "tiles": prediction.stats.tiles,
              "parts": prediction.stats.parts, "feature_channels": model.head.in_channels + 1,
              "rss_before_mb": baseline_mb, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if args.device.startswith("cuda"):
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(result))
    print(f"512x512x{args.slices}: peak RSS {result['peak_rss_mb'] / 1024:.2f} GiB "
          f"({result['peak_rss_mb'] * 2**20 / 1e9:.2f} GB), of which {baseline_mb / 1024:.2f} GiB before predicting "
          f"(torch, the int16 CT); {seconds:.0f} s, {result['tiles']} tiles")
    if args.record:
        with open(args.record, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
