"""`mnistjax predict` on pictures as people have them: its time per image, and whether it sees them as
it sees the originals.

    python scripts/bench_predict.py [--data-dir ../shared/data/mnist] [--n 1000] [--model FILE]

Makes N photo-like PNGs from MNIST's test digits (scaled up 5–10×, every second one inverted, every
third RGB, placed off-centre on a larger canvas) in a temporary folder; trains the ``fast99`` recipe
and saves it unless ``--model`` names a saved model; then times the whole ``mnistjax predict`` command
on the folder and on one picture (start, imports, load and compile), and prints how often the
pictures' predictions agree with the originals'.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mnistjax import data, saved
from mnistjax.timing import command_seconds

CLI = [sys.executable, "-m", "mnistjax.cli"]


def photo_like(digit: np.ndarray, i: int) -> Image.Image:
    """MNIST digit i as a person might photograph it: bigger, somewhere on a page, either polarity."""
    s = 5 + i % 6
    big = np.asarray(Image.fromarray(digit).resize((28 * s, 28 * s), Image.Resampling.BILINEAR))
    canvas = np.zeros((28 * s + 80, 28 * s + 120), np.uint8)
    r, c = (i * 37) % 80, (i * 53) % 120
    canvas[r:r + big.shape[0], c:c + big.shape[1]] = big
    im = Image.fromarray(255 - canvas if i % 2 else canvas)
    return im.convert("RGB") if i % 3 == 0 else im


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--model", help="a saved model (default: train fast99 and save it in the temporary folder)")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        pics = Path(tmp) / "pictures"
        pics.mkdir()
        for i in range(args.n):
            photo_like(ds.test.images[i], i).save(pics / f"{i:05d}.png")
        model = args.model or str(Path(tmp) / "fast99.safetensors")
        if not args.model:
            subprocess.run(CLI + ["train", "--recipe", "fast99", "--data-dir", args.data_dir, "--save", model, "--json"],
                           capture_output=True, check=True)
        one, _ = command_seconds(CLI + ["predict", model, str(pics / "00000.png")])
        many, out = command_seconds(CLI + ["predict", model, str(pics), "--json"])
        m = saved.load_model(model)
    seen = np.array([m.spec.classes.index(r["class"]) for r in json.loads(out)["predictions"]])
    orig = saved.probabilities(m, data.as_float(ds.test.images[:args.n])).argmax(1)
    labels = ds.test.labels[:args.n]
    print(f"predict on {args.n:,} PNGs: {many:.2f} s for the command, {one:.2f} s for one picture, "
          f"≈ {(many - one) / (args.n - 1) * 1e3:.2f} ms per further picture")
    print(f"agreement with the originals' predictions {(seen == orig).mean():.4f}; accuracy on the pictures "
          f"{(seen == labels).mean():.4f}, on the originals {(orig == labels).mean():.4f}")

if __name__ == "__main__":
    main()
