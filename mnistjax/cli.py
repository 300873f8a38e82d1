"""The ``mnistjax`` command: one subcommand per step of the chapter, each a thin layer over the library.

Every subcommand takes the data options, prints a human table or (``--json``) exactly one JSON
object on stdout, logs and progress on stderr, and on bad input prints one line
``mnistjax: error: ...`` and exits 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from functools import partial
from typing import Callable

from mnistjax import data
from mnistjax.data.load import DATASETS
from mnistjax.errors import MnistjaxError, TrainingDiverged


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit 2 like any other bad input."""

    def error(self, message: str):
        raise MnistjaxError(message)


def _data_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("data")
    g.add_argument("--data-dir", metavar="PATH",
                   help="folder with the four MNIST IDX files (.gz or raw) or train/ + valid/ PNG folders "
                        "(default: $MNISTJAX_DATA, then the cache, then a download)")
    g.add_argument("--dataset", choices=DATASETS, default="auto",
                   help="auto: full MNIST if it can be had, else the embedded sample (with a warning); "
                        "mnist: full MNIST or an error; tiny: the embedded sample")
    g.add_argument("--cache-dir", metavar="PATH", help="download cache (default: $MNISTJAX_CACHE or the user cache folder)")
    g.add_argument("--mirror", action="append", metavar="URL",
                   help="MNIST mirror to download from, repeatable, tried in order (default: $MNISTJAX_MIRRORS or built-in list)")
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    c = common.add_argument_group("compilation")
    c.add_argument("--compile-cache", metavar="DIR",
                   help="JAX's persistent compilation cache (default: $MNISTJAX_COMPILE_CACHE or <cache-dir>/xla)")
    c.add_argument("--no-compile-cache", action="store_true", help="compile everything afresh, keep nothing")
    return common


def use_compile_cache(args: argparse.Namespace) -> None:
    """Point JAX's persistent compilation cache at a folder, so a second run skips XLA compiles."""
    if args.no_compile_cache:
        return
    import jax

    folder = args.compile_cache or os.environ.get("MNISTJAX_COMPILE_CACHE") or data.cache_dir(args.cache_dir) / "xla"
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def load_data(args: argparse.Namespace) -> data.Dataset:
    """The dataset the options name (``main`` started loading it, see ``READS_DATA``)."""
    return args.loading.result()


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """The one place a command writes its result to stdout."""
    print(json.dumps(result) if args.json else human)


def _counts_table(info: dict) -> str:
    lines = [f"dataset: {info['dataset']}  (verified: {info['verified']})", f"source:  {info['source']}",
             f"{'class':>8} " + " ".join(f"{c:>6}" for c in info["classes"]) + f" {'total':>7}"]
    for split, s in info["splits"].items():
        lines.append(f"{split:>8} " + " ".join(f"{n:>6}" for n in s["per_class"].values()) + f" {s['count']:>7}")
    return "\n".join(lines)


def cmd_data_info(args: argparse.Namespace) -> None:
    info = load_data(args).describe()
    emit(args, info, _counts_table(info) + "\n" + "\n".join(f"sha256 {n}: {h}" for n, h in info["sha256"].items()))


def cmd_data_fetch(args: argparse.Namespace) -> None:
    folder = data.fetch(args.cache_dir, args.mirror, progress=not args.json)
    info = data.load_idx_dir(folder, strict=True).describe()
    emit(args, info, _counts_table(info))


def cmd_baseline(args: argparse.Namespace) -> None:
    from mnistjax import reports

    ds = load_data(args)
    r = reports.baseline(ds, data.parse_classes(args.classes, ds.classes), args.distance, args.figures)
    emit(args, r, reports.baseline_table(r))


def cmd_sgd(args: argparse.Namespace) -> None:
    from mnistjax import reports

    if args.steps < 1 or not args.lr > 0:
        raise MnistjaxError(f"--steps {args.steps} --lr {args.lr}: expected steps >= 1 and a learning rate > 0")
    lr_cases = reports.learning_rates(figures=args.figures)
    r = reports.sgd_example(args.seed, args.steps, args.lr, max(args.steps, 10_000), args.figures)
    r["learning_rate_cases"] = lr_cases
    lr_lines = [f"x² from x={lr_cases['x0']}, {lr_cases['steps']} steps:"] + [
        f"  lr {c['lr']:<5} {c['name']:<9} final x {c['x'][-1] if c['x'][-1] is not None else float('nan'):9.4f}"
        f"{'  DIVERGED' if c['diverged'] else ''}" for c in lr_cases["runs"]]
    emit(args, r, "\n".join(lr_lines) + "\n" + reports.sgd_example_table(r))


