"""Every human-readable table mnistjax prints, each made from a report's JSON-ready summary."""

from __future__ import annotations

import json


def _num(v, width: int = 8, digits: int = 4) -> str:
    return f"{v:{width}.{digits}f}" if v is not None else f"{'—':>{width}}"


def counts(info: dict) -> str:
    """A dataset's classes and images per split (``Dataset.describe()``)."""
    lines = [f"dataset: {info['dataset']}  (verified: {info['verified']})", f"source:  {info['source']}",
             f"{'class':>8} " + " ".join(f"{c:>6}" for c in info["classes"]) + f" {'total':>7}"]
    for split, s in info["splits"].items():
        lines.append(f"{split:>8} " + " ".join(f"{n:>6}" for n in s["per_class"].values()) + f" {s['count']:>7}")
    return "\n".join(lines)


def data_info(info: dict) -> str:
    return counts(info) + "\n" + "\n".join(f"sha256 {n}: {h}" for n, h in info["sha256"].items())


def baseline(r: dict) -> str:
    """Pixel similarity: class, our accuracy, and the book's where it has one."""
    book = r.get("book", {}) if r["distance"] == "l1" else {}
    head = f"{'':>18} {'ours':>8}" + (f" {'book':>8}" if book else "")
    ref = (lambda v: " " + _num(v)) if book else (lambda v: "")  # noqa: E731
    lines = [f"pixel similarity ({r['distance']}) on {r['dataset']}: {r['n_valid']} validation images", head]
    lines += [f"{'accuracy ' + n:>18} {a:8.4f}{ref(book.get('per_class_accuracy', {}).get(n))}"
              for n, a in r["per_class_accuracy"].items()]
    lines.append(f"{'balanced':>18} {r['balanced_accuracy']:8.4f}{ref(book.get('balanced_accuracy'))}")
    lines.append(f"{'accuracy':>18} {r['accuracy']:8.4f}")
    lines += [f"{'a_3 ' + k:>18} {v:8.4f}{ref(book.get('a_3_distances', {}).get(k))}"
              for k, v in r.get("a_3_distances", {}).items()]
    return "\n".join(lines)


def knn(r: dict) -> str:
    how = ("distance-weighted votes" if r["weighted"] else "one vote each") + (", deskewed" if r["deskew"] else "")
    lines = [f"{r['k']}-nearest neighbours ({r['distance']}, {how}) on {r['dataset']}: {r['n_valid']} test images "
             f"among {r['n_train']}, {r['seconds']:.1f} s", f"{'':>12} {'ours':>8}" + (f" {'LeCun':>8}" if "lecun" in r else "")]
    lines += [f"{'accuracy ' + n:>12} {a:8.4f}" for n, a in r["per_class_accuracy"].items()]
    lines.append(f"{'accuracy':>12} {r['accuracy']:8.4f}" + (f" {r['lecun']:8.4f}" if "lecun" in r else ""))
    return "\n".join(lines)


def learning_rates(r: dict) -> str:
    lines = [f"x² from x={r['x0']}, {r['steps']} steps:"]
    lines += [f"  lr {c['lr']:<5} {c['name']:<9} final x {_num(c['x'][-1], 9)}{'  DIVERGED' if c['diverged'] else ''}"
              for c in r["runs"]]
    return "\n".join(lines)


def sgd_example(r: dict) -> str:
    lines = [f"roller coaster, seed {r['seed']}, SGD lr {r['lr']}: loss per step"
             + ("  -- DIVERGED: the loss grew or overflowed; try a smaller --lr" if r["diverged"] else "")]
    lines += [f"  step {i:>3}: {v:10.2f}" if v is not None else f"  step {i:>3}: diverged" for i, v in enumerate(r["losses"])]
    fmt = lambda ps: "(" + ", ".join("nan" if p is None else f"{p:.4f}" for p in ps) + ")"  # noqa: E731
    lines.append(f"params after {r['steps']} steps: {fmt(r['params'])}; least squares: {fmt(r['lstsq_params'])} "
                 f"(loss {r['lstsq_loss']:.3f})")
    lines += [f"  after {n:>6} steps: loss {v['loss']:9.3f} = {v['loss_over_lstsq']:7.2f} x least squares"
              for n, v in r["after_steps"].items()]
    lines.append("steps to come within 1% of the least-squares loss:")
    lines += [f"  {k:<36} {'not within the run' if v is None else v}" for k, v in r["steps_to_within_1pct_of_lstsq"].items()]
    sweep = r["lr_sweep"]
    ok = [lr for lr, d in zip(sweep["lrs"], sweep["diverged"]) if not d]
    lines.append(f"learning-rate sweep ({len(sweep['lrs'])} rates in one vmap): stable up to lr {max(ok):.2e}, diverges above")
    return "\n".join(lines)


