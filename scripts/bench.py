"""Training speed on this machine: compiled mnistjax vs a straightforward JAX loop, against the matmul peak.

    python scripts/bench.py [--data-dir ../shared/data/mnist] [--repeats 3] [--only NAME ...] [--json OUT]

For each workload (pixel similarity 3v7; linear 20 epochs; simple_net 40 epochs; cnn 1 epoch on ten
digits): compile seconds, train seconds (median of --repeats), examples/s, achieved GFLOP/s and the
fraction of the float32 matmul peak measured in the same run, and the same training written the
obvious way (a Python loop over batches calling a jitted step) as the reference for the ratio.
FLOPs are XLA's own count (``cost_analysis``) of one compiled train step times the steps, plus the
validation forwards.
Then (``--only many``) eight simple_nets trained in one vmapped call against one alone, each with its
own shuffle, and in the book's unshuffled order (all eight see the same batches). For simple_net and
the eight, the first layer's two matmuls alone (``matmuls_alone``): the floor XLA's CPU dots set.
Last, time to 99 % (``--only tta``): ``mnistjax train --recipe fast99`` on all ten digits in a
fresh process per seed, wall seconds from start to exit (imports, data, compiles, training), without
the persistent compilation cache, and the test accuracy it reached; beside each, PyTorch eager's own
fresh process of the same recipe (``scripts/torch_fast99.py``). ``--only torch``: fast99's training
seconds beside PyTorch's in this one process; ``--only sweep``: 16 variants in one call against 16
processes and PyTorch. PyTorch comes with the bench extra (``pip install -e '.[bench]'``).
"""

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnistjax import data, losses, models
from mnistjax.prototypes import fit_prototypes, knn, nearest
from mnistjax.timing import command_seconds, median_seconds
from mnistjax.data import Data, data_from
from mnistjax.training import Learner, fit, init, predict, train_step, validate_epoch


TORCH_FAST99 = Path(__file__).with_name("torch_fast99.py")  # the PyTorch reference
HAS_TORCH = importlib.util.find_spec("torch") is not None  # the bench extra; found without importing it


def matmul_peak(n: int = 2048, m: int | None = None, k: int | None = None) -> float:
    """Measured float32 GFLOP/s of an (n, k) @ (k, m) product (square by default)."""
    m, k = m or n, k or n
    a, b = jnp.ones((n, k)), jnp.ones((k, m))
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    return 2 * n * m * k / median_seconds(lambda: f(a, b).block_until_ready(), 5) / 1e9