def cmd_train(args: argparse.Namespace) -> None:
    from mnistjax import reports

    ds = load_data(args)
    classes = data.parse_classes(args.classes, ds.classes)
    if args.seeds or args.lrs:
        if args.checkpoint_dir or args.figures or args.schedule != "constant" or args.augment or args.devices or args.channels:
            raise MnistjaxError("--seeds/--lrs: train several models at once; --checkpoint-dir, --figures, "
                                "--schedule, --augment, --channels and --devices work with one run")
        r = reports.train_many(ds, args.model, classes, args.epochs, args.lr, args.batch_size, args.opt,
                               args.seeds or [args.seed], args.lrs, args.loss, args.shuffle, args.same_batches,
                               progress=not args.json)
        emit(args, r, reports.train_many_table(r))
        return
    try:
        r = reports.train(ds, args.model, classes, args.epochs, args.lr, args.batch_size, args.opt, args.seed,
                          args.loss, args.schedule, args.augment, args.shuffle, args.channels, _devices(args.devices),
                          args.checkpoint_dir, args.checkpoint_every, args.resume, args.figures, progress=not args.json)
    except TrainingDiverged as e:
        emit(args, e.result, reports.train_table(e.result))
        raise
    emit(args, r, reports.train_table(r))


def cmd_run(args: argparse.Namespace) -> None:
    """The main job: the chapter end to end on 3 vs 7, one row per step, the book's figure beside ours.

    The steps are independent, so they run side by side in threads: while one trains (XLA releases
    the GIL), the others trace and compile. Each step's numbers are what it gives alone.
    """
    from tqdm import tqdm

    from mnistjax import reports
    from mnistjax.training import data_from

    t0 = time.perf_counter()
    ds = load_data(args)
    d37 = data_from(data.mnist_sample(ds, (3, 7)))  # on the device once for the three trainings, not once each
    fig = (lambda name: os.path.join(args.figures, name)) if args.figures else (lambda name: None)
    jobs = {name: partial(reports.train, ds, classes=(3, 7), figures=fig(name), progress=False, prepared=d37, **config)
            for name, config in reversed(reports.CHAPTER_RUNS.items())}  # the longest first
    jobs["baseline"] = partial(reports.baseline, ds, (3, 7), "l1", fig("baseline"))
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {pool.submit(job): name for name, job in jobs.items()}
        for future in tqdm(as_completed(futures), total=len(jobs), desc="steps", disable=args.json, file=sys.stderr,
                           leave=False):
            future.result()  # a step's error stops the run here
    results = {name: future.result() for future, name in futures.items()}
    base = results["baseline"]
    steps = [{"step": "pixel similarity (L1)", "accuracy": base["balanced_accuracy"],
              "book": reports.BOOK_BASELINE["balanced_accuracy"], "seconds": base["seconds"]}]
    for name, config in reports.CHAPTER_RUNS.items():
        r = results[name]
        steps.append({"step": f"{name} ({config['opt']}, {config['epochs']} epochs)", "accuracy": r["valid_accuracy"],
                      "book": r["book"], "seconds": round(r["compile_seconds"] + r["train_seconds"], 3)})
    wall = round(time.perf_counter() - t0, 3)
    table = [f"mnistjax run on {ds.name} ({ds.source}, verified: {ds.verified}); 3 vs 7, validation accuracy",
             f"{'step':<32} {'ours':>8} {'book':>8} {'seconds':>8}"]
    table += [f"{s['step']:<32} {s['accuracy']:8.4f} {s['book']:8.4f} {s['seconds']:8.2f}" for s in steps]
    table.append(f"all steps side by side, data loading included: {wall:.2f} s")
    emit(args, {"dataset": ds.name, "steps": steps, "seconds": wall}, "\n".join(table))


def _devices(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "all":
        import jax

        return len(jax.devices())
    if not text.isdigit() or int(text) < 1:
        raise MnistjaxError(f"--devices {text!r}: expected a positive number or 'all'")
    return int(text)


def _numbers(kind):
    """An argparse type for a comma list of numbers."""
    def parse(text: str):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind.__name__}s, got {text!r}") from None
    parse.__name__ = f"{kind.__name__} list"
    return parse


# mnistjax.distances.DISTANCES's names (a test keeps them equal): importing it would import JAX
# before the data start loading.
DISTANCE_NAMES = ("cosine", "l1", "rmse")


