"""Prototype classification speed: the 10,000 MNIST test images against 10 mean images.

    python scripts/bench_baseline.py [--data-dir ../shared/data/mnist] [--repeats 5] [--json]

jit-compiled mnistjax vs a straightforward NumPy implementation, in the same process, same data:
images/s for each and the ratio; compile time reported on its own. Medians of --repeats runs.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from mnistjax import data
from mnistjax.timing import median_seconds
from mnistjax.distances import DISTANCES
from mnistjax.prototypes import fit_prototypes, nearest

NUMPY = {
    "l1": lambda x, p: np.abs(x - p).mean((1, 2)),
    "rmse": lambda x, p: np.sqrt(((x - p) ** 2).mean((1, 2))),
}


def numpy_nearest(x: np.ndarray, protos: np.ndarray, distance: str) -> np.ndarray:
    """The obvious NumPy code: one broadcast distance per prototype, then argmin."""
    return np.stack([NUMPY[distance](x, p) for p in protos], axis=1).argmin(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    x_train, y_train = data.as_float(ds.train.images), jnp.asarray(ds.train.labels)
    protos = fit_prototypes(x_train, y_train, jnp.arange(10))
    x = data.as_float(ds.test.images)
    x_np, protos_np = np.asarray(x), np.asarray(protos)
    rows = []
    for name, distance in (("l1", DISTANCES["l1"]), ("rmse", DISTANCES["rmse"])):
        t = time.perf_counter()
        compiled = jax.jit(nearest.__wrapped__, static_argnames="distance").lower(x, protos, distance=distance).compile()
        compile_s = time.perf_counter() - t
        ours = median_seconds(lambda: compiled(x, protos).block_until_ready(), args.repeats)
        ref = median_seconds(lambda: numpy_nearest(x_np, protos_np, name), args.repeats)
        assert (np.asarray(compiled(x, protos)) == numpy_nearest(x_np, protos_np, name)).mean() > 0.999
        rows.append({"distance": name, "images": len(x), "compile_seconds": compile_s, "jax_seconds": ours,
                     "numpy_seconds": ref, "jax_images_per_s": len(x) / ours, "numpy_images_per_s": len(x) / ref,
                     "speedup": ref / ours})
    if args.json:
        print(json.dumps({"device": str(jax.devices()[0]), "rows": rows}))
        return
    print(f"device: {jax.devices()[0]}; 10,000 test images x 10 prototypes; medians of {args.repeats}")
    print(f"{'distance':8} {'compile s':>10} {'jax img/s':>12} {'numpy img/s':>12} {'speedup':>8}")
    for r in rows:
        print(f"{r['distance']:8} {r['compile_seconds']:10.3f} {r['jax_images_per_s']:12,.0f} "
              f"{r['numpy_images_per_s']:12,.0f} {r['speedup']:7.1f}x")


if __name__ == "__main__":
    main()
