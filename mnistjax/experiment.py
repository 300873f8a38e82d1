"""Running a RunConfig: its data prepared, its Learner built, ``training.fit``, and the result as a
JSON-ready report. The way down from a configuration to a trained model:

    cfg = config.recipe("simple_net")
    report = experiment.train(cfg, experiment.prepare(data.load(), cfg.classes))
    report.summary["valid_accuracy"]
"""

from __future__ import annotations

import hashlib
import statistics
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mnistjax import augment, checkpoint, data, losses, lr_finder, metrics, models, optimizers, sweeps
from mnistjax.config import RunConfig
from mnistjax.data import Data, data_from
from mnistjax.errors import MnistjaxError, TrainingDiverged
from mnistjax.mesh import data_parallel, spread_runs, to_host
from mnistjax.training import FitResult, Learner, TrainState, begin, fit, init, init_many, predict, train_step

# The book's validation accuracy on MNIST_SAMPLE (3 vs 7) by model; its deeper model is a fine-tuned resnet18.
BOOK_TRAINING = {"linear": 0.9785, "simple_net": 0.9828, "cnn": 0.9971, "resnet": 0.9971}


def rounded(x) -> float:
    """A number for a JSON summary: a float to 6 decimals."""
    return round(float(x), 6)


def finite_floats(xs) -> list[float | None]:
    """A JSON-safe list: non-finite values (a diverged run) become null."""
    return [float(x) if np.isfinite(x) else None for x in np.asarray(xs, float).ravel()]


class Prepared(NamedTuple):
    """A class subset of a dataset, ready to train on: the arrays on the device and what they are."""

    data: Data
    sample: data.Sample          # the same images and labels on the host (uint8)
    names: tuple[str, ...]       # class names, in class-index order
    dataset: str                 # the dataset's name ("mnist", "tiny", "custom", ...)
    book: bool                   # MNIST's 3 vs 7, where the book's numbers apply


def prepare(ds: data.Dataset, classes: str | tuple[int, ...]) -> Prepared:
    """The classes (a RunConfig's "3,7"/"all", or ids) of ``ds`` on the device, for ``train``."""
    ids = data.parse_classes(classes, ds.classes) if isinstance(classes, str) else tuple(classes)
    sample = data.mnist_sample(ds, ids)
    return Prepared(data_from(sample), sample, tuple(ds.classes[c] for c in ids), ds.name,
                    ds.is_mnist and ids == (3, 7))


def data_id(p: Prepared) -> str:
    """A hash of the images and labels a run trains and validates on: what a checkpoint is of."""
    return hashlib.sha256((p.sample.train.sha256() + p.sample.valid.sha256()).encode()).hexdigest()


def learner(config: RunConfig, p: Prepared, traced: tuple[str, ...] = (), n_models: int = 1) -> Learner:
    """The Learner a RunConfig describes, for these data (the schedule's length depends on their size).
    ``traced``: the sweep's keys (``sweeps``) whose values each model takes from its TrainState
    (``Learner.vary``). ``n_models``: how many train together (``config.devices`` then spreads them)."""
    lrn = _learner(config, p, {})
    side = min(p.data.x_train.shape[1:3])
    if config.augment >= side:  # a shift as large as the image leaves nothing of it
        raise MnistjaxError(f"{config.augment}: expected fewer pixels than the images' {side}", param="augment")
    devices = None if config.devices is None else (len(jax.devices()) if config.devices == "all" else config.devices)
    mesh = None if not devices else data_parallel(devices) if n_models == 1 else spread_runs(min(devices, n_models))
    return lrn._replace(mesh=mesh, vary=partial(_learner, config, p) if traced else None)


