"""The ``mnistjax`` command: one subcommand per step of the chapter, each a thin layer over the library.

Every subcommand prints a human table or (``--json``) exactly one JSON object on stdout (strict JSON:
a non-finite number is null), logs and progress on stderr, and on bad input prints one line
``mnistjax: error: ...`` and exits 2 (a training loss that goes non-finite: exit 3).
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from mnistjax import config as mconfig
from mnistjax import data, files
from mnistjax.data.load import is_local
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.files import strict_json
from mnistjax.tables import printable

# The commands that read the data: it starts loading (in a thread) before JAX is imported.
READS_DATA = {"run", "train", "lr-find", "baseline", "knn", "info"}
# Flags whose names are not their parameter's with dashes.
FLAGS = {"model_args": "--model-arg", "opt_args": "--opt-arg", "schedule_args": "--schedule-arg"}


def flag(param: str) -> str:
    """The command-line flag of a library parameter."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit 2 like any other bad input."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        raise MnistjaxError(message)


def _source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="PATH", help="download cache (default: $MNISTJAX_CACHE or the user cache folder)")
    p.add_argument("--mirror", action="append", metavar="URL",
                   help="MNIST mirror to download from, repeatable, tried in order (default: $MNISTJAX_MIRRORS or built-in list)")


def _data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", metavar="PATH", default=argparse.SUPPRESS,
                   help="folder with the four MNIST IDX files (.gz or raw) or train/ + valid/ PNG folders "
                        "(default: $MNISTJAX_DATA, then the cache, then a download)")
    g.add_argument("--dataset", choices=mconfig.DATASETS, default=argparse.SUPPRESS,
                   help="auto (default): full MNIST if it can be had, else the embedded sample (with a warning); "
                        "mnist: full MNIST or an error; tiny: the embedded sample")
    g.add_argument("--class-names", metavar="A,B,...", default=argparse.SUPPRESS,
                   help="names for the labels 0, 1, ... of data that are not MNIST (default: DIR/classes.txt, else digits)")
    _source_options(g)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a table")
    c = common.add_argument_group("compilation")
    c.add_argument("--compile-cache", metavar="DIR",
                   help="JAX's persistent compilation cache (default: $MNISTJAX_COMPILE_CACHE or <cache-dir>/xla)")
    c.add_argument("--no-compile-cache", action="store_true", help="compile everything afresh, keep nothing")
    return common


def _trust_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-code", action="store_true",
                   help="let a file (a saved model, a config) run the plug-in model code it names; without it, "
                        "files are data and such a file is refused")


