"""The ``mnistjax`` command: one subcommand per step of the chapter, each a thin layer over the library.

Every subcommand prints a human table or (``--json``) exactly one JSON object on stdout (strict JSON:
a non-finite number is null), logs and progress on stderr, and on bad input prints one line
``mnistjax: error: ...`` and exits 2 (a training loss that goes non-finite: exit 3).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from mnistjax import background, config, data, files, processes
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.files import strict_json
from mnistjax.parser import build_parser, flag, overrides
from mnistjax.tables import printable


MAX_RESULT_BYTES = 1 << 30  # a sweep's JSON result: every run's history, per-step losses included


def run_config(args: argparse.Namespace) -> tuple[config.RunConfig, bool]:
    """The command line's RunConfig (the recipe, then the config file, then the flags), and whether
    any of them names the classes (see ``prepared_run``)."""
    s = config.settings(vars(args).get("recipe"), vars(args).get("config"), overrides(args), args.trust_code)
    return config.RunConfig(**s), "classes" in s


def sweep_of(args: argparse.Namespace) -> dict[str, list]:
    """{KEY: values} of the --sweep flags (--lrs is --sweep lr=)."""
    pairs = list(vars(args).get("sweep", [])) + ([("lr", list(args.lrs))] if "lrs" in vars(args) else [])
    keys = [k for k, _ in pairs]
    repeated = [k for k in keys if keys.count(k) > 1]
    if repeated:
        raise MnistjaxError(f"{repeated[0]} is swept twice; expected each KEY once (--lrs is --sweep lr=)", param="sweep")
    return dict(pairs)


def prepared_run(args: argparse.Namespace, cfg: config.RunConfig, classes_given: bool):
    """``cfg`` and its data, prepared (``experiment.prepare``). Data that are not MNIST train on all
    their classes unless a recipe, the config file or --classes names some: the default 3,7 is MNIST's."""
    import dataclasses

    from mnistjax import experiment

    ds = load_data(args, cfg.dataset, cfg.data_dir, cfg.class_names)
    if not classes_given and not ds.is_mnist:
        cfg = dataclasses.replace(cfg, classes="all")
    return cfg, experiment.prepare(ds, cfg.classes)


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
    """``text`` on stdout, flushed: a full disk there is a one-line error, not a traceback at exit.
    Of several processes only process 0 prints (``processes.result_stream``)."""
    stream = processes.result_stream()
    if stream is None:
        return
    try:
        print(text, file=stream, flush=True)
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

    r = {"recipes": config.recipes()}
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
    from mnistjax import experiment, tables

    several = processes.start(args.coordinator, args.num_processes, args.process_id, args.distributed == "auto",
                              args.distributed_timeout)
    cfg, classes_given = run_config(args)
    if args.show_config:
        print_result(json.dumps(cfg.to_dict(), indent=1))
        return
    sweep = sweep_of(args)
    if cfg.n_models > 1 or sweep:
        for name, what in (("figures", "draws one model's figures"), ("save", "saves one model")):
            if vars(args).get(name):
                raise MnistjaxError(f"{what}; with several seeds or a sweep, drop --{name}", param=name)
    if args.resume and not cfg.checkpoint_dir:
        raise MnistjaxError("needs --checkpoint-dir (where the checkpoint is)", param="resume")
    if cfg.checkpoint_dir:
        files.writable_dir(cfg.checkpoint_dir, "checkpoint_dir")
    if args.save:
        files.output_file(args.save, "save")
    if several:  # every process's devices; the same command in each; files from process 0 alone
        cfg = processes.across(cfg, {"config": cfg.to_dict(), "sweep": sweep, "shard": args.shard})
        for name in ("log", "tensorboard", "figures", "save") if not processes.is_main() else ():
            setattr(args, name, None)
    logs = [files.open_log(args.log, append=args.log_append, swept=tuple(sweep))] if args.log else []
    if args.tensorboard:
        from mnistjax.tblog import TensorBoardLog

        logs.append(TensorBoardLog(args.tensorboard))
    cfg, p = prepared_run(args, cfg, classes_given)
    try:
        report = experiment.train(cfg, p, sweep, resume=args.resume, logs=logs, progress=not args.json, shard=args.shard)
    except TrainingDiverged as e:
        emit(args, e.result, tables.training(e.result))
        raise
    finally:
        for log in logs:
            log.close()
    _save_figures(args.figures, lambda plots: plots.training_figures(report))
    if args.save:
        from mnistjax import saved

        try:
            report.summary["saved"] = str(saved.save_training(args.save, report))
        except MnistjaxError:  # a full disk, say: the result is still printed, then the one-line error
            emit(args, report.summary, tables.training(report.summary))
            raise
    emit(args, report.summary, tables.training(report.summary) + (f"\nsaved to {args.save}" if args.save else ""))
    if several:
        processes.finish()


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
    from mnistjax import experiment, interpret, saved, tables
    from mnistjax.training import predict

    m = saved.load_model(args.model, args.trust_code)
    cfg = m.info.get("config", {})
    given = "dataset" in vars(args) or "data_dir" in vars(args)
    ds = load_data(args) if given else load_data(args, cfg.get("dataset", "auto"), cfg.get("data_dir"), cfg.get("class_names"))
    missing = [c for c in m.spec.classes if c not in ds.classes]
    if missing:
        raise MnistjaxError(f"{missing[0]!r} is a class of the model that these data ({ds.name}) do not have; expected "
                            f"data with its classes {', '.join(m.spec.classes)}", param="data_dir")
    p = experiment.prepare(ds, tuple(ds.classes.index(c) for c in m.spec.classes))  # by id: a name may hold a comma
    logits = predict(m.params, m.model_state, p.data.x_valid, m.model)
    i = interpret.interpret(logits, p.data.y_valid, m.task, m.spec.classes)
    result = {"model": args.model, "dataset": ds.name, **interpret.summary(i, args.top_losses, args.min_count)}
    _save_figures(args.figures, lambda plots: plots.interpretation_figures(result, p.data.x_valid))
    emit(args, result, tables.interpretation(result))