def _learner(config: RunConfig, p: Prepared, hyper: dict) -> Learner:
    """The Learner of ``config`` with ``hyper``'s values ({KEY: array}, traced in a sweep's program) in
    place of the config's own."""
    def args(table: str) -> dict:
        return {**getattr(config, sweeps.TABLES[table]),
                **{k.partition(".")[2]: v for k, v in hyper.items() if k.startswith(table + ".")}}

    task = losses.task(config.loss, len(p.names), **args("loss"))
    model = models.build(config.model, task.n_out, **args("model"))
    steps = optimizers.total_steps(int(p.data.x_train.shape[0]), config.batch_size, config.epochs, config.drop_last)
    rate = optimizers.schedule(config.schedule, hyper.get("lr", config.lr), steps, **args("schedule"))
    optimizer = optimizers.optimizer(config.opt, rate, **args("opt"))
    augments = [augment.random_shift(config.augment)] if config.augment else []
    if config.rotate or config.zoom:
        augments.append(augment.random_affine(hyper.get("rotate", config.rotate), hyper.get("zoom", config.zoom)))
    return Learner(model, task, optimizer, config.batch_size, config.shuffle, config.drop_last,
                   augment.compose(*augments) if len(augments) > 1 else augments[0] if augments else None,
                   None, hyper.get("ema", config.ema), config.same_batches)


def run_keys(config: RunConfig) -> jax.Array:
    """The key of each model: one per seed; a single key for a single model."""
    if config.n_models == 1:
        return jax.random.key(config.seeds[0])
    return jnp.stack([jax.random.key(s) for s in config.seeds])