def _literal(text: str):
    """A setting's value from the command line: JSON (3, 0.5, true, "x", [8, 16]), a comma list of
    such values, or else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if "," in text:
            return [_literal(part) for part in text.split(",")]
        return text


def _key_values(text: str) -> dict:
    items = [p for p in re.split(r",(?=[A-Za-z_]\w*=)", text) if p]
    if not all("=" in p for p in items):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return {k: _literal(v) for k, v in (p.split("=", 1) for p in items)}


def _numbers(kind):
    """An argparse type for a comma list of numbers."""
    def parse(text: str):
        try:
            values = tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind.__name__}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected a comma list of {kind.__name__}s, got {text!r}")
        return values
    parse.__name__ = f"{kind.__name__} list"
    return parse


def _names(registry) -> str:
    return ", ".join(registry)


def _run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig; each given one overrides the recipe and the config file."""
    from mnistjax import losses, models, optimizers

    S = argparse.SUPPRESS
    p.add_argument("--recipe", default=S, help="start from a named recipe (mnistjax recipes lists them)")
    p.add_argument("--config", metavar="FILE", default=S,
                   help="start from a TOML or JSON file of settings (a result's \"config\" too); flags override it")
    _trust_option(p)
    m = p.add_argument_group("model and loss")
    m.add_argument("--model", metavar="NAME[,K=V...]", default=S,
                   help=f"{_names(models.MODELS)} (default simple_net), or your own: FILE.py:FUNCTION or "
                        "package.module:FUNCTION returning a layers.Module")
    m.add_argument("--model-arg", metavar="K=V", action="append", type=_key_values, default=S,
                   help="an argument of the model's function, repeatable (channels=8,16)")
    m.add_argument("--classes", default=S, help="'all' or a comma list of class names (default 3,7)")
    m.add_argument("--loss", default=S, help=f"{_names(losses.LOSSES)} (default: mnist_loss for two classes, else cross_entropy)")
    o = p.add_argument_group("optimizer")
    o.add_argument("--opt", default=S, help=f"any optax optimizer: {_names(optimizers.OPTIMIZERS)} (default sgd)")
    o.add_argument("--opt-arg", metavar="K=V", action="append", type=_key_values, default=S,
                   help="an argument of the optimizer, repeatable (weight_decay=0.05, b1=0.7, nesterov=true)")
    o.add_argument("--lr", type=float, default=S, help="learning rate, the schedule's peak (default 0.1)")
    o.add_argument("--schedule", default=S, help=f"{_names(optimizers.SCHEDULES)} (default constant), over the whole run")
    o.add_argument("--schedule-arg", metavar="K=V", action="append", type=_key_values, default=S,
                   help="an argument of the schedule, repeatable (pct_start=0.25); onecycle's pct_start and "
                        "warmup_cosine's warmup are fractions of the run (0.25: its first quarter), not steps")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=S, help="default 40")
    t.add_argument("--batch-size", type=int, default=S, help="default 256")
    t.add_argument("--augment", type=int, metavar="PX", default=S,
                   help="shift each training image by up to PX pixels, a fresh shift every epoch (default 0: none)")
    t.add_argument("--rotate", type=float, metavar="DEG", default=S,
                   help="turn each training image by up to DEG degrees, a fresh angle every epoch (default 0: none)")
    t.add_argument("--zoom", type=float, metavar="FRAC", default=S,
                   help="scale each training image by a factor from 1-FRAC to 1+FRAC, fresh every epoch (default 0: none)")
    t.add_argument("--ema", type=float, metavar="DECAY", default=S,
                   help="validate and predict with a moving average of the weights, of this decay (0.999, say; default 0: off)")
    t.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=S,
                   help="a fresh batch order every epoch (default); --no-shuffle keeps the data's order, as the book does")
    t.add_argument("--drop-last", action=argparse.BooleanOptionalAction, default=S, help="skip each epoch's partial last batch")
    t.add_argument("--seed", type=int, default=S, help="PRNG seed for init, batches and dropout (default 0)")
    t.add_argument("--seeds", type=_numbers(int), metavar="S,S,...", default=S,
                   help="train one model per seed, all in one vmapped call")
    t.add_argument("--lrs", type=_numbers(float), metavar="X,X,...", default=S,
                   help="train one model per learning rate, in one vmapped call")
    t.add_argument("--same-batches", action=argparse.BooleanOptionalAction, default=S,
                   help="with several models: all see the same batches in the same order (faster)")
    t.add_argument("--devices", metavar="N|all", default=S, help="data parallel: split each batch over N devices (or all)")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", metavar="DIR", default=S, help="save the training state here every few epochs")
    c.add_argument("--checkpoint-every", type=int, metavar="N", default=S, help="epochs between checkpoints (default 1)")
    c.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")


def _overrides(args: argparse.Namespace) -> dict:
    """The RunConfig settings the flags give (those not given are absent)."""
    given = vars(args)
    out = {name: given[name] for name in mconfig.FIELDS if name in given}
    if "seed" in given:
        if "seeds" in given:
            raise MnistjaxError("give --seed or --seeds, not both", param="seed")
        out["seeds"] = (given["seed"],)
    for name in ("model_args", "opt_args", "schedule_args"):
        if name[:-1] in given:  # --model-arg K=V ..., merged
            out[name] = {k: v for pairs in given[name[:-1]] for k, v in pairs.items()}
    if "," in out.get("model", ""):  # --model NAME,K=V,...
        out["model"], rest = out["model"].split(",", 1)
        out["model_args"] = {**_key_values(rest), **out.get("model_args", {})}
    if isinstance(out.get("devices"), str) and out["devices"].isdigit():
        out["devices"] = int(out["devices"])
    return out


def _settings(args: argparse.Namespace) -> dict:
    return mconfig.settings(vars(args).get("recipe"), vars(args).get("config"), _overrides(args), args.trust_code)