def cmd_collect(args):
    from mnistjax import experiment, tables

    results = [files.read_table(path, "a result of mnistjax train --shard I/N --json", "results", MAX_RESULT_BYTES)
               for path in args.results]
    summary = experiment.collect(results)
    emit(args, summary, tables.training(summary))


def cmd_lr_find(args):
    from mnistjax import experiment, tables

    cfg, p = prepared_run(args, *run_config(args))
    report = experiment.lr_find(cfg, p, args.start_lr, args.end_lr, args.num_it, sweep_of(args))
    _save_figures(args.figures, lambda plots: {"lr_find": plots.lr_find_figure(report.summary)})
    emit(args, report.summary, tables.lr_find(report.summary))


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "run": cmd_run, "sgd": cmd_sgd, "baseline": cmd_baseline, "knn": cmd_knn, "train": cmd_train,
    "lr-find": cmd_lr_find, "collect": cmd_collect, "predict": cmd_predict, "interpret": cmd_interpret, "recipes": cmd_recipes,
    "fetch": cmd_data_fetch, "info": cmd_data_info}


def _message(e: MnistjaxError) -> str:
    return f"{flag(e.param)}: {e.message}" if e.param else str(e)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a name the terminal's encoding cannot show is escaped, not an error
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        loading = background.start_loading(argv)
        background.import_jax()  # the parser imports it; here, safe from Ctrl-C
        args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
        args.loading = loading  # a field every command's parser declares (set_defaults)
        if sys.stdout is None:  # started with stdout closed (>&-): the result would be lost in silence
            raise MnistjaxError("standard output is closed; expected somewhere to print the result (a file, a pipe)")
        for name in ("figures", "show"):  # every output folder is checked before any work starts
            if vars(args).get(name):
                files.writable_dir(vars(args)[name], name, ".png")
        with background.compile_cache_trouble(background.use_compile_cache(args)):
            COMMANDS[args.command](args)
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

        tqdm.write(background.INTERRUPTED, file=sys.stderr)  # on a line of its own, whatever bar is showing
        return 130
    except Exception as e:  # a bug of ours: still one line, the traceback on request
        if processes.joined() and "Gloo" in str(e):  # a collective whose other end went away
            print(f"mnistjax: error: another process of the run stopped ({' '.join(str(e).split())[-80:]}); "
                  "this one stops too", file=sys.stderr)
            return 2
        if "RESOURCE_EXHAUSTED" in str(e):  # XLA could not allocate: the machine's limit, not a bug
            print(f"mnistjax: error: out of memory ({' '.join(str(e).split())[:160]}); expected a smaller model, "
                  "batch or data", file=sys.stderr)
            return 2
        if os.environ.get("MNISTJAX_DEBUG"):
            traceback.print_exc()
        print(f"mnistjax: internal error: {type(e).__name__}: {' '.join(str(e).split())} "
              "(set MNISTJAX_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def console() -> None:
    """The ``mnistjax`` entry point. After Ctrl-C it exits at once, without waiting for work still
    running in threads (XLA computations cannot be cancelled). SIGTERM unwinds like an exception,
    so a file being written is cleaned up (its temp file removed, the old file intact)."""
    background.handle_signals()
    code = main()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    if code == 130 or processes.unfinished():  # one of several processes that failed: the others may be gone
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console()
