"""One description of a training run: ``RunConfig``, validated in one place, loaded from TOML or JSON,
and the named recipes shipped with the package (``mnistjax/recipes/*.toml``).

    cfg = recipe("simple_net")                       # the chapter's simple_net on 3 vs 7
    cfg = replace(cfg, lr=0.05, seeds=(0, 1, 2))     # a variant: three seeds in one vmapped call
    cfg = load_config("my_run.toml", overrides={"epochs": 5})

A result's ``"config"`` (``to_dict``) fed back in reproduces the result bit for bit; so does a sweep
run's own ``"config"``, as far as float32 allows (see ``experiment.train``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from mnistjax.data.load import DATASETS
from mnistjax.errors import MnistjaxError, check_arguments
from mnistjax.files import read_table

RECIPES_DIR = Path(__file__).parent / "recipes"
MAX_CONFIG_BYTES = 1 << 20
MAX_INT = 2**31 - 1  # what XLA's int32 counters hold


@dataclass(frozen=True)
class RunConfig:
    """A training run. Names are looked up in the library's registries: ``models.MODELS`` (or a
    plug-in ``FILE.py:FUNCTION`` / ``package.module:FUNCTION``), ``losses.LOSSES``,
    ``optimizers.OPTIMIZERS`` and ``optimizers.SCHEDULES``; their ``*_args`` go to that function."""

    # data
    dataset: str = "auto"                # auto: full MNIST if it can be had, else the embedded sample
    data_dir: str | None = None          # IDX files or PNG folders (default: the cache, then a download)
    classes: str = "3,7"                 # "all" or a comma list of class names
    class_names: str | None = None       # names for the labels 0, 1, ... of data that are not MNIST
    # model and loss
    model: str = "simple_net"
    model_args: dict = field(default_factory=dict)
    loss: str | None = None              # default: mnist_loss for two classes, cross_entropy otherwise
    loss_args: dict = field(default_factory=dict)
    # optimizer and learning rate
    opt: str = "sgd"
    opt_args: dict = field(default_factory=dict)
    lr: float = 0.1                      # the peak rate of the schedule
    schedule: str = "constant"
    schedule_args: dict = field(default_factory=dict)
    # the loop
    epochs: int = 40
    batch_size: int = 256
    augment: int = 0                     # shift training images by up to this many pixels
    rotate: float = 0.0                  # and turn them by up to this many degrees
    zoom: float = 0.0                    # and scale them by a factor in 1 ± zoom
    ema: float = 0.0                     # validate and predict with a moving average of the params (its decay)
    shuffle: bool = True                 # False: the data's order every epoch, as the book
    drop_last: bool = False
    # one model per seed; several train together in one vmapped call
    seeds: tuple[int, ...] = (0,)
    same_batches: bool = False           # several models: all see the first seed's batches
    devices: int | str | None = None     # N or "all": one model's batches split over them, several models spread
    # checkpoints
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1

    def __post_init__(self):
        validate(self)

    @property
    def n_models(self) -> int:
        return len(self.seeds)

    def to_dict(self) -> dict:
        """A JSON-ready dict (tuples as lists), which ``from_dict`` turns back into this config."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


FIELDS = {f.name: f for f in fields(RunConfig)}
_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "dict": dict}


def _fail(name: str, value, expected: str):
    raise MnistjaxError(f"{value!r}: expected {expected}", param=name)