def build_parser() -> argparse.ArgumentParser:
    common = _data_options()
    parser = _Parser(prog="mnistjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    run = add("run", cmd_run, "the chapter end to end on 3 vs 7: each step, our accuracy beside the book's")
    run.add_argument("--figures", metavar="DIR", help="write the figures of every step here (PNG)")
    p = add("sgd", cmd_sgd, "gradient descent from first principles: x², learning rates, the roller coaster")
    p.add_argument("--steps", type=int, default=10, help="SGD steps to print, as in the book (default 10)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5, the book's)")
    p.add_argument("--seed", type=int, default=42, help="PRNG seed for the noise and the initial params")
    p.add_argument("--figures", metavar="DIR", help="write every figure of the section here (PNG)")
    p = add("train", cmd_train, "train a classifier with SGD: linear, simple_net, mlp or cnn, one compiled call per epoch")
    p.add_argument("--model", choices=["linear", "simple_net", "mlp", "cnn"], default="simple_net")
    p.add_argument("--channels", type=_numbers(int), metavar="C1,C2", help="the cnn's two conv widths (default 32,64)")
    p.add_argument("--classes", default="3,7", help="'all' or a comma list of classes (default 3,7)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--opt", choices=["sgd", "momentum", "adam"], default="sgd")
    p.add_argument("--schedule", choices=["constant", "onecycle"], default="constant",
                   help="learning rate: constant, or one cycle (warm-up, then cosine decay) peaking at --lr")
    p.add_argument("--augment", type=int, default=0, metavar="PX",
                   help="shift each training image by up to PX pixels, a fresh shift every epoch (default 0: none)")
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=True,
                   help="a fresh batch order every epoch (default); --no-shuffle keeps the data's order, as the book does")
    p.add_argument("--loss", choices=["mnist_loss", "cross_entropy"],
                   help="default: the book's mnist_loss for two classes, cross_entropy otherwise")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for init and shuffling")
    p.add_argument("--devices", metavar="N|all", help="data parallel: split each batch over N devices (or all)")
    p.add_argument("--seeds", type=_numbers(int), metavar="S,S,...", help="train one model per seed, all in one vmapped call")
    p.add_argument("--lrs", type=_numbers(float), metavar="X,X,...", help="train one model per learning rate, in one vmapped call")
    p.add_argument("--same-batches", action="store_true",
                   help="with --seeds/--lrs: all models see the same batches in the same order (only init/rate differ; faster)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="save params, optimizer state, key and epoch here")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N", help="epochs between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--figures", metavar="DIR", help="write loss/accuracy curves, confusion matrix, top_wrong.png")
    p = add("baseline", cmd_baseline, "pixel similarity: nearest mean image, per-class and balanced accuracy")
    p.add_argument("--classes", default="3,7", help="'all' or a comma list of classes (default 3,7)")
    p.add_argument("--distance", choices=DISTANCE_NAMES, default="l1", help="distance to the mean images")
    p.add_argument("--figures", metavar="DIR", help="write prototypes.png, pixels.png, confusion.png here")
    data_cmd = sub.add_parser("data", help="download and inspect the data")
    data_sub = data_cmd.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    add("fetch", cmd_data_fetch, "download MNIST into the cache from the mirrors, verifying SHA-256", data_sub)
    add("info", cmd_data_info, "where the data comes from, counts per split and class, and whether hashes verified", data_sub)
    return parser


READS_DATA = {cmd_run, cmd_train, cmd_baseline, cmd_data_info}


def _in_background(fn: Callable, *args, **kwargs) -> Future:
    """``fn(*args, **kwargs)`` in a daemon thread: one that never holds the process up (after Ctrl-C
    in a download, say), which a ``ThreadPoolExecutor``'s worker would."""
    future = Future()

    def run():
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:  # handed to whoever asks for the result
            future.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return future


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.func in READS_DATA:
            # The data decompress and hash in a thread (zlib and hashlib release the GIL) while this one
            # imports JAX: a command that reads them starts ≈ 0.3 s sooner.
            args.loading = _in_background(data.load, args.dataset, args.data_dir, args.cache_dir, args.mirror,
                                          progress=not args.json)
        use_compile_cache(args)
        args.func(args)
        # What is alive now lives until exit: keep the garbage collector's passes at interpreter exit from
        # walking it all (JAX's ~150,000 objects: ≈ 0.3 s of a 5 s warm `mnistjax run`).
        gc.freeze()
        return 0
    except MnistjaxError as e:
        print(f"mnistjax: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 3 if isinstance(e, TrainingDiverged) else 2
    except BrokenPipeError:  # stdout closed early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("mnistjax: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("MNISTJAX_DEBUG"):
            traceback.print_exc()
        print(f"mnistjax: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              "(set MNISTJAX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