def run_config(args: argparse.Namespace) -> mconfig.RunConfig:
    """The command line's RunConfig: the recipe, then the config file, then the flags."""
    return mconfig.RunConfig(**_settings(args))


def prepared_run(args: argparse.Namespace):
    """The command line's RunConfig and its data, prepared (``reports.prepare``). Data that are not
    MNIST train on all their classes unless a recipe, the config file or --classes names some: the
    default 3,7 is MNIST's."""
    import dataclasses

    from mnistjax import reports

    s = _settings(args)
    cfg = mconfig.RunConfig(**s)
    ds = load_data(args, cfg.dataset, cfg.data_dir, cfg.class_names)
    if "classes" not in s and not reports.is_mnist(ds):
        cfg = dataclasses.replace(cfg, classes="all")
    return cfg, reports.prepare(ds, cfg.classes)


def load_data(args: argparse.Namespace, dataset: str | None = None, data_dir: str | None = None,
              class_names: str | None = None) -> data.Dataset:
    """The dataset a command asked for (by default, what its --dataset, --data-dir and --class-names
    say): the one ``main`` started loading, when it is the same."""
    if dataset is None:
        dataset, data_dir = vars(args).get("dataset", "auto"), vars(args).get("data_dir")
        class_names = vars(args).get("class_names")
    request = (dataset, data_dir, args.cache_dir, tuple(args.mirror or ()))
    if args.loading is not None and args.loading[0] == request:
        ds = args.loading[1].result()
    else:
        ds = data.load(dataset, data_dir, args.cache_dir, args.mirror, progress=not args.json)
    return ds.with_classes(class_names) if class_names else ds


def emit(args: argparse.Namespace, result: dict, human: str) -> None:
    """The one place a command writes its result to stdout."""
    print_result(strict_json(result) if args.json else human)


def print_result(text: str) -> None:
    """``text`` on stdout, flushed: a full disk there is a one-line error, not a traceback at exit."""
    try:
        print(text, flush=True)
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what could not be written is dropped
        raise MnistjaxError(f"standard output: cannot write the result ({e.strerror or e})") from None


def _save_figures(folder: str | None, figures: Callable[[object], dict]) -> None:
    """``figures(plots)`` saved under ``folder`` when there is one; matplotlib is imported only then."""
    if folder:
        from mnistjax import plots

        plots.save_all(folder, figures(plots))


def cmd_data_info(args):
    from mnistjax import tables

    info = load_data(args).describe()
    emit(args, info, tables.data_info(info))


def cmd_data_fetch(args):
    from mnistjax import tables

    folder = data.fetch(args.cache_dir, args.mirror, progress=not args.json)
    info = data.load_idx_dir(folder, strict=True).describe()
    emit(args, info, tables.counts(info))


def cmd_recipes(args):
    from mnistjax import tables

    r = {"recipes": mconfig.recipes()}
    emit(args, r, tables.recipes(r))


def cmd_baseline(args):
    from mnistjax import reports, tables

    ds = load_data(args)
    report = reports.baseline(ds, data.parse_classes(args.classes, ds.classes), args.distance)
    _save_figures(args.figures, lambda plots: plots.baseline_figures(report))
    emit(args, report.summary, tables.baseline(report.summary))


def cmd_knn(args):
    from mnistjax import reports, tables

    ds = load_data(args)
    r = reports.knn(ds, data.parse_classes(args.classes, ds.classes), args.k, args.distance, args.weighted, args.deskew)
    emit(args, r, tables.knn(r))


def cmd_sgd(args):
    from mnistjax import reports, tables

    if not 1 <= args.steps <= 1_000_000 or not 0 < args.lr < float("inf"):
        raise MnistjaxError(f"--steps {args.steps} --lr {args.lr}: expected steps from 1 to 1,000,000 and a finite "
                            "learning rate > 0")
    cases = reports.learning_rates()
    report = reports.sgd_example(args.seed, args.steps, args.lr, max(args.steps, 10_000))
    _save_figures(args.figures, lambda plots: {**plots.learning_rate_figures(cases), **plots.sgd_figures(report)})
    emit(args, {**report.summary, "learning_rate_cases": cases}, tables.learning_rates(cases) + "\n" + tables.sgd_example(report.summary))