def traceable(config: RunConfig, p: Prepared, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The sweep keys whose values the code that uses them takes as traced arrays (init and one
    training step are traced, nothing is computed); the others split the sweep into programs (a
    schedule that turns its argument into a step count, a plug-in model that branches on it)."""
    x, y = p.data.x_train[:2], p.data.y_train[:2]
    lrn = learner(config, p, keys)

    def step(h):  # one model of a sweep: its init and a step with its values
        ts = jax.tree.map(lambda a: a[0], init_many(lrn, jnp.stack([jax.random.key(0)]), h))
        return train_step(ts, x, y, lrn.vary(ts.hyper), jax.random.key(1))

    ok = []
    for key in keys:
        try:
            jax.eval_shape(step, {key: jax.ShapeDtypeStruct((1,), jnp.float32)})
            ok.append(key)
        except Exception:  # noqa: BLE001 -- whatever tracing raises, this key's values need programs of their own
            pass
    return tuple(ok)


class Training(NamedTuple):
    summary: dict
    fit: FitResult        # the first program's (the only one but for a sweep that changes shapes)
    prepared: Prepared
    learner: Learner


class _Run(NamedTuple):
    index: int            # its place in the result's runs
    variant: sweeps.Variant
    seed: int


def train(config: RunConfig, p: Prepared, sweep: dict[str, list] | None = None, *, resume: bool = False, logs=(),
          progress: bool = True, shard: tuple[int, int] | None = None) -> Training:
    """Train what ``config`` describes on ``p`` (with ``sweep``, {KEY: values}: every combination of
    the values, each with every seed, see ``sweeps``) and report it: ``runs`` (each with its complete
    config, seed, history, accuracy), ``variants`` (mean ± std over the seeds), ``programs`` (compiled
    programs: one per group of runs of the same shapes), timings, the book's figure where it applies;
    for a single run also its per-class accuracy at the top.

    ``shard``: (I, N), train only the I-th of N shares of the runs (``sweeps.shard``; ``collect``
    merges the shares' results). ``resume``: continue from the checkpoint in ``config.checkpoint_dir``
    (one program only). ``logs``: ``files.RunLog`` and ``tblog.TensorBoardLog``, each given a record
    per run and epoch. Raises TrainingDiverged (its report in ``.result``) when a training loss goes
    non-finite.
    """
    sweep = dict(sweep or {})
    variants = _buildable(sweeps.expand(config, sweep), p)
    traced = traceable(variants[0].config, p, sweeps.traced_keys(sweep)) if len(variants) > 1 else ()
    plan = sweeps.groups(variants, traced)
    runs = [_Run(i * len(config.seeds) + j, v, seed) for i, v in enumerate(variants) for j, seed in enumerate(config.seeds)]
    by_group = [[r for r in runs if r.index // len(config.seeds) in group] for group in plan]
    if shard:
        by_group = sweeps.shard(by_group, *shard)
    if config.checkpoint_dir and len(by_group) > 1:
        raise MnistjaxError(f"holds one compiled program's runs; this sweep needs {len(by_group)} (it changes "
                            f"{', '.join(k for k in sweep if k not in traced)}); drop --checkpoint-dir or sweep those apart",
                            param="checkpoint_dir")
    done = [_train_group(group, config, sweep, traced, p, resume, logs, progress) for group in by_group]
    records = sorted((rec for recs, _ in done for rec in recs), key=lambda rec: rec["run"])
    summary = {"config": config.to_dict(), **({"sweep": sweep} if sweep else {}), "programs": len(plan),
               **({"shard": {"index": shard[0], "count": shard[1], "programs": len(by_group), "runs": len(runs)}}
                  if shard else {}),
               "dataset": p.dataset, "classes": list(p.names), "n_train": int(p.data.x_train.shape[0]),
               "n_valid": int(p.data.x_valid.shape[0]), "runs": records, "variants": variants_of(records, len(config.seeds)),
               "compile_seconds": round(sum(f.compile_seconds for _, (f, _) in done), 3),
               "train_seconds": round(sum(f.train_seconds for _, (f, _) in done), 3),
               "book": BOOK_TRAINING.get(config.model) if p.book and not sweep else None}
    first, lrn = done[0][1] if done else (None, None)
    if len(runs) == 1 and first is not None:
        summary.update(_one_model(first, lrn, p))
    elif len(variants) == 1 and records:
        summary.update(_spread(records))
    report = Training(summary, first, p, lrn)
    if any(rec["diverged_at"] is not None for rec in records):
        raise _diverged(report, config)
    return report


def _buildable(variants: list[sweeps.Variant], p: Prepared) -> list[sweeps.Variant]:
    """``variants``, once each one's learner is built: their errors before any training."""
    for v in variants:
        try:
            _learner(v.config, p, {})
        except MnistjaxError as e:
            if not v.values:  # no sweep: the flag's own error
                raise
            shown = ", ".join(f"{k}={x}" for k, x in v.values.items())
            raise MnistjaxError(f"{shown}: {e.message}", param="sweep") from None
    return variants


def _train_group(group: list[_Run], config: RunConfig, sweep: dict, traced: tuple[str, ...], p: Prepared,
                 resume: bool, logs, progress: bool):
    """One compiled program: the group's runs in one vmapped call (a single run alone). Returns (a
    record per run, (FitResult, Learner))."""
    rep = group[0].variant.config
    many = len(group) > 1  # a group of one run trains alone, as its config would
    lrn = learner(rep, p, traced, len(group) if many else 1)
    pad = -len(group) % (lrn.mesh.size if lrn.mesh is not None and many else 1)  # equal shares for the devices
    padded = group + [group[-1]] * pad
    key = jnp.stack([jax.random.key(r.seed) for r in padded]) if many else jax.random.key(group[0].seed)
    hyper = {k: [sweeps.value(r.variant.config, k) for r in padded] for k in traced} if many else {}
    start = init_many(lrn, key, hyper) if hyper else None
    cfg = {**rep.to_dict(), **({"sweep": sweep} if sweep else {})}
    ident = data_id(p) if config.checkpoint_dir else None
    history = []

    def on_epoch(epoch: int, ts: TrainState, history: list) -> None:
        for log in logs:
            log.write([(_run_id(run), _own(history[-1], i, many)) for i, run in enumerate(group)])
        if config.checkpoint_dir and (epoch % config.checkpoint_every == 0 or epoch == config.epochs):
            state = to_host(ts)  # in every process: gathered where the runs are spread over several
            if jax.process_index() == 0:  # which alone writes (resuming, each reads it: a folder they share)
                checkpoint.save(config.checkpoint_dir, state, history, cfg, ident)

    with checkpoint.held(config.checkpoint_dir) if config.checkpoint_dir and jax.process_index() == 0 else nullcontext():
        if config.checkpoint_dir and resume:
            template = begin(lrn, key, start)[0]
            start, history = checkpoint.load(config.checkpoint_dir, template, cfg, ident)
        r = fit(lrn, p.data, rep.epochs, key, start=start, history=history, progress=progress, on_epoch=on_epoch)
    diverged = r.diverged_at if many else [r.diverged_at]
    records = []
    for i, run in enumerate(group):
        history = [_own(row, i, many) for row in r.history]
        alone = replace(run.variant.config, seeds=(run.seed,), devices=None, checkpoint_dir=None)
        records.append({"run": run.index, "seed": run.seed, "values": run.variant.values, "config": alone.to_dict(),
                        "valid_accuracy": history[-1]["valid_accuracy"] if history else None,
                        "diverged_at": diverged[i], "history": history})
    return records, (r, lrn)


def _own(row: dict, i: int, many: bool) -> dict:
    """Model ``i``'s own history row from a row of several models' (each number a list), or the row."""
    return {k: v if k == "epoch" else v[i] for k, v in row.items()} if many else row


def _run_id(run: _Run) -> dict:
    """The columns that name a run in a log: its index, seed and swept values."""
    return {"run": run.index, "seed": run.seed, **run.variant.values}


def _spread(records: list[dict]) -> dict:
    """Mean and population std of the runs' final accuracies (the diverged left out), and how many."""
    accs = [r["valid_accuracy"] for r in records if r["valid_accuracy"] is not None and np.isfinite(r["valid_accuracy"])
            and r["diverged_at"] is None]
    return {"valid_accuracy_mean": statistics.mean(accs) if accs else None,
            "valid_accuracy_std": statistics.pstdev(accs) if accs else None, "n": len(accs)}


def variants_of(records: list[dict], n_seeds: int) -> list[dict]:
    """Per variant (runs ``n_seeds`` apart in the run order) among ``records``: its values and spread."""
    by: dict[int, list[dict]] = {}
    for r in records:
        by.setdefault(r["run"] // n_seeds, []).append(r)
    return [{"values": rs[0]["values"], **_spread(rs)} for _, rs in sorted(by.items())]


def collect(results: list[dict]) -> dict:
    """The whole sweep's result from its shards' (``train(..., shard=(i, n))``, given in any order):
    the same as the sweep trained unsharded, timings summed. Raises MnistjaxError naming what is
    missing, doubled or of another sweep."""
    first = results[0]
    if any("shard" not in r for r in results):
        raise MnistjaxError("expected results of train --shard I/N (a shard's JSON)", param="results")
    same = ("config", "sweep", "dataset", "classes", "n_train", "n_valid")
    other = next((i for i, r in enumerate(results) if any(r.get(k) != first.get(k) for k in same)
                  or r["shard"]["count"] != first["shard"]["count"]), None)
    if other is not None:
        raise MnistjaxError(f"result {other + 1} is of another sweep or data than result 1", param="results")
    count, seen = first["shard"]["count"], sorted(r["shard"]["index"] for r in results)
    if seen != list(range(count)):
        raise MnistjaxError(f"shards {seen} of {count}; expected each of 0 to {count - 1} once", param="results")
    records = sorted((run for r in results for run in r["runs"]), key=lambda run: run["run"])
    if [run["run"] for run in records] != list(range(first["shard"]["runs"])):
        raise MnistjaxError(f"{len(records)} runs; expected runs 0 to {first['shard']['runs'] - 1} once each", param="results")
    n_seeds = len(first["config"]["seeds"])
    summary = {**{k: first[k] for k in ("config", "sweep") if k in first}, "programs": first["programs"],
               **{k: first[k] for k in ("dataset", "classes", "n_train", "n_valid")}, "runs": records,
               "variants": variants_of(records, n_seeds),
               **{k: round(sum(r[k] for r in results), 3) for k in ("compile_seconds", "train_seconds")},
               "book": first["book"]}
    return {**summary, **(_spread(records) if len(summary["variants"]) == 1 and len(records) > 1 else {})}


def _one_model(r: FitResult, lrn: Learner, p: Prepared) -> dict:
    logits = r.valid_logits if r.valid_logits is not None else predict(r.state.eval_params, r.state.model_state, p.data.x_valid, lrn.model)
    per_class = np.asarray(_per_class(logits, p.data.y_valid, lrn.task.predict, len(p.names)))
    return {"valid_accuracy": r.history[-1]["valid_accuracy"] if r.history else None,
            "per_class_accuracy": {n: rounded(a) for n, a in zip(p.names, per_class)},
            "history": r.history, "diverged_at": r.diverged_at}


@partial(jax.jit, static_argnames=("predict", "n_classes"))
def _per_class(logits, labels, predict, n_classes: int):
    """The accuracy per class, in one compiled call (not an eager op each)."""
    return metrics.per_class_accuracy(predict(logits), labels, n_classes)


def _finite_from_the_start(report: Training, config: RunConfig) -> bool:
    """Whether the initial model's logits on the first training images are finite (asked only after a
    run diverged in its first epoch: the model may be at fault, not the rate)."""
    start = init(report.learner, run_keys(config))
    x = report.prepared.data.x_train[:64]
    return bool(jnp.isfinite(predict(start.params, start.model_state, x, report.learner.model)).all())


def _named(run: dict) -> str:
    return ", ".join([f"{k}={v}" for k, v in run["values"].items()] + [f"seed {run['seed']}"])


def _diverged(report: Training, config: RunConfig) -> TrainingDiverged:
    s = report.summary
    if len(s["runs"]) > 1:
        bad = [f"{_named(run)} at epoch {run['diverged_at']}" for run in s["runs"] if run["diverged_at"]]
        err = TrainingDiverged(f"{len(bad)} of {len(s['runs'])} runs diverged (loss not finite): {'; '.join(bad)}; "
                               "try smaller learning rates")
    elif s["diverged_at"] == 1 and not _finite_from_the_start(report, config):
        err = TrainingDiverged("the model's outputs are not finite from the start, before any training step (NaN or "
                               "infinite logits from its init or apply); check the model, not the learning rate")
    else:
        at = s["diverged_at"]
        err = TrainingDiverged(f"training diverged at epoch {at} (loss not finite); kept the params of epoch {at - 1}; "
                               f"try a smaller learning rate than {config.lr}")
    err.result, err.report = s, report
    return err


# The learning-rate finder.

class LRFindReport(NamedTuple):
    summary: dict
    result: object   # lr_finder.LRFind


def lr_find(config: RunConfig, p: Prepared, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100,
            sweep: dict[str, list] | None = None) -> LRFindReport:
    """The range test for what ``config`` describes (its optimizer and arguments; the rate is the
    test's), one run per seed in one vmapped call; with ``sweep`` ({KEY: values} of other settings:
    the best rate depends on them), one test per variant. The summary: per variant (``variants``) its
    values, the lrs tried (at most one epoch's steps: the batch size matters), the losses (the mean
    over the seeds), each seed's losses with several, and the suggestions; the first variant's also
    at the top."""
    if not 0 < start_lr < end_lr:
        raise MnistjaxError(f"{start_lr} to {end_lr}: expected 0 < start < end", param="start_lr")
    if "lr" in (sweep or {}):
        raise MnistjaxError("lr-find tries the rates itself; expected a sweep of other settings", param="sweep")
    found = []
    for v in sweeps.expand(config, dict(sweep or {})):
        c = v.config
        make = partial(optimizers.optimizer, c.opt, **c.opt_args)
        r = lr_finder.lr_find(learner(c, p), p.data, run_keys(c), make, start_lr, end_lr, num_it)
        runs = np.atleast_2d(r.losses)
        found.append((r, {"values": v.values, "lrs": finite_floats(r.lrs), "losses": finite_floats(r.mean),
                          "suggestions": r.suggestions,
                          **({"runs": [finite_floats(run) for run in runs]} if len(runs) > 1 else {})}))
    summary = {"config": config.to_dict(), **({"sweep": sweep} if sweep else {}), "dataset": p.dataset,
               "classes": list(p.names), **{k: v for k, v in found[0][1].items() if k != "values"},
               "variants": [f for _, f in found]}
    return LRFindReport(summary, found[0][0])