def _run_line(r: dict) -> str:
    c, swept = r["config"], r.get("sweep", {})

    def show(key: str, fmt: str = "") -> str:  # "swept" where the sweep varies the base's value
        return "swept" if key in swept else format(c[key], fmt)

    sched = "" if c["schedule"] == "constant" else f" {show('schedule')}"
    return (f"{show('model')} on {r['dataset']} ({', '.join(r['classes'])}), {show('opt')}{sched} lr {show('lr', 'g')}, "
            f"batch {show('batch_size')}, {show('epochs')} epochs")


def training(r: dict) -> str:
    """A training report: one model's epochs; several seeds' accuracies with mean ± std; or a sweep's
    variants, best first."""
    if len(r["runs"]) > 1:
        programs = f"{r['programs']} compiled program{'s' if r['programs'] > 1 else ''}"
        lines = [_run_line(r) + f": {len(r['runs'])} models trained in {programs}"]
        lines += _variants(r) if "sweep" in r else _seeds(r)
        lines.append(f"compile {r['compile_seconds']:.2f} s, train {r['train_seconds']:.2f} s")
        return "\n".join(lines)
    lines = [_run_line(r) + f", seed {r['config']['seeds'][0]}",
             f"{'epoch':>6} {'train loss':>11} {'valid loss':>11} {'accuracy':>9}"]
    lines += [f"{e['epoch']:>6} {_num(e['train_loss'], 11)} {_num(e['valid_loss'], 11)} {_num(e['valid_accuracy'], 9)}"
              for e in r["history"]]
    if r["valid_accuracy"] is not None:
        book = f" (book {r['book']:.4f})" if r["book"] else ""
        lines.append(f"valid accuracy {r['valid_accuracy']:.4f}{book}; compile {r['compile_seconds']:.2f} s, "
                     f"train {r['train_seconds']:.2f} s")
    return "\n".join(lines)


def _seeds(r: dict) -> list[str]:
    lines = [f"{'seed':>6} {'accuracy':>9}"]
    lines += [f"{run['seed']:>6} {_num(run['valid_accuracy'], 9)}"
              + (f"  diverged at epoch {run['diverged_at']}" if run["diverged_at"] else "") for run in r["runs"]]
    if r["valid_accuracy_mean"] is not None:
        lines.append(f"mean {r['valid_accuracy_mean']:.4f} ± {r['valid_accuracy_std']:.4f}")
    return lines


def _variants(r: dict) -> list[str]:
    """A row per variant, best mean first (marked *), and whether it is ahead by more than the seeds' spread."""
    keys = list(r["sweep"])
    shown = [[printable(json.dumps(v["values"][k])) for k in keys] for v in r["variants"]]
    widths = [max(len(k), *(len(row[i]) for row in shown)) for i, k in enumerate(keys)]
    order = sorted(range(len(shown)), key=lambda i: -(r["variants"][i]["valid_accuracy_mean"] or -1))
    lines = ["  " + " ".join(f"{k:>{w}}" for k, w in zip(keys, widths)) + f" {'accuracy (mean ± std)':>22} {'n':>3}"]
    for rank, i in enumerate(order):
        v = r["variants"][i]
        acc = "diverged" if v["valid_accuracy_mean"] is None else f"{v['valid_accuracy_mean']:.4f} ± {v['valid_accuracy_std']:.4f}"
        lines.append(("* " if rank == 0 else "  ") + " ".join(f"{x:>{w}}" for x, w in zip(shown[i], widths))
                     + f" {acc:>22} {v['n']:>3}")
    best, second = (r["variants"][i] for i in (order + order)[:2])
    if len(order) > 1 and min(best["n"], second["n"]) > 1 and second["valid_accuracy_mean"] is not None:
        gap, spread = best["valid_accuracy_mean"] - second["valid_accuracy_mean"], max(best["valid_accuracy_std"], second["valid_accuracy_std"])
        lines.append(f"best ahead of the runner-up by {gap:.4f}: {'more' if gap > spread else 'no more'} than the "
                     f"seeds' spread ({spread:.4f}, the larger std of the two)")
    return lines