def cmd_train(args):
    from mnistjax import reports, tables

    cfg = run_config(args)
    if args.show_config:
        print_result(json.dumps(cfg.to_dict(), indent=1))
        return
    if args.figures and cfg.n_models > 1:
        raise MnistjaxError("draws one model's figures; with several seeds or lrs, drop --figures", param="figures")
    if args.save and cfg.n_models > 1:
        raise MnistjaxError("saves one model; with several seeds or lrs, drop --save", param="save")
    if args.resume and not cfg.checkpoint_dir:
        raise MnistjaxError("needs --checkpoint-dir (where the checkpoint is)", param="resume")
    if cfg.checkpoint_dir:
        files.writable_dir(cfg.checkpoint_dir, "checkpoint_dir")
    if args.save:
        files.output_file(args.save, "save")
    log = files.open_log(args.log) if args.log else None
    cfg, p = prepared_run(args)
    try:
        report = reports.train(cfg, p, resume=args.resume, log=log, progress=not args.json)
    except TrainingDiverged as e:
        emit(args, e.result, tables.training(e.result))
        raise
    finally:
        log is not None and log.close()
    _save_figures(args.figures, lambda plots: plots.training_figures(report))
    if args.save:
        from mnistjax import saved

        try:
            report.summary["saved"] = str(saved.save_training(args.save, report))
        except MnistjaxError:  # a full disk, say: the result is still printed, then the one-line error
            emit(args, report.summary, tables.training(report.summary))
            raise
    emit(args, report.summary, tables.training(report.summary) + (f"\nsaved to {args.save}" if args.save else ""))


def cmd_run(args):
    """The main job: the chapter end to end on 3 vs 7, one row per step, the book's figure beside ours."""
    from mnistjax import reports, tables

    t0 = time.perf_counter()
    save = None
    if args.figures:  # matplotlib only when there are figures to draw, imported before the steps' threads
        from mnistjax import plots

        def save(name, report):  # called from the step's own thread
            draw = plots.baseline_figures if name == "baseline" else plots.training_figures
            plots.save_all(os.path.join(args.figures, name), draw(report))

    result = reports.chapter(load_data(args), on_report=save, progress=not args.json)
    result["seconds"] = round(time.perf_counter() - t0, 3)  # data loading included
    emit(args, result, tables.chapter(result))


def cmd_predict(args):
    import numpy as np

    from mnistjax import preprocess, saved, tables

    if args.top < 1:
        raise MnistjaxError(f"{args.top}: expected 1 or more", param="top")
    m = saved.load_model(args.model, args.trust_code)
    kind, ink = m.preprocessing
    kind = kind if args.preprocess == "auto" else args.preprocess
    paths = preprocess.image_files(args.images)
    if not paths:
        raise MnistjaxError(f"{' '.join(args.images)}: no PNG or JPEG images found", param="images")
    entries, seen = [], {}
    for i, path in enumerate(paths):
        try:
            seen[i] = preprocess.PREPROCESS[kind](preprocess.read_image(path), ink)
        except MnistjaxError as e:  # this image's own entry; the others are still predicted
            entries.append({"file": str(path), "error": " ".join(e.message.removeprefix(f"{path}: ").split())})
            continue
        entries.append({"file": str(path)})
    probs = saved.probabilities(m, np.stack(list(seen.values()))) if seen else []  # one batch: one compile
    for (i, image), p in zip(seen.items(), probs):
        top = np.argsort(-p, kind="stable")[:args.top]
        entries[i].update({"class": m.spec.classes[top[0]], "probability": float(p[top[0]]),
                           "top": [[m.spec.classes[k], float(p[k])] for k in top]})
        if args.show:
            files.atomic_write(Path(args.show) / f"{i:04d}_{paths[i].stem}.png", _png(image))
    result = {"model": args.model, "preprocess": kind, "predictions": entries}
    emit(args, result, tables.predictions(result))
    failed = [e for e in entries if "error" in e]
    if failed:
        raise MnistjaxError(f"{len(failed)} of {len(entries)} images could not be predicted (first: {failed[0]['file']})")


