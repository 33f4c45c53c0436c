#!/usr/bin/env python3
"""Times PyTorch's training iteration of the reference SPADE (spade_ref.canonical_iteration: the
same model and loop as spade-dist) on synthetic data, and prints {"seconds": [...]} as JSON.

  time_iteration.py --crop 64 --ngf 16 --ndf 16 --hidden 128 --label-nc 8 --batch 2 \
      --iterations 8 --warmup 2 --threads 2

spade_ref.py is a copy of the project's PyTorch reference (the fixtures' generator), so the
benchmark needs nothing outside this repository but torch and numpy.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spade_ref as R  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    for name, default in (("crop", 64), ("ngf", 16), ("ndf", 16), ("hidden", 128), ("label-nc", 8),
                          ("batch", 2), ("iterations", 8), ("warmup", 2), ("threads", 2)):
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = R.SpadeConfig(label_nc=a.label_nc, crop_size=a.crop, ngf=a.ngf, ndf=a.ndf, spade_hidden=a.hidden)
    G, D = R.SPADEGenerator(cfg), R.MultiscaleDiscriminator(cfg)
    R.init_state(G, 1)
    R.init_state(D, 2)
    opt_G, opt_D = R.make_optimizers(G, D, cfg)
    h, w = cfg.image_h, cfg.image_w
    # Blocky label maps like spade-dist's synthetic scenes; the timing does not depend on content.
    labels = torch.randint(0, a.label_nc, (a.batch, 1, h // 8, w // 8))
    labels = torch.nn.functional.interpolate(labels.float(), size=(h, w), mode="nearest").long()
    semantics = torch.zeros(a.batch, cfg.semantic_nc, h, w).scatter_(1, labels, 1.0)
    image = torch.rand(a.batch, 3, h, w) * 2 - 1
    seconds = []
    for _ in range(a.warmup + a.iterations):
        t0 = time.perf_counter()
        R.canonical_iteration(G, D, opt_G, opt_D, semantics, image, cfg)
        seconds.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": seconds[a.warmup:], "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "config": vars(a)}))


if __name__ == "__main__":
    main()