def chapter(r: dict) -> str:
    """``mnistjax run``: each step of the chapter, ours beside the book's."""
    sample = r["dataset"] != "mnist"
    lines = [f"mnistjax run on {r['dataset']}; 3 vs 7, validation accuracy",
             f"{'step':<32} {'ours':>8} {'book*' if sample else 'book':>8} {'seconds†':>9}"]
    lines += [f"{s['step']:<32} {_num(s['accuracy'])} {_num(s['book'])} {s['seconds']:9.2f}" for s in r["steps"]]
    if sample:
        lines.append(f"* the book's figures are on full MNIST; {r['dataset']} is a small sample of it, so expect less here")
    lines.append("† each step's own time; the steps run side by side, sharing the cores")
    lines.append(f"all steps, data loading included: {r['seconds']:.2f} s")
    return "\n".join(lines)


def recipes(r: dict) -> str:
    width = max(map(len, r["recipes"]), default=0)
    return "\n".join(f"{name:<{width}}  {text}" for name, text in r["recipes"].items())


def printable(text: str) -> str:
    """``text`` with its control characters escaped (a newline as \\n, an ANSI escape as \\x1b): a
    file's name cannot break a table's lines or drive the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def predictions(r: dict) -> str:
    """``mnistjax predict``: each image's class and probability, and the runners-up."""
    lines = []
    for p in r["predictions"]:
        if "error" in p:
            lines.append(f"{printable(p['file'])}: ERROR {printable(p['error'])}")
        else:
            rest = ", ".join(f"{printable(name)} {prob:.3f}" for name, prob in p["top"][1:])
            lines.append(f"{printable(p['file'])}: {printable(p['class'])} ({p['probability']:.3f})"
                         + (f"; then {rest}" if rest else ""))
    return "\n".join(lines)


def interpretation(r: dict) -> str:
    """``mnistjax interpret``: accuracy, precision/recall per class, the most confused pairs, the top losses."""
    lines = [f"{r['n']} images, accuracy {r['accuracy']:.4f}", f"{'class':>10} {'precision':>9} {'recall':>7} {'support':>7}"]
    lines += [f"{c:>10} {_num(v['precision'], 9)} {_num(v['recall'], 7)} {v['support']:>7}" for c, v in r["per_class"].items()]
    lines.append("most confused (actual -> predicted: count): "
                 + (", ".join(f"{a} -> {p}: {n}" for a, p, n in r["most_confused"][:10]) or "none"))
    lines.append("top losses:")
    lines += [f"  #{t['index']:<6} actual {t['actual']:<6} predicted {t['predicted']:<6} loss {t['loss']:7.3f}  "
              f"p {t['probability']:.3f}" for t in r["top_losses"]]
    return "\n".join(lines)


def lr_find(r: dict) -> str:
    """``mnistjax lr-find``: the suggestions, and the curve every few points."""
    s = r["suggestions"]
    lines = [f"learning-rate finder, {r['config']['model']} with {r['config']['opt']} on {r['dataset']}: "
             + ", ".join(f"{k} {v:.2g}" for k, v in s.items()), f"{'lr':>10} {'loss':>9}"]
    if "sweep" in r:  # a row per variant: its values and suggestions
        lines[1:] = [" ".join(f"{k}={json.dumps(x)}" for k, x in v["values"].items()) + ": "
                     + ", ".join(f"{k} {x:.2g}" for k, x in v["suggestions"].items()) for v in r["variants"]]
        lines[0] = lines[0].split(":")[0] + f", {len(r['variants'])} variants:"
        return "\n".join(map(printable, lines))
    step = max(1, len(r["lrs"]) // 20)
    lines += [f"{lr:10.2e} {_num(loss, 9)}" for lr, loss in list(zip(r["lrs"], r["losses"]))[::step]]
    return "\n".join(lines)
