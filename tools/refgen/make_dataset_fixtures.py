#!/usr/bin/env python3
"""Builds the small Cityscapes and ADE20K trees of Tests/Fixtures/datasets/ and the tensors that
NVlabs' own dataset classes make of them (Tests/Fixtures/datasets/*_expected.safetensors).

    python3 tools/refgen/make_dataset_fixtures.py --nvlabs /path/to/NVlabs/SPADE [--out Tests/Fixtures/datasets]

NVlabs' code is imported from the checkout given on the command line and is not part of this
repository. Needs torch, torchvision, pillow, numpy, safetensors and dill (Tests/Fixtures/README.md).
The trees are deterministic (fixed seeds); the tensors are whatever NVlabs' classes return.
"""
import argparse
import json
import os
import random
import shutil
import sys
import types
from argparse import Namespace

import numpy as np
from PIL import Image


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def blocky_labels(rng, h, w, values, blocks=4):
    """A label map of rectangles (so that resizing keeps regions, and edges exist)."""
    out = np.full((h, w), values[0], dtype=np.uint8)
    for _ in range(blocks):
        y0, x0 = rng.randint(0, h - 2), rng.randint(0, w - 2)
        y1, x1 = rng.randint(y0 + 1, h + 1), rng.randint(x0 + 1, w + 1)
        out[y0:y1, x0:x1] = values[rng.randint(0, len(values))]
    return out


