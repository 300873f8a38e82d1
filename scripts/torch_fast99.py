"""fast99 in PyTorch eager, as a PyTorch user writes it: the reference `scripts/bench.py` times us against.

    python scripts/torch_fast99.py [--data-dir ../shared/data/mnist] [--seed 0]

The same net as mnistjax's fast99 (conv 5x5/2 -> 24, BatchNorm, ReLU, conv 3x3 -> 32, max-pool 2,
BatchNorm, ReLU, 800 -> 256, ReLU, 256 -> 10), Adam lr 0.01 betas (0.7, 0.9), OneCycleLR without
momentum cycling, batch 192, one shuffled epoch over the whole training set as one tensor, then the
10,000 test images 500 at a time. Reads MNIST's four IDX files with numpy (pixels / 255, as ours) and
prints one JSON object: the seconds of its imports, of reading the data and of training (the epoch
and the evaluation, as ``fit`` counts them), and the test accuracy. Needs torch, the bench extra
(``pip install -e '.[bench]'``); imports nothing of mnistjax or JAX, so that a fresh process of it
is PyTorch's own cold start.
"""

import time

t_start = time.perf_counter()
import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

FILES = {"x": "{}-images-idx3-ubyte.gz", "y": "{}-labels-idx1-ubyte.gz"}


def read(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64) of ``train`` or ``t10k``."""
    raw = {k: gzip.decompress((folder / name.format(split)).read_bytes()) for k, name in FILES.items()}
    x = np.frombuffer(raw["x"], np.uint8, offset=16).reshape(-1, 1, 28, 28)
    y = np.frombuffer(raw["y"], np.uint8, offset=8)
    return torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(y.astype(np.int64))


def train(x, y, xv, yv, seed: int) -> dict:
    """One fast99 run on all cores: training seconds (the epoch and the evaluation) and test accuracy."""
    nn = torch.nn
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 24, 5, 2, bias=False), nn.BatchNorm2d(24), nn.ReLU(), nn.Conv2d(24, 32, 3, bias=False),
                        nn.MaxPool2d(2), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.Linear(800, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.7, 0.9))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=-(-len(x) // 192), cycle_momentum=False)
    t = time.perf_counter()
    for idx in torch.randperm(len(x)).split(192):
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():  # 500 images at a time, as fit's validation (faster than all 10,000 at once)
        accuracy = (torch.cat([net.eval()(chunk) for chunk in xv.split(500)]).argmax(1) == yv).float().mean().item()
    return {"seed": seed, "train_seconds": time.perf_counter() - t, "test_accuracy": accuracy}


def main() -> None:
    imports = time.perf_counter() - t_start
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t = time.perf_counter()
    (x, y), (xv, yv) = (read(Path(args.data_dir), split) for split in ("train", "t10k"))
    loaded = time.perf_counter() - t
    print(json.dumps({"torch": torch.__version__, "import_seconds": imports, "data_seconds": loaded,
                      **train(x, y, xv, yv, args.seed)}))


if __name__ == "__main__":
    main()