def _check_type(name: str, value) -> None:
    kind = FIELDS[name].type.split(" | ")[0].split("[")[0]
    if kind == "tuple":
        item = int if "int" in FIELDS[name].type else (int, float)
        if not isinstance(value, tuple) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            _fail(name, value, f"a list of {'integers' if item is int else 'numbers'}")
    elif value is not None or "None" not in FIELDS[name].type:
        ok = isinstance(value, _TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
        if not ok and not (name == "devices" and value == "all"):
            _fail(name, value, f"a value of type {kind}")
        if kind == "int" and ok and not -MAX_INT <= value <= MAX_INT:
            _fail(name, value, f"a number from {-MAX_INT:,} to {MAX_INT:,}")


def _check_args(name: str, value: str, args: dict, registry: dict, fixed: tuple[str, ...]) -> None:
    """``value`` is in ``registry`` and ``args`` are arguments of its function (nothing is built)."""
    if value not in registry:
        _fail(name, value, f"one of {', '.join(registry)}")
    check_arguments(registry[value], args, value, f"{name}_args", fixed)


def validate(c: RunConfig) -> None:
    """Every rule a RunConfig must follow, each broken one a one-line error naming the field."""
    from mnistjax import losses, models, optimizers  # the registries (importing JAX)

    for name in FIELDS:
        _check_type(name, getattr(c, name))
    if c.dataset not in DATASETS:
        _fail("dataset", c.dataset, f"one of {', '.join(DATASETS)}")
    if c.data_dir == "":
        _fail("data_dir", c.data_dir, "a folder")
    if not c.classes.strip(", "):
        _fail("classes", c.classes, "'all' or a comma list of classes")
    if c.class_names is not None and not c.class_names.strip(", "):
        _fail("class_names", c.class_names, "a comma list of names")
    if c.model not in models.MODELS and ":" not in c.model:
        _fail("model", c.model, f"one of {', '.join(models.MODELS)}, FILE.py:FUNCTION or package.module:FUNCTION")
    if c.loss is not None:
        _check_args("loss", c.loss, c.loss_args, losses.LOSSES, ("n_classes",))
    _check_args("opt", c.opt, c.opt_args, optimizers.OPTIMIZERS, ("learning_rate",))
    _check_args("schedule", c.schedule, c.schedule_args, optimizers.SCHEDULES, ("lr", "steps"))
    for name in ("epochs", "batch_size", "checkpoint_every"):
        if getattr(c, name) < 1:
            _fail(name, getattr(c, name), "a positive integer")
    if c.augment < 0:
        _fail("augment", c.augment, "0 or more pixels")
    if not 0 <= c.rotate <= 180:
        _fail("rotate", c.rotate, "0 to 180 degrees")
    if not 0 <= c.zoom < 1:
        _fail("zoom", c.zoom, "0 or more and under 1 (0.1: scale by 0.9 to 1.1)")
    if not 0 <= c.ema < 1:
        _fail("ema", c.ema, "a decay from 0 (off) to below 1, such as 0.999")
    if not math.isfinite(c.lr) or c.lr <= 0:
        _fail("lr", c.lr, "a positive, finite learning rate")
    if not c.seeds or not all(0 <= s < 2**32 for s in c.seeds):
        _fail("seeds", c.seeds, "one or more seeds from 0 to 2**32 - 1")
    if len(set(c.seeds)) != len(c.seeds):
        _fail("seeds", c.seeds, "distinct seeds")
    if isinstance(c.devices, int) and c.devices < 1:
        _fail("devices", c.devices, "a positive number or 'all'")


def _normalise(d: dict, source: str) -> dict:
    """Keys checked against RunConfig's fields; lists made tuples, a class list made "a,b"."""
    if d.get("lrs") == []:  # a result of mnistjax before sweeps: lrs is --sweep lr=... now
        d = {k: v for k, v in d.items() if k != "lrs"}
    unknown = [k for k in d if k not in FIELDS]
    if unknown:
        raise MnistjaxError(f"{source}: unknown setting {unknown[0]!r}; expected some of {', '.join(FIELDS)}")
    out = dict(d)
    if isinstance(out.get("seeds"), list):
        out["seeds"] = tuple(out["seeds"])
    if isinstance(out.get("classes"), list):
        out["classes"] = ",".join(map(str, out["classes"]))
    return out


def from_dict(d: dict, source: str = "config") -> RunConfig:
    return RunConfig(**_normalise(d, source))


def read(path: str | os.PathLike) -> dict:
    """A config file's settings: TOML (``.toml``) or JSON (anything else; a result's ``"config"``
    object, or a whole result with one)."""
    d = read_table(path, "a file of settings", "config", MAX_CONFIG_BYTES)
    d = d.get("config", d) if isinstance(d.get("config"), dict) else d
    return _normalise({k: v for k, v in d.items() if k != "description"}, str(path))


def recipes() -> dict[str, str]:
    """{name: one-line description} of the recipes shipped with the package."""
    return {p.stem: tomllib.loads(p.read_text()).get("description", "") for p in sorted(RECIPES_DIR.glob("*.toml"))}


def recipe_settings(name: str) -> dict:
    path = RECIPES_DIR / f"{name}.toml"
    if not path.is_file():
        raise MnistjaxError(f"{name!r}: no such recipe; expected one of {', '.join(recipes())}", param="recipe")
    return read(path)


def recipe(name: str) -> RunConfig:
    """The recipe ``name`` as a RunConfig (``mnistjax recipes`` lists them)."""
    return from_dict(recipe_settings(name), f"recipe {name}")


def _code_from_file(model: str, path) -> MnistjaxError:
    return MnistjaxError(f"{path}: names a model built by code, {model}; run it only if you trust that code, with "
                         "--trust-code (trust_code=True), or name it yourself with --model", param="config")


def settings(recipe: str | None = None, path: str | os.PathLike | None = None, overrides: dict | None = None,
             trust_code: bool = False) -> dict:
    """The settings of a run in layers: RunConfig's defaults < a recipe < a config file < overrides.
    A file is data: a plug-in model it names (code) is refused unless ``trust_code``, or the
    overrides name the model themselves."""
    out = {}
    if recipe:
        out.update(recipe_settings(recipe))
    if path:
        out.update(read(path))
        model = out.get("model")
        if isinstance(model, str) and ":" in model and not trust_code and "model" not in (overrides or {}):
            raise _code_from_file(model, path)
    out.update(_normalise(overrides or {}, "overrides"))
    return out


def load_config(path: str | os.PathLike | None = None, recipe: str | None = None, overrides: dict | None = None,
                trust_code: bool = False) -> RunConfig:
    """A RunConfig from a recipe and/or a file, with ``overrides`` on top (see ``settings``)."""
    return RunConfig(**settings(recipe, path, overrides, trust_code))