def photo(rng, h, w):
    """A smooth colour gradient plus noise, so bicubic resizing has something to do."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / w, y * 255.0 / h, (x + y) * 127.0 / (w + h)], axis=-1)
    return np.clip(base + rng.randint(-40, 41, size=(h, w, 3)), 0, 255).astype(np.uint8)


def build_cityscapes(root):
    """gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_{labelIds,instanceIds,color}.png and
    _polygons.json, leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png; a stray
    README in leftImg8bit and the colour and polygon files, which NVlabs ignores; odd names
    (unpadded numbers that sort naturally, a hyphenated city)."""
    rng = np.random.RandomState(20)
    samples = {
        "train": [("aachen", "aachen_000000_000019", (40, 20)), ("aachen", "aachen_000000_000101", (40, 20)),
                  ("bad-honnef", "bad-honnef_2_9", (48, 24)), ("bad-honnef", "bad-honnef_2_10", (40, 20)),
                  ("zurich", "zurich_000121_000019", (36, 18))],
        "val": [("frankfurt", "frankfurt_000000_000294", (40, 20)), ("frankfurt", "frankfurt_000001_000058", (44, 22)),
                ("lindau", "lindau_000000_000019", (40, 20))],
    }
    for split, items in samples.items():
        for city, stem, (w, h) in items:
            gt = os.path.join(root, "gtFine", split, city)
            labels = blocky_labels(rng, h, w, [7, 8, 11, 17, 21, 23, 24, 26, 33, 0])
            write_png(os.path.join(gt, stem + "_gtFine_labelIds.png"), labels)
            # 16-bit instance ids: stuff = class id, things = class * 1000 + k (33xxx > 32767).
            inst = labels.astype(np.uint16)
            things = blocky_labels(rng, h, w, [0, 1, 2], blocks=3).astype(np.uint16)
            mask = things > 0
            inst[mask] = np.where(labels[mask] >= 24, labels[mask].astype(np.uint16) * 1000 + things[mask], labels[mask])
            inst[:2, :3] = 33001
            write_png(os.path.join(gt, stem + "_gtFine_instanceIds.png"), inst)
            write_png(os.path.join(gt, stem + "_gtFine_color.png"), np.full((h, w, 3), 128, dtype=np.uint8))
            with open(os.path.join(gt, stem + "_gtFine_polygons.json"), "w") as f:
                f.write('{"imgHeight": %d, "imgWidth": %d, "objects": []}\n' % (h, w))
            write_png(os.path.join(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"), photo(rng, h, w))
    with open(os.path.join(root, "leftImg8bit", "train", "README.txt"), "w") as f:
        f.write("stray file: not an image, ignored by NVlabs and spade-dist\n")


def build_ade20k(root):
    """ADEChallengeData2016: images/{training,validation}/ADE_{train,val}_*.jpg and
    annotations/.../*.png (0 = other, 1...150 = classes; one validation map has 255 pixels);
    stray objectInfo150.txt, sceneCategories.txt and a .jpeg that NVlabs' filter ignores;
    an unpadded name that sorts naturally."""
    rng = np.random.RandomState(150)
    samples = {
        ("training", "train"): [("ADE_train_00000001", (30, 22)), ("ADE_train_2", (26, 34)),
                                ("ADE_train_00000010", (32, 24)), ("ADE_train_00000011", (28, 28))],
        ("validation", "val"): [("ADE_val_00000001", (24, 20)), ("ADE_val_00000002", (20, 30))],
    }
    for (folder, split), items in samples.items():
        for stem, (w, h) in items:
            labels = blocky_labels(rng, h, w, [0, 1, 3, 12, 77, 149, 150], blocks=5)
            if stem == "ADE_val_00000002":
                labels[0:3, 0:4] = 255
            write_png(os.path.join(root, "annotations", folder, stem + ".png"), labels)
            path = os.path.join(root, "images", folder, stem + ".jpg")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Image.fromarray(photo(rng, h, w)).save(path, quality=90)
    Image.fromarray(photo(rng, 16, 16)).save(os.path.join(root, "images", "training", "ADE_train_00000099.jpeg"))
    for name in ["objectInfo150.txt", "sceneCategories.txt"]:
        with open(os.path.join(root, name), "w") as f:
            f.write("stray file: ignored\n")


def import_nvlabs(path):
    sys.path.insert(0, path)
    # torchvision's PyPI wheel links CUDA for its C ops (nms, roi_align, ...); NVlabs' data code
    # uses only its PIL transforms, so the ops' registration is skipped instead of installing CUDA.
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    import torch
    import data.ade20k_dataset
    import data.cityscapes_dataset
    import data.pix2pix_dataset
    # Only Pix2PixModel.preprocess_input and get_edges are used: the networks package (which
    # needs NVlabs' sync_batchnorm submodule) is not imported.
    import models
    sys.modules["models.networks"] = models.networks = types.ModuleType("models.networks")
    import models.pix2pix_model
    import util.util
    return torch, data, models.pix2pix_model.Pix2PixModel, util.util


def run_variant(nv, dataset_class, opt, rel_root, tensors, meta, name, store_shift=False, paths_only=False):
    """Records what NVlabs' dataset class makes of each sample of the tree: the file triples in
    order (metadata), label ids (after test.py's .long()), instance ids, edges, the normalised
    image, the random crop/flip draws, at test time the first sample's one-hot semantics
    (preprocess_input; one sample, for size), and at test time the colourised label test.py saves."""
    torch, data, Pix2PixModel, util = nv
    recorded = []
    original_get_params = data.pix2pix_dataset.get_params

    def recording_get_params(o, size):
        params = original_get_params(o, size)
        recorded.append(params)
        return params

    data.pix2pix_dataset.get_params = recording_get_params
    if store_shift:
        # NVlabs' ADE20KDataset.postprocess, with its result stored (what it intends).
        def postprocess(self, input_dict):
            label = input_dict["label"]
            label = label - 1
            label[label == -1] = self.opt.label_nc
            input_dict["label"] = label
        dataset_class.postprocess = postprocess
    dataset = dataset_class()
    dataset.initialize(opt)
    random.seed(3)   # a seed whose draws flip some samples and not others
    model = types.SimpleNamespace(opt=opt, use_gpu=lambda: False, FloatTensor=torch.FloatTensor,
                                  ByteTensor=torch.ByteTensor)
    model.get_edges = lambda t: Pix2PixModel.get_edges(model, t)
    rel = lambda p: os.path.relpath(p, rel_root)
    paths = []
    for i in range(len(dataset)):
        recorded.clear()
        item = dataset[i]
        params = recorded[0]
        inst_path = dataset.instance_paths[i] if not opt.no_instance else None
        paths.append([rel(dataset.label_paths[i]), rel(dataset.image_paths[i]), rel(inst_path) if inst_path else None])
        batch = {"label": item["label"].unsqueeze(0).clone(), "image": item["image"].unsqueeze(0),
                 "instance": item["instance"].unsqueeze(0) if not opt.no_instance else item["instance"]}
        semantics, _ = Pix2PixModel.preprocess_input(model, batch)
        if paths_only:
            continue
        prefix = "%s.%d." % (name, i)
        tensors[prefix + "label"] = batch["label"][0, 0].numpy().astype(np.int32)
        tensors[prefix + "image"] = item["image"].numpy().astype(np.float32)
        if i == 0 and not opt.isTrain:
            assert torch.equal(semantics, semantics.round()), "one-hot values are 0 or 1"
            tensors[prefix + "semantics"] = semantics[0].numpy().astype(np.uint8)
        tensors[prefix + "params"] = np.array([params["crop_pos"][0], params["crop_pos"][1], int(params["flip"])], dtype=np.int32)
        if not opt.no_instance:
            tensors[prefix + "instance"] = item["instance"][0].long().numpy().astype(np.int32)
            tensors[prefix + "edges"] = model.get_edges(batch["instance"])[0, 0].numpy().astype(np.uint8)
        if not opt.isTrain:
            # What test.py saves as images/input_label/<name>.png (Visualizer.convert_visuals_to_numpy).
            tensors[prefix + "colorized"] = util.tensor2label(item["label"], opt.label_nc + 2).astype(np.uint8)
    data.pix2pix_dataset.get_params = original_get_params
    meta[name] = {"options": {k: v for k, v in vars(opt).items() if isinstance(v, (int, float, str, bool))},
                  "paths": paths}


# The options whose defaults a dataset mode sets (modify_commandline_options) and spade-dist copies.
MODE_OPTIONS = ["label_nc", "contain_dontcare_label", "no_instance", "preprocess_mode", "load_size", "crop_size",
                "aspect_ratio", "num_upsampling_layers", "batchSize"]


def mode_defaults(dataset_class, mode):
    """The options NVlabs' train.py and test.py end up with for `--dataset_mode mode --dataroot x`:
    the base/train/test options, then the dataset class's modify_commandline_options. The generator
    network's options (models/networks, not imported) are represented by num_upsampling_layers,
    which SPADEGenerator declares with default 'normal' (Cityscapes checks that it exists)."""
    from options.test_options import TestOptions
    from options.train_options import TrainOptions
    out = {}
    for phase, options_class, is_train in [("train", TrainOptions, True), ("test", TestOptions, False)]:
        parser = argparse.ArgumentParser()
        parser = options_class().initialize(parser)
        parser.add_argument("--num_upsampling_layers", default="normal")
        parser = dataset_class.modify_commandline_options(parser, is_train)
        opt = parser.parse_args(["--dataset_mode", mode, "--dataroot", "x"])
        out[phase] = {k: getattr(opt, k) for k in MODE_OPTIONS}
    return out


def save(tensors, path, meta):
    """safetensors writes an array's memory as is: make every array C-contiguous first."""
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata={"meta": json.dumps(meta)})


def options(**kw):
    base = dict(phase="train", isTrain=True, no_flip=False, no_instance=False, no_pairing_check=False,
                max_dataset_size=sys.maxsize, contain_dontcare_label=False, aspect_ratio=1.0,
                cache_filelist_read=False, cache_filelist_write=False)
    base.update(kw)
    return Namespace(**base)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nvlabs", required=True, help="a checkout of github.com/NVlabs/SPADE")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "Tests", "Fixtures", "datasets"))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    city_root, ade_root = os.path.join(out, "cityscapes"), os.path.join(out, "ADEChallengeData2016")
    for d in (city_root, ade_root):
        shutil.rmtree(d, ignore_errors=True)
    build_cityscapes(city_root)
    build_ade20k(ade_root)

    nv = import_nvlabs(os.path.abspath(args.nvlabs))
    torch, data, _, util = nv
    tensors, meta = {}, {}
    city = dict(dataroot=city_root, dataset_mode="cityscapes", preprocess_mode="fixed", load_size=32, crop_size=32,
                aspect_ratio=2.0, label_nc=35)
    CityscapesDataset = data.cityscapes_dataset.CityscapesDataset
    run_variant(nv, CityscapesDataset, options(**city), out, tensors, meta, "train")
    run_variant(nv, CityscapesDataset, options(**city, phase="test", isTrain=False, no_flip=True), out, tensors, meta, "test")
    run_variant(nv, CityscapesDataset, options(**city, max_dataset_size=2), out, tensors, meta, "train_max2", paths_only=True)
    meta["defaults"] = mode_defaults(CityscapesDataset, "cityscapes")
    save(tensors, os.path.join(out, "cityscapes_expected.safetensors"), meta)

    tensors, meta = {}, {}
    ade = dict(dataroot=ade_root, dataset_mode="ade20k", preprocess_mode="resize_and_crop", crop_size=16, label_nc=150,
               contain_dontcare_label=True, no_instance=True)
    ADE20KDataset = data.ade20k_dataset.ADE20KDataset
    run_variant(nv, ADE20KDataset, options(**ade, load_size=24), out, tensors, meta, "train")
    run_variant(nv, ADE20KDataset, options(**ade, load_size=16, phase="test", isTrain=False, no_flip=True), out, tensors, meta, "test")
    run_variant(nv, ADE20KDataset, options(**ade, load_size=24), out, tensors, meta, "train_shift", store_shift=True)
    meta["defaults"] = mode_defaults(ADE20KDataset, "ade20k")
    save(tensors, os.path.join(out, "ade20k_expected.safetensors"), meta)

    # NVlabs' util.tensor2im on values around and beyond [-1, 1]: how generated images become bytes.
    values = torch.linspace(-1.1, 1.1, 3 * 4 * 61).reshape(3, 4, 61)
    save({"input": values.numpy(), "output": util.tensor2im(values).astype(np.uint8)},
         os.path.join(out, "tensor2im_expected.safetensors"), {"torch": torch.__version__, "PIL": Image.__version__})


if __name__ == "__main__":
    main()