def training_flops(learner: Learner, d: Data, epochs: int) -> float:
    """XLA's FLOP count of ``epochs`` epochs: every train step (the partial last batch padded, as fit
    does) and the validation forward."""
    ts = init(learner, jax.random.key(0))
    b, n = learner.batch_size, d.x_train.shape[0]
    step = jax.jit(lambda ts, x, y: train_step(ts, x, y, learner)).lower(ts, d.x_train[:b], d.y_train[:b]).compile()
    valid = jax.jit(lambda ts: predict(ts.eval_params, ts.model_state, d.x_valid, learner.model)).lower(ts).compile()
    return epochs * (-(-n // b) * step.cost_analysis()["flops"] + valid.cost_analysis()["flops"])


def python_loop(learner: Learner, d: Data, epochs: int, key) -> float:
    """The reference: shuffle on the host, index each batch, call a jitted step; seconds for ``epochs``."""
    step = jax.jit(lambda ts, xb, yb: train_step(ts, xb, yb, learner))
    valid = jax.jit(lambda ts: validate_epoch(ts, learner, d))
    ts = init(learner, key)
    b = learner.batch_size
    rng = np.random.default_rng(0)
    n = d.x_train.shape[0]
    step(ts, d.x_train[:b], d.y_train[:b])  # compile outside the timing
    step(ts, d.x_train[: n % b or b], d.y_train[: n % b or b])
    valid(ts)
    t = time.perf_counter()
    for _ in range(epochs):
        perm = rng.permutation(n) if learner.shuffle else np.arange(n)
        for i in range(0, n, b):
            idx = perm[i:i + b]
            ts, _ = step(ts, d.x_train[idx], d.y_train[idx])
        jax.block_until_ready(valid(ts))
    return time.perf_counter() - t


def train_row(name, learner, d, epochs, repeats, peak):
    key = jax.random.key(0)
    runs = [fit(learner, d, epochs, key, progress=False) for _ in range(repeats)]
    train_s = float(np.median([r.train_seconds for r in runs]))
    n_train = int(d.x_train.shape[0])
    flops = training_flops(learner, d, epochs)
    ref = float(np.median([python_loop(learner, d, epochs, key) for _ in range(max(1, repeats - 1))]))
    return {"workload": name, "epochs": epochs, "compile_seconds": runs[0].compile_seconds, "train_seconds": train_s,
            "examples_per_s": n_train * epochs / train_s, "gflop": flops / 1e9, "gflop_per_s": flops / 1e9 / train_s,
            "fraction_of_peak": flops / 1e9 / train_s / peak, "python_loop_seconds": ref, "speedup_vs_loop": ref / train_s,
            "valid_accuracy": runs[0].history[-1]["valid_accuracy"]}


def matmuls_alone(x_train: jax.Array, width: int, epochs: int, batch_size: int = 256) -> float:
    """Seconds that just the first layer's two matmuls of an SGD run take: the forward x @ W and the
    weight gradient xᵀ @ δ of every batch (in the book's order), in the same scan over epochs and
    batches. For simple_net (width 30) they are 93 % of the FLOPs, so no formulation of the rest of the
    step can train faster than this on XLA's CPU dots; width 8·30 is eight models sharing batches."""
    n = x_train.shape[0] // batch_size * batch_size + batch_size  # the partial last batch padded, as fit does
    xs = jnp.resize(x_train.reshape(x_train.shape[0], -1), (n, 784)).reshape(-1, batch_size, 784)

    @jax.jit
    def run(w):
        step = lambda w, x: (w - 1e-3 * x.T @ jnp.tanh(x @ w), None)  # noqa: E731 (tanh: δ depends on x @ W)
        return jax.lax.scan(lambda w, _: jax.lax.scan(step, w, xs), w, None, length=epochs)[0]

    w = jnp.full((784, width), 1e-3)
    run(w).block_until_ready()
    return median_seconds(lambda: run(w).block_until_ready(), 3)


def many_models_row(learner: Learner, d: Data, epochs: int, repeats: int, k: int = 8) -> dict:
    """Train seconds of k models in one vmapped call over one model's: each shuffling on its own, and
    in the book's order (every model the same batches, so the first layers are one matmul)."""
    key, keys = jax.random.key(0), jax.random.split(jax.random.key(0), k)
    secs = lambda lrn, kk: float(np.median([fit(lrn, d, epochs, kk, progress=False).train_seconds  # noqa: E731
                                            for _ in range(repeats)]))
    book = learner._replace(shuffle=False)
    one, own, one_book, many_book = secs(learner, key), secs(learner, keys), secs(book, key), secs(book, keys)
    matmuls = matmuls_alone(d.x_train, k * 30, epochs)
    return {"workload": f"{k} simple_nets, one call", "epochs": epochs, "one_shuffled_seconds": one,
            "many_shuffled_seconds": own, "shuffled_ratio": own / one, "one_book_order_seconds": one_book,
            "many_book_order_seconds": many_book, "book_order_ratio": many_book / one_book,
            "first_layer_matmuls_seconds": matmuls, "matmuls_ratio_to_one": matmuls / one_book}


def knn_row(ds, peak: float, repeats: int) -> dict:
    """1-NN with L2 of the 10,000 test images among the 60,000 training images (``prototypes.knn``),
    against its FLOPs (the N×M×784 matrix multiply) and a bare chunked jit matmul of the same shapes."""
    tx, ty, vx = (jnp.asarray(a) for a in (ds.train.images, ds.train.labels, ds.test.images))
    run = lambda: knn(tx, ty, vx, 10).block_until_ready()  # noqa: E731
    accuracy = float((run() == jnp.asarray(ds.test.labels)).mean())  # the compiling call's answer
    secs = median_seconds(run, repeats)
    txf, vxf = tx.reshape(len(tx), -1).astype(jnp.float32), vx.reshape(-1, 500, 784).astype(jnp.float32)
    bare = jax.jit(lambda v: jax.lax.map(lambda c: (c @ txf.T).min(1), v))
    bare(vxf).block_until_ready()
    bare_s = median_seconds(lambda: bare(vxf).block_until_ready(), repeats)
    gflop = 2 * len(vx) * len(tx) * 784 / 1e9
    return {"workload": "1-NN, L2, full MNIST", "seconds": secs, "gflop": gflop, "gflop_per_s": gflop / secs,
            "fraction_of_peak": gflop / secs / peak, "bare_matmul_seconds": bare_s, "test_accuracy": accuracy}


def time_to_accuracy(data_dir: str, seeds: list[int], recipe: str = "fast99") -> dict:
    """Wall seconds of ``mnistjax train --recipe RECIPE`` per seed in a fresh process, its test
    accuracy, and where the time goes: the interpreter's start, the imports (the data load runs in a
    thread meanwhile), XLA's compiles, the training, and the rest (init, waiting, exit). For fast99,
    alternating seed by seed with PyTorch's own fresh process (``scripts/torch_fast99.py``) where
    torch is installed: its wall, imports, data reading and training."""
    cmd = [sys.executable, "-m", "mnistjax.cli", "train", "--recipe", recipe, "--data-dir", data_dir, "--json",
           "--no-compile-cache"]
    start = median_seconds(lambda: command_seconds([sys.executable, "-c", "pass"]), 3)
    load = [sys.executable, "-c", "import mnistjax.cli as c, mnistjax.reports; c.build_parser()"]
    imports = median_seconds(lambda: command_seconds(load), 3) - start
    theirs = recipe == "fast99" and HAS_TORCH
    runs, torch_runs = [], []
    for seed in seeds:
        wall, stdout = command_seconds(cmd + ["--seed", str(seed)])
        out = json.loads(stdout)
        runs.append({"seed": seed, "wall_seconds": wall, "test_accuracy": out["valid_accuracy"],
                     "compile_seconds": out["compile_seconds"], "train_seconds": out["train_seconds"],
                     "rest_seconds": wall - start - imports - out["compile_seconds"] - out["train_seconds"]})
        if theirs:
            wall, stdout = command_seconds([sys.executable, str(TORCH_FAST99), "--data-dir", data_dir, "--seed", str(seed)])
            torch_runs.append({"wall_seconds": wall, **json.loads(stdout)})
    median = lambda rows: float(np.median([r["wall_seconds"] for r in rows]))  # noqa: E731
    return {"workload": f"{recipe}: to 99% on 10 digits", "command": " ".join(cmd[1:]), "runs": runs,
            "start_seconds": start, "import_seconds": imports, "median_wall_seconds": median(runs),
            "min_test_accuracy": min(r["test_accuracy"] for r in runs),
            "torch_runs": torch_runs or None, "torch_median_wall_seconds": median(torch_runs) if torch_runs else None}


def torch_reference():
    """``scripts/torch_fast99.py``, fast99 in PyTorch eager, as a module (None without torch: the bench extra)."""
    if not HAS_TORCH:
        return None
    spec = importlib.util.spec_from_file_location("torch_fast99", TORCH_FAST99)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast99_beside_torch(ds, data_dir: str, seeds: list[int]) -> dict:
    """fast99's training (``fit``, compile apart) and PyTorch eager's (the epoch and the test set's
    evaluation, as ``fit`` counts them), seed by seed in this one process, alternating (ours, theirs,
    ours, ...) so that a slow spell of the machine falls on both."""
    from mnistjax import config, experiment

    cfg = config.recipe("fast99")
    p = experiment.prepare(ds, "all")
    lrn = experiment.learner(cfg, p)
    reference = torch_reference()
    if reference is not None:
        tensors = [t for split in ("train", "t10k") for t in reference.read(Path(data_dir), split)]
    ours, theirs = [], []
    for seed in seeds:
        r = fit(lrn, p.data, cfg.epochs, jax.random.key(seed), progress=False)
        ours.append({"seed": seed, "train_seconds": r.train_seconds, "test_accuracy": r.history[-1]["valid_accuracy"]})
        if reference is not None:
            theirs.append(reference.train(*tensors, seed))
    median = lambda rows: float(np.median([r["train_seconds"] for r in rows]))  # noqa: E731
    return {"mnistjax": ours, "torch": theirs or None,
            "speedup_vs_torch": median(theirs) / median(ours) if theirs else None}


SWEEP = ["--epochs", "10", "--opt", "adamw", "--sweep", "lr=1e-3,3e-3,1e-2,3e-2", "--sweep", "opt.weight_decay=0,1e-4,1e-3,1e-2"]


def _peak_and_wall(cmd: list[str], env: dict | None = None) -> tuple[float, float, dict]:
    """Wall seconds, peak resident memory (GiB) and JSON result of ``cmd`` run to its end in a fresh process."""
    probe = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
             "out = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout; "
             "print(json.dumps([time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, out]))")
    wall, kib, out = json.loads(subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True,
                                               check=True, env={**os.environ, **(env or {})}).stdout)
    return wall, kib / 2**20, json.loads(out)


