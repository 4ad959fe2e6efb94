#!/usr/bin/env python3
"""Make the built-in data subset in the repository's ``data/`` folder.

Reads the full digit sets from a data directory and writes a small, reproducible
subset next to this script's repository (``<repo>/data``), in the same formats:

* ``mnist/train-images-idx3-ubyte.gz``, ``mnist/train-labels-idx1-ubyte.gz``:
  10,000 of the 60,000 MNIST training digits, drawn with ``random.Random(2018)``,
  in the random order drawn, so that the first N of them (a pipeline's ``limit = N``,
  e.g. the 2,000 of the domain-adaptation protocol) are a uniform random sample too;
* ``mnist/t10k-images-idx3-ubyte.gz``, ``mnist/t10k-labels-idx1-ubyte.gz``:
  the full 10,000-digit test set (copied byte for byte);
* ``usps/zip.train.gz``: 1,800 of the 7,291 USPS training lines, drawn with
  ``random.Random(2018)``, kept in their original order, lines unchanged;
* ``usps/zip.test.gz``: the full 2,007-line test file (copied byte for byte).

The input directory must hold ``mnist/`` with the four original gzip IDX files and
``usps/`` with ``zip.train.gz`` and ``zip.test.gz``. New files are written with gzip
level 9, no file name and mtime 0, so running the script twice gives identical bytes.
Python 3 standard library only.

Usage::

    python3 tools/make_builtin_data.py /work/shared/data [--out data]

It prints what it wrote with sizes, class counts and SHA-256 sums. ``data/README.md``
documents the result (counts, command and licences); it is not written by this script.
"""

import argparse
import gzip
import hashlib
import os
import random
import shutil
import struct
import sys

SEED = 2018
MNIST_TRAIN_KEEP = 10000
USPS_TRAIN_KEEP = 1800


def read_idx(path):
    """Returns (dims, data bytes) of a gzip IDX file of unsigned bytes."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    n = raw[3]
    dims = struct.unpack(">" + "I" * n, raw[4 : 4 + 4 * n])
    data = raw[4 + 4 * n :]
    size = 1
    for d in dims:
        size *= d
    if len(data) != size:
        sys.exit(f"{path}: expected {size} bytes of data, found {len(data)}")
    return dims, data


def write_gz(path, payload):
    """Writes bytes gzip compressed, reproducibly (no name, mtime 0)."""
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(payload)


def idx_bytes(dims, data):
    return bytes([0, 0, 0x08, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + data


def sample(n, keep, ordered=True):
    """`keep` of range(n) from a fixed seed: sorted, or in the (random) order drawn."""
    drawn = random.Random(SEED).sample(range(n), keep)
    return sorted(drawn) if ordered else drawn


def class_counts(labels):
    counts = [0] * 10
    for label in labels:
        counts[label] += 1
    return counts


def make_mnist(src, out):
    images_dims, images = read_idx(os.path.join(src, "mnist", "train-images-idx3-ubyte.gz"))
    labels_dims, labels = read_idx(os.path.join(src, "mnist", "train-labels-idx1-ubyte.gz"))
    n, rows, cols = images_dims
    if labels_dims != (n,):
        sys.exit(f"MNIST train: {n} images but labels of shape {labels_dims}")
    keep = sample(n, MNIST_TRAIN_KEEP, ordered=False)
    size = rows * cols
    sub_images = b"".join(images[i * size : (i + 1) * size] for i in keep)
    sub_labels = bytes(labels[i] for i in keep)
    write_gz(
        os.path.join(out, "mnist", "train-images-idx3-ubyte.gz"),
        idx_bytes((len(keep), rows, cols), sub_images),
    )
    write_gz(
        os.path.join(out, "mnist", "train-labels-idx1-ubyte.gz"),
        idx_bytes((len(keep),), sub_labels),
    )
    print(f"mnist train: {len(keep)} of {n}, classes {class_counts(sub_labels)}")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copyfile(os.path.join(src, "mnist", name), os.path.join(out, "mnist", name))
    _, test_labels = read_idx(os.path.join(out, "mnist", "t10k-labels-idx1-ubyte.gz"))
    print(f"mnist test: {len(test_labels)} (copy), classes {class_counts(test_labels)}")


def make_usps(src, out):
    with gzip.open(os.path.join(src, "usps", "zip.train.gz"), "rb") as f:
        lines = [line for line in f.read().splitlines(keepends=True) if line.strip()]
    keep = sample(len(lines), USPS_TRAIN_KEEP)
    sub = [lines[i] for i in keep]
    if not sub[-1].endswith(b"\n"):
        sub[-1] += b"\n"
    write_gz(os.path.join(out, "usps", "zip.train.gz"), b"".join(sub))
    labels = [int(float(line.split()[0])) for line in sub]
    print(f"usps train: {len(keep)} of {len(lines)}, classes {class_counts(labels)}")
    shutil.copyfile(os.path.join(src, "usps", "zip.test.gz"), os.path.join(out, "usps", "zip.test.gz"))
    with gzip.open(os.path.join(out, "usps", "zip.test.gz"), "rb") as f:
        test_labels = [int(float(line.split()[0])) for line in f.read().splitlines() if line.strip()]
    print(f"usps test: {len(test_labels)} (copy), classes {class_counts(test_labels)}")


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="data directory with mnist/ and usps/ (read only)")
    parser.add_argument("--out", default=os.path.join(repo, "data"), help="output folder (default: <repo>/data)")
    args = parser.parse_args()
    if os.path.realpath(args.source) == os.path.realpath(args.out):
        sys.exit("source and output are the same folder")
    for sub in ("mnist", "usps"):
        os.makedirs(os.path.join(args.out, sub), exist_ok=True)
    make_mnist(args.source, args.out)
    make_usps(args.source, args.out)
    total = 0
    for sub in ("mnist", "usps"):
        for name in sorted(os.listdir(os.path.join(args.out, sub))):
            path = os.path.join(args.out, sub, name)
            with open(path, "rb") as f:
                payload = f.read()
            total += len(payload)
            print(f"{hashlib.sha256(payload).hexdigest()}  {sub}/{name}  {len(payload)} bytes")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    main()