def _png(image) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.asarray(image) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def cmd_interpret(args):
    from mnistjax import interpret, reports, saved, tables
    from mnistjax.training import predict

    m = saved.load_model(args.model, args.trust_code)
    cfg = m.info.get("config", {})
    given = "dataset" in vars(args) or "data_dir" in vars(args)
    ds = load_data(args) if given else load_data(args, cfg.get("dataset", "auto"), cfg.get("data_dir"), cfg.get("class_names"))
    missing = [c for c in m.spec.classes if c not in ds.classes]
    if missing:
        raise MnistjaxError(f"{missing[0]!r} is a class of the model that these data ({ds.name}) do not have; expected "
                            f"data with its classes {', '.join(m.spec.classes)}", param="data_dir")
    p = reports.prepare(ds, tuple(ds.classes.index(c) for c in m.spec.classes))  # by id: a name may hold a comma
    logits = predict(m.params, m.model_state, p.data.x_valid, m.model)
    i = interpret.interpret(logits, p.data.y_valid, m.task, m.spec.classes)
    result = {"model": args.model, "dataset": ds.name, **interpret.summary(i, args.top_losses, args.min_count)}
    _save_figures(args.figures, lambda plots: plots.interpretation_figures(result, p.data.x_valid))
    emit(args, result, tables.interpretation(result))


def cmd_lr_find(args):
    from mnistjax import reports, tables

    cfg, p = prepared_run(args)
    report = reports.lr_find(cfg, p, args.start_lr, args.end_lr, args.num_it)
    _save_figures(args.figures, lambda plots: {"lr_find": plots.lr_find_figure(report.summary)})
    emit(args, report.summary, tables.lr_find(report.summary))


