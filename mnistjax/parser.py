"""The ``mnistjax`` command line: its parser, built one command group at a time, and the
translation of its flags into a RunConfig's settings (``overrides``). No command runs here: each
subcommand's parser names its command (``args.command``), which ``cli`` runs.
"""

from __future__ import annotations

import argparse
import json
import re

from mnistjax import config
from mnistjax.errors import MnistjaxError

# The commands that read data, and so take the data options (``background.start_loading`` starts
# loading what they name before JAX is imported).
READS_DATA = ("run", "train", "lr-find", "baseline", "knn", "interpret", "info")
# The commands that compile nothing (no JAX compilation cache for them).
COMPILE_NOTHING = ("recipes", "info", "fetch", "collect")
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
    g.add_argument("--dataset", choices=config.DATASETS, default=argparse.SUPPRESS,
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


def _sweep_option(p, what: str) -> None:
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", action="append", type=_sweep, default=S,
                   help=f"{what}, repeatable: every combination, each with every seed. KEY: a setting (lr, ema, rotate, "
                        "zoom, augment, batch_size, epochs, model, ...) or an argument (opt.weight_decay, opt.b1, "
                        "schedule.pct_start, model.hidden, model.drop, loss.label_smoothing). Numbers of lr, ema, "
                        "rotate, zoom, opt.*, schedule.*, loss.* and model.drop train together in one compiled program; "
                        "other settings make a program per value")