def torch_sweep(ds, lrs, wds, epochs: int = 10) -> float | None:
    """The same 16 runs in PyTorch eager, one process, a plain loop (None without torch: the bench extra)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count())
    d = data_from(data.mnist_sample(ds, (3, 7)))
    x = torch.tensor(np.asarray(d.x_train)).reshape(-1, 784)
    y = torch.tensor(np.asarray(d.y_train) == 0, dtype=torch.float32)  # is a 3
    t = time.perf_counter()
    for lr in lrs:
        for wd in wds:
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Linear(784, 30), torch.nn.ReLU(), torch.nn.Linear(30, 1))
            opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
            for _ in range(epochs):
                for idx in torch.randperm(len(x)).split(256):
                    p = net(x[idx]).sigmoid()[:, 0]
                    loss = torch.where(y[idx] == 1, 1 - p, p).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
    return time.perf_counter() - t


def sweep_rows(data_dir: str, ds) -> dict:
    """16 variants (simple_net 3v7, 10 epochs, adamw, 4 lrs x 4 weight decays) in one ``train --sweep``
    call against 16 ``train`` processes (no compilation cache for either) and against PyTorch; then
    64 (x 4 seeds) on 8 forced CPU devices against 1: the same results, the time, the peak memory."""
    cmd = [sys.executable, "-m", "mnistjax.cli", "train", "--data-dir", data_dir, "--json", "--no-compile-cache"]
    one_call, _, swept = _peak_and_wall(cmd + SWEEP)
    lrs, wds = swept["sweep"]["lr"], swept["sweep"]["opt.weight_decay"]
    each = [command_seconds(cmd + ["--epochs", "10", "--opt", "adamw", "--lr", str(lr), "--opt-arg", f"weight_decay={wd}"])[0]
            for lr in lrs for wd in wds]
    eight = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    wall1, mem1, r1 = _peak_and_wall(cmd + SWEEP + ["--seeds", "0,1,2,3"], eight)
    wall8, mem8, r8 = _peak_and_wall(cmd + SWEEP + ["--seeds", "0,1,2,3", "--devices", "8"], eight)
    return {"sweep_one_call_seconds": one_call, "sweep_compile_seconds": swept["compile_seconds"],
            "sweep_train_seconds": swept["train_seconds"], "sweep_16_processes_seconds": sum(each),
            "sweep_speedup": sum(each) / one_call, "torch_16_runs_seconds": torch_sweep(ds, lrs, wds),
            "sweep_programs": swept["programs"], "sweep64_1_device_seconds": wall1, "sweep64_8_devices_seconds": wall8,
            "sweep64_peak_gib": max(mem1, mem8), "sweep64_by_lr": _parting(r1["runs"], r8["runs"])}


def _parting(ones: list[dict], eights: list[dict]) -> dict:
    """Per learning rate: the largest step-loss gap between the runs on 1 and on 8 devices, the first
    step where a run's losses part by more than 1e-6 (None: never), and how many end at the same accuracy."""
    out = {}
    for a, b in zip(ones, eights):
        gaps = np.abs(np.array([h["step_losses"] for h in a["history"]]) - [h["step_losses"] for h in b["history"]]).ravel()
        row = out.setdefault(str(a["values"]["lr"]), {"largest_gap": 0.0, "first_step_over_1e-6": None, "same_accuracy": 0})
        row["largest_gap"] = max(row["largest_gap"], float(gaps.max()))
        if (gaps > 1e-6).any():
            first = int(np.argmax(gaps > 1e-6))
            row["first_step_over_1e-6"] = min(first, row["first_step_over_1e-6"] or first)
        row["same_accuracy"] += a["valid_accuracy"] == b["valid_accuracy"]
    return out