def build_parser() -> argparse.ArgumentParser:
    from mnistjax.distances import DISTANCES

    common = _common()
    parser = _Parser(prog="mnistjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, func: Callable, help: str, parent=sub, reads_data: bool = False) -> argparse.ArgumentParser:
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        if reads_data:
            _data_options(p)
        return p

    p = add("run", cmd_run, "the chapter end to end on 3 vs 7: each step, our accuracy beside the book's", reads_data=True)
    p.add_argument("--figures", metavar="DIR", help="write the figures of every step here (PNG)")
    p = add("sgd", cmd_sgd, "gradient descent from first principles: x², learning rates, the roller coaster")
    p.add_argument("--steps", type=int, default=10, help="SGD steps to print, as in the book (default 10)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5, the book's)")
    p.add_argument("--seed", type=int, default=42, help="PRNG seed for the noise and the initial params")
    p.add_argument("--figures", metavar="DIR", help="write every figure of the section here (PNG)")
    p = add("train", cmd_train, "train a classifier with SGD, one compiled call per epoch (a recipe, a config file, flags)",
            reads_data=True)
    _run_options(p)
    out = p.add_argument_group("outputs")
    out.add_argument("--figures", metavar="DIR", help="write loss/accuracy curves, confusion matrix, top_wrong.png")
    out.add_argument("--log", metavar="FILE", help="append one record per epoch as the run goes (.jsonl, or .csv; "
                     "a folder, a link or a device such as /dev/null is refused before training)")
    out.add_argument("--save", metavar="FILE", help="save the trained model here (safetensors; mnistjax predict reads it); "
                     "an existing file is replaced whole, a folder, a link or a device is refused before training")
    out.add_argument("--show-config", action="store_true", help="print the run's settings as JSON (for --config) and stop")
    p = add("lr-find", cmd_lr_find, "the learning-rate range test: a rate growing exponentially over at most one epoch; "
            "suggestions as fastai makes them (one run per --seeds, in one vmapped call)", reads_data=True)
    _run_options(p)
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--num-it", type=int, default=100, help="steps (at most one epoch of full batches)")
    p.add_argument("--figures", metavar="DIR", help="write lr_find.png here")
    p = add("predict", cmd_predict, "classify your own images with a saved model (PNG or JPEG, any size, dark ink on "
            "light paper or light on dark: brought to the model's input as its training data need); exit code 2 if "
            "any image could not be read")
    p.add_argument("model", help="a model saved by mnistjax train --save")
    p.add_argument("images", nargs="+", help="image files, or folders of them")
    p.add_argument("--preprocess", choices=["auto", "mnist", "resize"], default="auto",
                   help="how a picture becomes the model's input. mnist: as MNIST's digits were made (the ink cropped, "
                        "fitted to 20x20, centred by its centre of mass in 28x28); resize: only brought to the training "
                        "images' size and polarity; auto (default): what the model's training data need, as saved "
                        "with it (mnist for MNIST and its samples, resize for other data)")
    _trust_option(p)
    p.add_argument("--top", type=int, default=3, help="how many classes to list per image (default 3)")
    p.add_argument("--show", metavar="DIR", help="write the 28x28 images the model saw here (PNG)")
    p = add("interpret", cmd_interpret, "what a saved model gets wrong on validation data (by default the data it was "
            "trained on): confusion, most confused pairs, top losses, precision and recall", reads_data=True)
    p.add_argument("model", help="a model saved by mnistjax train --save")
    _trust_option(p)
    p.add_argument("--top-losses", type=int, default=9, metavar="K", help="how many of the worst images (default 9)")
    p.add_argument("--min-count", type=int, default=1, metavar="N", help="most confused pairs seen at least N times")
    p.add_argument("--figures", metavar="DIR", help="write confusion.png and top_losses.png here")
    add("recipes", cmd_recipes, "the named recipes, one line each (mnistjax train --recipe NAME)")
    p = add("baseline", cmd_baseline, "pixel similarity: nearest mean image, per-class and balanced accuracy", reads_data=True)
    p.add_argument("--classes", default="3,7", help="'all' or a comma list of classes (default 3,7)")
    p.add_argument("--distance", choices=list(DISTANCES), default="l1", help="distance to the mean images")
    p.add_argument("--figures", metavar="DIR", help="write prototypes.png, pixels.png, confusion.png here")
    p = add("knn", cmd_knn, "k-nearest neighbours: each test image takes the class of its nearest training images",
            reads_data=True)
    p.add_argument("--k", type=int, default=1, help="neighbours that vote (default 1)")
    p.add_argument("--distance", choices=["l2", "cosine", "l1"], default="l2",
                   help="l2 and cosine through one matrix multiply per chunk (l2 re-ranked exactly); l1 pair by pair")
    p.add_argument("--weighted", action="store_true", help="votes weighted by 1/distance")
    p.add_argument("--deskew", action="store_true", help="straighten slanted digits first (LeCun's table: 2.4 %% error)")
    p.add_argument("--classes", default="all", help="'all' (default) or a comma list of classes")
    data_cmd = sub.add_parser("data", help="download and inspect the data")
    data_sub = data_cmd.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    _source_options(add("fetch", cmd_data_fetch, "download MNIST into the cache from the mirrors, verifying SHA-256", data_sub))
    add("info", cmd_data_info, "where the data comes from, counts per split and class, and whether hashes verified",
        data_sub, reads_data=True)
    return parser


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


def _start_loading(argv: list[str]):
    """For a command that reads data already here, start loading what its options name, before JAX is
    imported (zlib and hashlib release the GIL, so both go on at once). JAX-free: only the
    data options and the recipe or config file they may come from are read here. Returns
    (request, future) or None."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not words or words[-1] not in READS_DATA or (words[0] == "data") != (words[-1] == "info"):
        return None
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name in ("--data-dir", "--dataset", "--cache-dir", "--recipe", "--config"):
        p.add_argument(name)
    p.add_argument("--mirror", action="append")
    p.add_argument("--json", action="store_true")
    p.add_argument("--trust-code", action="store_true")
    known = p.parse_known_args(argv)[0]
    try:
        given = {k: v for k, v in (("dataset", known.dataset), ("data_dir", known.data_dir)) if v is not None}
        s = mconfig.settings(known.recipe, known.config, given, known.trust_code) if words[-1] in ("train", "lr-find") else given
    except MnistjaxError:
        return None  # the full parse reports it
    request = (s.get("dataset", "auto"), s.get("data_dir"), known.cache_dir, tuple(known.mirror or ()))
    if not is_local(*request[:3]):
        return None  # a download: only once the command line is known to be right (its progress and errors show)
    return request, _in_background(data.load, request[0], request[1], known.cache_dir, known.mirror, progress=not known.json)


def use_compile_cache(args: argparse.Namespace) -> Path | None:
    """Point JAX's persistent compilation cache at a folder, so a second run skips XLA compiles.
    A folder that cannot be written is a one-line note, and the run compiles without it."""
    if args.no_compile_cache or args.func in (cmd_recipes, cmd_data_info, cmd_data_fetch):  # those that compile nothing
        return None
    import jax

    folder = Path(args.compile_cache or os.environ.get("MNISTJAX_COMPILE_CACHE")
                  or data.cache_dir(vars(args).get("cache_dir")) / "xla")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        print(f"mnistjax: note: no compilation cache ({folder}: {e.strerror or e}); compiling afresh", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


@contextmanager
def _compile_cache_trouble(folder: Path | None):
    """JAX warns of each cache entry it cannot read or write, on every run (it never replaces an entry):
    gather those into one note, and remove the unreadable entries so that this run's compiles replace them."""
    if folder is None:
        yield
        return
    trouble, show = {}, warnings.showwarning

    def hook(message, category, filename, lineno, file=None, line=None):
        m = re.match(r"Error (reading|writing) persistent compilation cache entry for '([^']+)'", str(message))
        if m:
            trouble.setdefault(m[1], set()).add(m[2])
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = hook
    try:
        yield
    finally:
        warnings.showwarning = show
        for name in trouble.get("reading", ()):
            for entry in folder.glob(f"{glob.escape(name)}-*"):
                entry.unlink(missing_ok=True)
        if trouble:
            print(f"mnistjax: note: the compilation cache {folder} had entries it could not "
                  f"{' or '.join({'reading': 'read', 'writing': 'write'}[w] for w in trouble)} "
                  f"({len(set().union(*trouble.values()))} programs); "
                  "they were compiled afresh",
                  file=sys.stderr)


def _message(e: MnistjaxError) -> str:
    return f"{flag(e.param)}: {e.message}" if e.param else str(e)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding cannot show is escaped, not an error
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        loading = _start_loading(argv)
        args = build_parser().parse_args(argv)
        args.loading = loading
        if sys.stdout is None:  # started with stdout closed (>&-): the result would be lost in silence
            raise MnistjaxError("standard output is closed; expected somewhere to print the result (a file, a pipe)")
        for name in ("figures", "show"):  # every output folder is checked before any work starts
            if vars(args).get(name):
                files.writable_dir(vars(args)[name], name, ".png")
        with _compile_cache_trouble(use_compile_cache(args)):
            args.func(args)
        # What is alive now lives until exit: keep the garbage collector's passes at interpreter exit from
        # walking it all (JAX's objects, a noticeable part of a short command).
        gc.freeze()
        return 0
    except MnistjaxError as e:
        print(f"mnistjax: error: {printable(' '.join(_message(e).split()))}", file=sys.stderr)
        return 3 if isinstance(e, TrainingDiverged) else 2
    except BrokenPipeError:  # stdout closed early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("mnistjax: error: out of memory; expected a smaller model, batch or data", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        from tqdm import tqdm

        tqdm.write("mnistjax: interrupted", file=sys.stderr)  # on a line of its own, whatever bar is showing
        return 130
    except Exception as e:  # a bug of ours: still one line, the traceback on request
        if "RESOURCE_EXHAUSTED" in str(e):  # XLA could not allocate: the machine's limit, not a bug
            print(f"mnistjax: error: out of memory ({' '.join(str(e).split())[:160]}); expected a smaller model, "
                  "batch or data", file=sys.stderr)
            return 2
        if os.environ.get("MNISTJAX_DEBUG"):
            traceback.print_exc()
        print(f"mnistjax: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              "(set MNISTJAX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def console() -> None:
    """The ``mnistjax`` entry point. After Ctrl-C it exits at once, without waiting for work still
    running in threads (XLA computations cannot be cancelled). SIGTERM unwinds like an exception,
    so a file being written is cleaned up (its temp file removed, the old file intact)."""
    signal.signal(signal.SIGTERM, _terminate)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if code == 130:
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    console()
