"""Execute the notebooks top to bottom and save them with their outputs (full MNIST, full runs).

    python scripts/execute_notebooks.py [NAME ...] [--data-dir ../shared/data/mnist] [--smoke] [--out DIR]

Each notebook runs in a fresh kernel from the notebooks/ folder. Its metadata records a hash of its
code cells ("mnistjax": {"code_sha256": ...}), so the tests can tell a notebook whose code changed
since its outputs were made. ``--smoke`` runs them the way the tests do (the embedded sample, few
epochs); ``--out DIR`` writes there instead of over the committed notebooks.
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from mnistjax import files

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_BYTES = 2_000_000


def code_sha256(nb) -> str:
    """The hash of a notebook's code cells, in order: what its outputs were made from."""
    return hashlib.sha256("\n\0".join(c.source for c in nb.cells if c.cell_type == "code").encode()).hexdigest()


def execute(path: Path, out: Path, timeout: int = 1800) -> float:
    nb = nbformat.read(path, as_version=4)
    t = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t
    nb.metadata["mnistjax"] = {"code_sha256": code_sha256(nb)}
    nb.metadata.pop("widgets", None)  # progress bars: their text is in the outputs, their widget state is not needed
    text = nbformat.writes(nb).rstrip("\n") + "\n"  # as nbformat.write ends it
    files.atomic_write(out, text.encode())  # an interrupted run leaves the committed notebook whole
    size = out.stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{out}: {size:,} bytes; expected at most {MAX_BYTES:,}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="notebooks to run (default: all), e.g. 03_training_a_classifier")
    p.add_argument("--data-dir", default="../shared/data/mnist",
                   help="the full MNIST files, for the kernels (they read $MNISTJAX_DATA; default ../shared/data/mnist)")
    p.add_argument("--smoke", action="store_true", help="run as the tests do: the embedded sample, few epochs")
    p.add_argument("--out", metavar="DIR", help="write the executed notebooks here (default: over the committed ones)")
    args = p.parse_args()
    if args.smoke:
        os.environ["MNISTJAX_SMOKE"] = "1"
    else:
        os.environ["MNISTJAX_DATA"] = str(Path(args.data_dir).resolve())  # full MNIST, never the fallback sample
    paths = [NOTEBOOKS / f"{n}.ipynb" for n in args.names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        out = Path(args.out) / path.name if args.out else path
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = execute(path, out)
        print(f"{path.stem}: {seconds:.0f} s, {out.stat().st_size / 1e6:.2f} MB -> {out}", flush=True)


if __name__ == "__main__":
    main()