def machine() -> str:
    """The CPU the figures come from: its model, cores and widest vector units (fast99's ranking against
    PyTorch turned between two 2-core machines of one kind, docs/speed.md)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"

    def field(name):
        return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith(name)), "")

    flags = set(field("flags").split())
    units = [u for u in ("avx512f", "avx2", "amx_tile") if u in flags]
    return f"{field('model name') or platform.machine()}, {os.cpu_count()} cores, {' '.join(units) or 'no AVX2'}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", nargs="*", help="workload names to run (default: all)")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON here")
    args = p.parse_args()
    ds = data.load_dir(args.data_dir)
    peak = matmul_peak(2048 if jax.default_backend() == "cpu" else 8192)  # an accelerator needs a bigger product to fill
    result = {"device": str(jax.devices()[0]), "machine": machine(), "matmul_peak_gflop_per_s": peak,
              "matmul_256x784x30_gflop_per_s": matmul_peak(256, 30, 784), "rows": []}
    d37, d10 = data_from(data.mnist_sample(ds, (3, 7))), data_from(data.mnist_sample(ds, range(10)))
    workloads = {
        "linear 20 epochs": (Learner(models.linear(), losses.binary, optax.sgd(1.0)), d37, 20),
        "simple_net 40 epochs": (Learner(models.simple_net(), losses.binary, optax.sgd(0.1)), d37, 40),
        # the book's recipe as it writes it: DataLoader(dset, batch_size=256) walks the data in order
        "simple_net 40 epochs, book order": (Learner(models.simple_net(), losses.binary, optax.sgd(0.1), shuffle=False),
                                             d37, 40),
        "cnn 1 epoch, 10 digits": (Learner(models.cnn(10), losses.multiclass(10), optax.adam(1e-3), 64), d10, 1),
    }
    if not args.only or "pixel" in args.only:
        x, y = d37.x_train, d37.y_train
        t = time.perf_counter()
        jax.block_until_ready(nearest(d37.x_valid, fit_prototypes(x, y, jnp.arange(2))))
        compile_s = time.perf_counter() - t
        secs = median_seconds(lambda: jax.block_until_ready(nearest(d37.x_valid, fit_prototypes(x, y, jnp.arange(2)))),
                              args.repeats)
        result["rows"].append({"workload": "pixel similarity 3v7", "compile_seconds": compile_s, "train_seconds": secs,
                               "examples_per_s": (x.shape[0] + d37.x_valid.shape[0]) / secs})
    for name, (learner, d, epochs) in workloads.items():
        if not args.only or name.split()[0] in args.only:
            result["rows"].append(train_row(name, learner, d, epochs, args.repeats, peak))
            print(json.dumps(result["rows"][-1]), flush=True)
    print(f"\ndevice {result['device']} ({result['machine']}); float32 matmul peak {peak:.0f} GFLOP/s "
          f"({result['matmul_256x784x30_gflop_per_s']:.0f} at 256x784 @ 784x30)")
    print(f"{'workload':<32} {'compile s':>9} {'train s':>8} {'ex/s':>10} {'GFLOP/s':>8} {'% peak':>7} {'loop s':>7} {'speedup':>8}")
    for r in result["rows"]:
        extra = (f"{r['gflop_per_s']:8.1f} {100 * r['fraction_of_peak']:6.1f}% {r['python_loop_seconds']:7.2f} "
                 f"{r['speedup_vs_loop']:7.1f}x") if "gflop" in r else ""
        print(f"{r['workload']:<32} {r['compile_seconds']:9.2f} {r['train_seconds']:8.3f} {r['examples_per_s']:10,.0f} {extra}")
    if not args.only or "simple_net" in args.only:
        alone = result["simple_net_matmuls_alone_seconds"] = matmuls_alone(d37.x_train, 30, 40)
        print(f"simple_net's first-layer matmuls alone (forward and weight gradient, 93 % of its FLOPs), "
              f"40 epochs in the book's order: {alone:.3f} s")
    if not args.only or "many" in args.only:
        many = result["many_models"] = many_models_row(*workloads["simple_net 40 epochs"][:2], 40, args.repeats)
        print(f"\n8 simple_nets, 40 epochs, one vmapped call: {many['many_shuffled_seconds']:.2f} s with a shuffle each "
              f"({many['shuffled_ratio']:.1f}x one model's {many['one_shuffled_seconds']:.2f} s); in the book's order "
              f"{many['many_book_order_seconds']:.2f} s ({many['book_order_ratio']:.1f}x one's {many['one_book_order_seconds']:.2f} s); "
              f"their first-layer matmuls alone {many['first_layer_matmuls_seconds']:.2f} s "
              f"({many['matmuls_ratio_to_one']:.1f}x one model's whole training)")
    if not args.only or "knn" in args.only:
        k = result["knn"] = knn_row(ds, peak, args.repeats)
        print(f"\n1-NN with L2 on full MNIST: {k['seconds']:.2f} s, {k['gflop_per_s']:.0f} GFLOP/s = "
              f"{100 * k['fraction_of_peak']:.0f} % of the peak (a bare chunked matmul: {k['bare_matmul_seconds']:.2f} s); "
              f"test accuracy {k['test_accuracy']:.4f}")
    if not args.only or "tta" in args.only:
        tta = result["time_to_accuracy"] = time_to_accuracy(args.data_dir, list(range(args.repeats)))
        print(f"\ntime to 99 % test accuracy, ten digits ({tta['command']}):")
        print(f"  (every run: interpreter start {tta['start_seconds']:.2f} s, imports {tta['import_seconds']:.2f} s)")
        for r in tta["runs"]:
            print(f"  seed {r['seed']}: {r['wall_seconds']:.1f} s wall = compile {r['compile_seconds']:.1f} + train "
                  f"{r['train_seconds']:.1f} + rest {r['rest_seconds']:.1f} + start and imports; test accuracy {r['test_accuracy']:.4f}")
        print(f"  median {tta['median_wall_seconds']:.1f} s; lowest accuracy {tta['min_test_accuracy']:.4f}")
        for r in tta["torch_runs"] or []:
            print(f"  PyTorch eager, seed {r['seed']} (python scripts/torch_fast99.py): {r['wall_seconds']:.1f} s wall = "
                  f"imports {r['import_seconds']:.1f} + data {r['data_seconds']:.1f} + train {r['train_seconds']:.1f} + "
                  f"start and exit; test accuracy {r['test_accuracy']:.4f}")
        if tta["torch_runs"]:
            print(f"  PyTorch's median {tta['torch_median_wall_seconds']:.1f} s: mnistjax's wall is "
                  f"{tta['median_wall_seconds'] / tta['torch_median_wall_seconds']:.2f}x PyTorch's")
    if not args.only or "torch" in args.only:
        ft = result["fast99_vs_torch"] = fast99_beside_torch(ds, args.data_dir, list(range(args.repeats)))
        print("\nfast99's training (one epoch, ten digits), seed by seed in this process:")
        for ours, theirs in zip(ft["mnistjax"], ft["torch"] or [None] * len(ft["mnistjax"])):
            torch_s = f"PyTorch eager {theirs['train_seconds']:.2f} s ({theirs['test_accuracy']:.4f})" if theirs else \
                "PyTorch not installed (pip install '.[bench]')"
            print(f"  seed {ours['seed']}: mnistjax {ours['train_seconds']:.2f} s ({ours['test_accuracy']:.4f}); {torch_s}")
        if ft["speedup_vs_torch"]:
            print(f"  mnistjax trains {ft['speedup_vs_torch']:.2f}x as fast as PyTorch eager (medians)")
    if not args.only or "sweep" in args.only:
        sw = result["sweep"] = sweep_rows(args.data_dir, ds)
        torch_s = "not installed (pip install '.[bench]')" if sw["torch_16_runs_seconds"] is None else \
            f"{sw['torch_16_runs_seconds']:.1f} s"
        print(f"\n16 variants (simple_net 3v7, 10 epochs, adamw, 4 lrs x 4 weight decays), wall seconds, no compile cache:"
              f"\n  one mnistjax train --sweep call ({sw['sweep_programs']} program): {sw['sweep_one_call_seconds']:.1f} s "
              f"(compile {sw['sweep_compile_seconds']:.1f} s, training {sw['sweep_train_seconds']:.1f} s)"
              f"\n  16 mnistjax train processes: {sw['sweep_16_processes_seconds']:.1f} s ({sw['sweep_speedup']:.1f}x the sweep)"
              f"\n  PyTorch eager, the 16 in one process (training only): {torch_s}"
              f"\n64 (x 4 seeds): 1 device {sw['sweep64_1_device_seconds']:.1f} s, 8 forced CPU devices "
              f"{sw['sweep64_8_devices_seconds']:.1f} s; peak memory {sw['sweep64_peak_gib']:.2f} GiB; 8 devices against 1:")
        for lr, row in sw["sweep64_by_lr"].items():
            print(f"  lr {lr}: largest step-loss gap {row['largest_gap']:.1e}, losses part by > 1e-6 from step "
                  f"{row['first_step_over_1e-6']} (of 490), {row['same_accuracy']} of 16 runs end at the same accuracy")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