def _shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not (sep and i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (0/4: the first of four shares), got {text!r}")
    return int(i), int(n)


def _sweep(text: str) -> tuple[str, list]:
    from mnistjax import sweeps

    try:
        return sweeps.parse(text)
    except MnistjaxError as e:
        raise argparse.ArgumentTypeError(e.message) from None


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


S = argparse.SUPPRESS  # a RunConfig flag not given is absent: the recipe's or the config file's value stands


def _run_options(p: argparse.ArgumentParser) -> None:
    """The flags of a RunConfig; each given one overrides the recipe and the config file."""
    from mnistjax import losses, models, optimizers

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
    _loop_options(p.add_argument_group("training"))
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint-dir", metavar="DIR", default=S, help="save the training state here every few epochs")
    c.add_argument("--checkpoint-every", type=int, metavar="N", default=S, help="epochs between checkpoints (default 1)")
    c.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")


def _loop_options(t) -> None:
    """A RunConfig's training loop: epochs, batches, augmentation, seeds and devices."""
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
    t.add_argument("--same-batches", action=argparse.BooleanOptionalAction, default=S,
                   help="with several models: all see the same batches in the same order (faster)")
    t.add_argument("--devices", metavar="N|all", default=S,
                   help="one model: split each batch over N devices (or all); several (seeds, a sweep): spread the "
                        "models over them, each device training its share (fewer models than devices: one device each)")


def overrides(args: argparse.Namespace) -> dict:
    """The RunConfig settings the flags give (those not given are absent)."""
    given = vars(args)
    out = {name: given[name] for name in config.FIELDS if name in given}
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


def _add(sub, common, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, parents=[common], help=help, description=help)
    p.set_defaults(command=name, compiles=name not in COMPILE_NOTHING, loading=None)  # loading: see background
    if name in READS_DATA:
        _data_options(p)
    return p


def _chapter_commands(sub, common) -> None:
    """run, sgd, baseline, knn: the chapter's steps."""
    from mnistjax.distances import DISTANCES

    p = _add(sub, common, "run", "the chapter end to end on 3 vs 7: each step, our accuracy beside the book's")
    p.add_argument("--figures", metavar="DIR", help="write the figures of every step here (PNG)")
    p = _add(sub, common, "sgd", "gradient descent from first principles: x², learning rates, the roller coaster")
    p.add_argument("--steps", type=int, default=10, help="SGD steps to print, as in the book (default 10)")
    p.add_argument("--lr", type=float, default=1e-5, help="learning rate (default 1e-5, the book's)")
    p.add_argument("--seed", type=int, default=42, help="PRNG seed for the noise and the initial params")
    p.add_argument("--figures", metavar="DIR", help="write every figure of the section here (PNG)")
    p = _add(sub, common, "baseline", "pixel similarity: nearest mean image, per-class and balanced accuracy")
    p.add_argument("--classes", default="3,7", help="'all' or a comma list of classes (default 3,7)")
    p.add_argument("--distance", choices=list(DISTANCES), default="l1", help="distance to the mean images")
    p.add_argument("--figures", metavar="DIR", help="write prototypes.png, pixels.png, confusion.png here")
    p = _add(sub, common, "knn", "k-nearest neighbours: each test image takes the class of its nearest training images")
    p.add_argument("--k", type=int, default=1, help="neighbours that vote (default 1)")
    p.add_argument("--distance", choices=["l2", "cosine", "l1"], default="l2",
                   help="l2 and cosine through one matrix multiply per chunk (l2 re-ranked exactly); l1 pair by pair")
    p.add_argument("--weighted", action="store_true", help="votes weighted by 1/distance")
    p.add_argument("--deskew", action="store_true", help="straighten slanted digits first (LeCun's table: 2.4 %% error)")
    p.add_argument("--classes", default="all", help="'all' (default) or a comma list of classes")


def _training_commands(sub, common) -> None:
    """train and lr-find: a RunConfig from a recipe, a config file and flags."""
    p = _add(sub, common, "train", "train a classifier with SGD, one compiled call per epoch (a recipe, a config file, "
             "flags)")
    _run_options(p)
    sw = p.add_argument_group("sweeps")
    _sweep_option(sw, "train every value of a setting")
    sw.add_argument("--lrs", type=_numbers(float), metavar="X,X,...", default=S, help="the same as --sweep lr=X,X,...")
    sw.add_argument("--shard", type=_shard, metavar="I/N",
                    help="train only share I (0 to N-1) of N of the sweep's runs, for job arrays: the program groups "
                         "I, I+N, ... when there are at least N, else slice I of N of every group; mnistjax collect "
                         "merges the shares' --json results")
    d = p.add_argument_group("processes (jax.distributed: the same command in every process)")
    d.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, which every process joins")
    d.add_argument("--num-processes", type=int, metavar="N", help="how many processes run the command")
    d.add_argument("--process-id", type=int, metavar="I", help="this process, 0 to N-1 (0 writes the result and files)")
    d.add_argument("--distributed", choices=["auto"], help="auto: the cluster says (SLURM, Open MPI, TPU pods)")
    d.add_argument("--distributed-timeout", type=int, metavar="S", default=120,
                   help="seconds to wait for every process to join (default 120)")
    out = p.add_argument_group("outputs")
    out.add_argument("--figures", metavar="DIR", help="write loss/accuracy curves, confusion matrix, top_wrong.png")
    out.add_argument("--log", metavar="FILE", help="a record per run and epoch as the runs go, in long form: .csv "
                     "(columns run, seed, each swept setting, epoch, losses, accuracy) or .jsonl (also a record per "
                     "step); an existing file is refused unless --log-append, a folder, link or device before training")
    out.add_argument("--log-append", action="store_true", help="add to an existing --log file (a CSV's columns must match)")
    out.add_argument("--tensorboard", metavar="DIR", help="TensorBoard records: a folder per run (its swept values "
                     "and seed) with losses per step and epoch and its hyperparameters (needs mnistjax[tensorboard])")
    out.add_argument("--save", metavar="FILE", help="save the trained model here (safetensors; mnistjax predict reads it); "
                     "an existing file is replaced whole, a folder, a link or a device is refused before training")
    out.add_argument("--show-config", action="store_true", help="print the run's settings as JSON (for --config) and stop")
    p = _add(sub, common, "collect", "merge the --json results of a sweep's shares (train --shard I/N) into the "
             "sweep's own result and table")
    p.add_argument("results", nargs="+", help="the shares' JSON results, one file each, in any order")
    p = _add(sub, common, "lr-find", "the learning-rate range test: a rate growing exponentially over at most one "
             "epoch; suggestions as fastai makes them (one run per --seeds, in one vmapped call)")
    _run_options(p)
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--end-lr", type=float, default=10.0)
    p.add_argument("--num-it", type=int, default=100, help="steps (at most one epoch of full batches)")
    p.add_argument("--figures", metavar="DIR", help="write lr_find.png here")
    _sweep_option(p, "a range test per value of another setting (the best rate depends on it)")


def _model_commands(sub, common) -> None:
    """predict and interpret: a saved model at work."""
    p = _add(sub, common, "predict", "classify your own images with a saved model (PNG or JPEG, any size, dark ink on "
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
    p = _add(sub, common, "interpret", "what a saved model gets wrong on validation data (by default the data it was "
             "trained on): confusion, most confused pairs, top losses, precision and recall")
    p.add_argument("model", help="a model saved by mnistjax train --save")
    _trust_option(p)
    p.add_argument("--top-losses", type=int, default=9, metavar="K", help="how many of the worst images (default 9)")
    p.add_argument("--min-count", type=int, default=1, metavar="N", help="most confused pairs seen at least N times")
    p.add_argument("--figures", metavar="DIR", help="write confusion.png and top_losses.png here")


def _data_commands(sub, common) -> None:
    """recipes, data fetch, data info."""
    _add(sub, common, "recipes", "the named recipes, one line each (mnistjax train --recipe NAME)")
    data_sub = sub.add_parser("data", help="download and inspect the data").add_subparsers(
        dest="data_command", required=True, parser_class=_Parser)
    _source_options(_add(data_sub, common, "fetch", "download MNIST into the cache from the mirrors, verifying SHA-256"))
    _add(data_sub, common, "info", "where the data comes from, counts per split and class, and whether hashes verified")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    """The whole command line: each subcommand's parser sets ``command`` (its name), ``compiles``
    (whether it compiles anything) and ``loading`` (None: see ``background.start_loading``)."""
    parser = _Parser(prog="mnistjax", description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _common()
    for group in (_chapter_commands, _training_commands, _model_commands, _data_commands):
        group(sub, common)
    return parser
