#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/ from the project's
test data (Tests/Fixtures/tiny_data, configs/) plus small hand-made variants that reach the
rarer paths: PNG bit depths 1/2/4/16, palettes, gray+alpha, interlacing; baseline,
progressive and gray JPEG (made with ImageMagick's `convert` when it is installed);
safetensors files with and without spade-dist metadata. Deterministic; re-run after
changing it and commit the result."""
import json, os, pathlib, shutil, struct, subprocess, zlib

root = pathlib.Path(__file__).resolve().parent.parent
seeds = root / "fuzz" / "seeds"
tiny = root / "Tests" / "Fixtures" / "tiny_data"


def out(target, name, data):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def png(width, height, bit_depth, color_type, rows, palette=None, interlace=0):
    """A PNG from raw filtered-free rows (filter byte 0 added here)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    body = chunk(b"IHDR", ihdr)
    if palette:
        body += chunk(b"PLTE", bytes(palette))
    body += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def packed_rows(width, height, depth, value):
    """Rows of `depth`-bit samples, sample (x, y) = value(x, y)."""
    rows = []
    for y in range(height):
        bits = "".join(format(value(x, y) & ((1 << depth) - 1), "0%db" % depth) for x in range(width))
        bits += "0" * (-len(bits) % 8)
        rows.append(bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))
    return rows


def images():
    """(name, bytes) of small label-map and photo PNGs of every colour type and bit depth."""
    w, h = 16, 12
    yield "gray1.png", png(w, h, 1, 0, packed_rows(w, h, 1, lambda x, y: (x + y) % 2))
    yield "gray2.png", png(w, h, 2, 0, packed_rows(w, h, 2, lambda x, y: x % 4))
    yield "gray4.png", png(w, h, 4, 0, packed_rows(w, h, 4, lambda x, y: (x * y) % 16))
    yield "gray8.png", png(w, h, 8, 0, packed_rows(w, h, 8, lambda x, y: (x // 4 + y // 4) % 6))
    yield "gray16-ids.png", png(w, h, 16, 0, [b"".join(struct.pack(">H", 300 * (x // 4) + y) for x in range(w)) for y in range(h)])
    pal = [c for i in range(6) for c in (40 * i, 255 - 40 * i, 17 * i)]
    yield "palette4.png", png(w, h, 4, 3, packed_rows(w, h, 4, lambda x, y: (x + y) % 6), palette=pal)
    yield "palette8-short.png", png(w, h, 8, 3, packed_rows(w, h, 8, lambda x, y: (x + 2 * y) % 9), palette=pal)
    yield "gray-alpha.png", png(w, h, 8, 4, [b"".join(bytes([x % 5, 255]) for x in range(w)) for _ in range(h)])
    yield "rgb8.png", png(w, h, 8, 2, [b"".join(bytes([x * 16, y * 20, 7]) for x in range(w)) for y in range(h)])
    yield "rgba16.png", png(4, 3, 16, 6, [b"".join(struct.pack(">HHHH", 1000 * x, 2000 * y, 3, 65535) for x in range(4)) for y in range(3)])
    yield "interlaced.png", png(w, h, 8, 0, packed_rows(w, h, 8, lambda x, y: x % 3), interlace=1)


def jpegs():
    """Baseline, progressive, gray and low-quality JPEGs of a 24x16 gradient (libjpeg-turbo's
    cjpeg, when installed: apt-get install libjpeg-turbo-progs)."""
    if not shutil.which("cjpeg"):
        return
    w, h = 24, 16
    ppm = b"P6 %d %d 255\n" % (w, h) + bytes(v for y in range(h) for x in range(w) for v in (10 * x, 15 * y, 128))
    pgm = b"P5 %d %d 255\n" % (w, h) + bytes((x * y) % 256 for y in range(h) for x in range(w))
    for name, image, args in [("baseline.jpg", ppm, []), ("progressive.jpg", ppm, ["-progressive"]),
                              ("gray.jpg", pgm, []), ("q10.jpg", ppm, ["-quality", "10"]),
                              ("restart.jpg", ppm, ["-restart", "1"])]:
        yield name, subprocess.run(["cjpeg"] + args, input=image, check=True, capture_output=True).stdout


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    if seeds.exists():
        shutil.rmtree(seeds)
    made = dict(images())
    made.update(jpegs())
    for sub in ["labels", "images"]:
        for p in sorted((tiny / sub).glob("*.png"))[:2]:
            made[f"tiny-{sub}-{p.name}"] = p.read_bytes()
    for name, data in made.items():
        out("image", name, data)
        # labelmap: label_nc byte, flag byte (don't-care, no_instance, rgb, preprocess mode, flip), then the file.
        for i, (nc, flags) in enumerate([(7, 0b00000010), (254, 0b00001001), (5, 0b00010110), (200, 0b10100000)]):
            out("labelmap", f"{i}-{name}", bytes([nc, flags]) + data)

    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    config = (root / "configs" / "tiny.yaml").read_text()
    meta = {"format": "spade-dist/1", "step": "6", "epoch": "1", "data_position": "1:4", "world_size": "2",
            "seed": "0", "skipped_steps": "0", "config": config}
    out("safetensors", "two-tensors.safetensors",
        safetensors({"netG.fc.weight": ("F32", [2, 2], f32(1, 2, 3, 4)), "netG.fc.bias": ("F32", [2], f32(0.5, -1))}))
    out("safetensors", "checkpoint-metadata.safetensors",
        safetensors({"optG.step": ("I64", [], struct.pack("<q", 6)), "netD.w": ("F64", [1, 3], struct.pack("<3d", 1, 2, 3)),
                     "x.u8": ("U8", [3], b"\x01\x02\x03"), "x.i32": ("I32", [0], b"")}, meta))
    out("safetensors", "empty.safetensors", safetensors({}))
    real = (root / "Tests" / "Fixtures" / "adam.safetensors").read_bytes()
    out("safetensors", "fixture-adam.safetensors", real)

    for p in sorted((root / "configs").glob("*.yaml")):
        out("config", p.name, p.read_bytes())
    out("config", "sets.yaml", b"ngf: 8\nlabel_encoding: rgb\ndataset_mode: custom\ndataroot: d\n--set\nlabel_nc=3\n"
        b"label_colors=[[0, 0, 0], [1, 2, 3], [255, 0, 9]]\nlr=1e-4\nno_TTUR=yes\n")
    out("config", "errors.yaml", b"ngff: 1\n- a\n")


if __name__ == "__main__":
    main()
