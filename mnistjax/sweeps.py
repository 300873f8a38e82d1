"""Sweeps: many variants of one RunConfig, each trained with every seed, grouped into as few compiled
programs as their shapes allow.

    variants = expand(recipe("simple_net"), {"lr": [0.1, 0.03], "opt.weight_decay": [0, 0.01]})
    groups(variants, traced=TRACED)     # [[0, 1, 2, 3]]: one program trains all four (× seeds)

A KEY is a RunConfig field (``lr``, ``ema``, ``batch_size``, ``model``, ...) or ``TABLE.ARG``, an
argument of the optimizer, schedule, model or loss (``opt.weight_decay``, ``schedule.pct_start``,
``model.hidden``, ``loss.label_smoothing``). Settings that leave the program's shapes and structure
alone are *traced*: their values are arrays inside one compiled program (see ``experiment.learner``);
any other setting splits the sweep into groups, one program each.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import NamedTuple

from mnistjax.config import FIELDS, RunConfig
from mnistjax.errors import MnistjaxError

TABLES = {"opt": "opt_args", "schedule": "schedule_args", "model": "model_args", "loss": "loss_args"}
# Fields a sweep may not vary: the data are loaded once, seeds have --seeds, the rest is bookkeeping.
FIXED = ("dataset", "data_dir", "classes", "class_names", "seeds", "devices", "checkpoint_dir", "checkpoint_every")
# Numbers that may differ within one program; for those in NONZERO, 0 turns the feature off (another program).
TRACED_FIELDS = ("lr", "ema", "rotate", "zoom")
TRACED_TABLES = ("opt", "schedule", "loss")
TRACED_MODEL_ARGS = ("drop",)
NONZERO = {"ema": ("ema",), "rotate": ("rotate", "zoom"), "zoom": ("rotate", "zoom"),
           "loss.label_smoothing": ("loss.label_smoothing",)}


class Variant(NamedTuple):
    values: dict          # {KEY: value} of the swept settings
    config: RunConfig     # the base with those values (and the base's seeds)


def check_key(key: str) -> None:
    table, _, arg = key.partition(".")
    if arg and table in TABLES and arg.isidentifier():
        return
    if not arg and key in FIELDS and key not in FIXED:
        return
    raise MnistjaxError(f"{key!r}: expected a setting of a run ({', '.join(f for f in FIELDS if f not in FIXED)}) "
                        f"or an argument TABLE.ARG of {', '.join(TABLES)} (opt.weight_decay, model.hidden)", param="sweep")


def value(config: RunConfig, key: str):
    """The setting ``key`` of ``config`` (an argument's default is None: not given)."""
    table, _, arg = key.partition(".")
    return getattr(config, TABLES[table]).get(arg) if arg else getattr(config, key)


def with_values(config: RunConfig, values: dict) -> RunConfig:
    """``config`` with each ``{KEY: value}`` set; validated, an error naming the sweep's key and value."""
    changes = {}
    for key, v in values.items():
        table, _, arg = key.partition(".")
        if arg:
            name = TABLES[table]
            changes[name] = {**changes.get(name, getattr(config, name)), arg: v}
        else:
            changes[key] = tuple(v) if isinstance(v, list) else v
    try:
        return dataclasses.replace(config, **changes)
    except MnistjaxError as e:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        raise MnistjaxError(f"{shown}: {e}", param="sweep") from None


def expand(base: RunConfig, sweep: dict[str, list]) -> list[Variant]:
    """The Cartesian product of the sweep's values, in the order given (the last key fastest)."""
    for key, values in sweep.items():
        check_key(key)
        if not values or len(set(map(repr, values))) != len(values):
            raise MnistjaxError(f"{key}={values}: expected distinct values", param="sweep")
    combos = itertools.product(*sweep.values())
    return [Variant(values, with_values(base, values)) for values in (dict(zip(sweep, c)) for c in combos)]


def is_traced(key: str, values: list) -> bool:
    """Whether ``key`` may take these values within one program: numbers of a traced setting."""
    table, _, arg = key.partition(".")
    traced = key in TRACED_FIELDS or table in TRACED_TABLES or (table == "model" and arg in TRACED_MODEL_ARGS)
    return traced and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def traced_keys(sweep: dict[str, list]) -> tuple[str, ...]:
    return tuple(k for k, vs in sweep.items() if is_traced(k, vs))


def shape_key(variant: Variant, traced: tuple[str, ...]) -> tuple:
    """What must be equal for two variants to share a program: every untraced value, and for the
    traced ones whether they turn a feature on (ema 0 is no average at all)."""
    fixed = tuple(repr(v) for k, v in variant.values.items() if k not in traced)
    on = tuple(any(value(variant.config, f) for f in NONZERO[k]) for k in traced if k in NONZERO)
    return fixed + on


def groups(variants: list[Variant], traced: tuple[str, ...]) -> list[list[int]]:
    """The variants' indices, one list per program, in the order each group first appears."""
    out: dict[tuple, list[int]] = {}
    for i, v in enumerate(variants):
        out.setdefault(shape_key(v, traced), []).append(i)
    return list(out.values())


def shard(groups: list[list], index: int, count: int) -> list[list]:
    """Share ``index`` (0 to count − 1) of ``count`` of a sweep's groups of runs, for job arrays: the
    groups index, index + count, ... when there are at least ``count`` (each group whole, so its runs
    train as they would unsharded); with fewer groups, slice ``index`` of ``count`` near-equal
    contiguous slices of every group."""
    if not 0 <= index < count:
        raise MnistjaxError(f"{index}/{count}: expected I/N with 0 <= I < N", param="shard")
    if len(groups) >= count:
        return groups[index::count]
    parts = (g[index * len(g) // count:(index + 1) * len(g) // count] for g in groups)
    return [p for p in parts if p]


def parse(spec: str) -> tuple[str, list]:
    """``"KEY=V1,V2,..."`` as (KEY, [values]); values are JSON (0.1, true, "x") or else text."""
    key, sep, text = spec.partition("=")
    if not sep or not text.strip(","):
        raise MnistjaxError(f"{spec!r}: expected KEY=V1,V2,... (lr=0.1,0.03)", param="sweep")
    check_key(key)
    if text.startswith("["):  # values that are lists themselves: model.channels=[[8,16],[16,32]]
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise MnistjaxError(f"{spec!r}: not a JSON list ({e})", param="sweep") from None
        return key, values if isinstance(values, list) else [values]

    def one(part: str):
        try:
            return json.loads(part)
        except json.JSONDecodeError:
            return part

    return key, [one(p) for p in text.split(",") if p]
