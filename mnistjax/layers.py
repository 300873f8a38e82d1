"""Layers in the vocabulary of ``torch.nn``, as pure functions: build a model the way the book does.

    simple_net = sequential(flatten(), dense(28 * 28, 30), relu(), dense(30, 1))

A layer and a whole model are the same thing, a ``Module``:

- ``params``: its parameters, a dict whose leaves are ``Param`` specs (shape, fan-in, init function)
  or constant arrays. ``init(module, key)`` draws every spec of a model in one random call
  (each separate draw is a compile of its own).
- ``state``: what it updates as it trains without a gradient (batch-norm running statistics); {} for most.
- ``apply(params, state, x, key, train) -> (y, new_state)``: ``key`` is a PRNG key or None (dropout
  needs one when training); ``train`` selects training behaviour (dropout on, batch statistics) or
  evaluation (dropout off, running statistics).

Shapes: images are (B, H, W) float32 or channels-last (B, H, W, C); dense layers take (B, F).
Initialisers match PyTorch's defaults (uniform ±1/√fan_in for Linear and Conv2d weights and biases;
batch norm: scale 1, bias 0, running mean 0, running variance 1), so numbers compare with the book's.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mnistjax import xla_conv

# (key, shape, fan_in) -> float32 array of that shape; fan_in is an array broadcast to shape.
Init = Callable[[jax.Array, tuple[int, ...], jax.Array], jax.Array]


def torch_init(key: jax.Array, shape: tuple[int, ...], fan_in: jax.Array) -> jax.Array:
    """PyTorch's default for Linear and Conv2d weights and biases: U(−1/√fan_in, 1/√fan_in)."""
    bound = 1.0 / jnp.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def book_init(std: float = 1.0) -> Init:
    """The chapter's ``init_params``: normal × std, whatever the fan-in."""
    return lambda key, shape, fan_in: jax.random.normal(key, shape) * std


class Param(NamedTuple):
    """A parameter to draw: its shape, its fan-in, and the distribution to draw it from."""

    shape: tuple[int, ...]
    fan_in: int
    init: Init = torch_init


@dataclass(frozen=True, eq=False)  # compared by identity: a model is a static argument of compiled functions
class Module:
    """A layer or a model: parameter specs, initial state, and ``apply`` (see the module docstring).
    ``arch``: its architecture as data (see ``layer``), None when a part of it is hand-written."""

    params: dict
    state: dict
    apply: Callable
    arch: dict | None = None


# The built-in layers by name: what an architecture (``Module.arch``) may name.
LAYERS: dict[str, Callable[..., Module]] = {}


def _as_data(value):
    """A layer's argument as JSON-ready data: a Module as its architecture, a tuple as a list;
    raises LookupError for a Module with no architecture."""
    if isinstance(value, Module):
        if value.arch is None:
            raise LookupError
        return value.arch
    if isinstance(value, (list, tuple)):
        return [_as_data(v) for v in value]
    return value


def layer(fn: Callable[..., Module]) -> Callable[..., Module]:
    """Register a built-in layer: the modules it builds carry their architecture, ``{"layer": name,
    argument: value, ...}`` (sub-layers nested the same way), so a model of built-in layers is saved
    and rebuilt as data (``from_arch``), with no code. ``init`` is left out: it only draws the
    parameters, which a saved model holds."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, **kwargs) -> Module:
        module = fn(*args, **kwargs)
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        try:
            arch = {"layer": fn.__name__, **{k: _as_data(v) for k, v in bound.arguments.items() if k != "init"}}
        except LookupError:  # a hand-written part: no architecture for the whole
            arch = None
        return dataclasses.replace(module, arch=arch)

    LAYERS[fn.__name__] = build
    return build


def from_arch(arch: dict, builders: dict[str, Callable[..., Module]] = LAYERS) -> Module:
    """The module an architecture describes (``Module.arch``), built from ``builders`` (the built-in
    layers) alone: nothing named in it is imported or run but those. Raises ValueError when it is not one."""
    if not isinstance(arch, dict) or arch.get("layer") not in builders:
        name = arch.get("layer") if isinstance(arch, dict) else arch
        raise ValueError(f"{str(name)[:40]!r} is not a layer; expected one of {', '.join(builders)}")
    build = builders[arch["layer"]]
    if "init" in arch:  # a function, never data: the saved arrays take its place
        raise ValueError(f"{arch['layer']}: init is not part of an architecture")
    args = {k: _from_data(v, builders) for k, v in arch.items() if k != "layer"}
    star = [p.name for p in inspect.signature(build).parameters.values() if p.kind is p.VAR_POSITIONAL]
    positional = args.pop(star[0], ()) if star else ()
    if not isinstance(positional, tuple):
        raise ValueError(f"{arch['layer']}: {star[0]}: expected a list")
    try:
        return build(*positional, **args)
    except (TypeError, ValueError, AttributeError) as e:  # arguments missing, unknown, or of the wrong kind
        raise ValueError(str(e) if str(e).startswith(arch["layer"]) else f"{arch['layer']}: {e}") from None


def _from_data(value, builders: dict[str, Callable[..., Module]]):
    if isinstance(value, dict):
        return from_arch(value, builders)
    if isinstance(value, list):
        return tuple(_from_data(v, builders) for v in value)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"{value!r}: expected a number, a list or a layer")
    return value


def _is_param(x) -> bool:
    return isinstance(x, Param)


def init(module: Module, key: jax.Array) -> tuple[dict, dict]:
    """Draw a module's parameters: (params, state) of arrays. One random call per init function."""
    leaves, tree = jax.tree.flatten(module.params, is_leaf=_is_param)
    out = [None if _is_param(leaf) else jnp.asarray(leaf) for leaf in leaves]
    fns = list(dict.fromkeys(leaf.init for leaf in leaves if _is_param(leaf)))
    keys = [key] if len(fns) == 1 else jax.random.split(key, len(fns))
    for fn, k in zip(fns, keys):
        idx = [i for i, leaf in enumerate(leaves) if _is_param(leaf) and leaf.init is fn]
        sizes = [math.prod(leaves[i].shape) for i in idx]
        fan_in = _fan_ins([leaves[i].fan_in for i in idx], sizes, traced=isinstance(k, jax.core.Tracer))
        for i, part in zip(idx, jnp.split(fn(k, fan_in.shape, fan_in), np.cumsum(sizes)[:-1])):
            out[i] = part.reshape(leaves[i].shape)
    return tree.unflatten(out), jax.tree.map(jnp.asarray, module.state)


def _fan_ins(fan_ins: list[int], sizes: list[int], traced: bool):
    """Each fan-in repeated over its tensor's numbers: (sum(sizes),) float32. Inside a compiled init,
    broadcast scalars: a NumPy array there would be a constant as large as the model, for XLA to compile.
    Drawn eagerly, NumPy's (a model too large for memory fails here, with a MemoryError)."""
    if traced:
        return jnp.concatenate([jnp.full(n, f, jnp.float32) for f, n in zip(fan_ins, sizes)])
    return np.repeat(fan_ins, sizes).astype(np.float32)


def size(module: Module) -> int:
    """How many numbers a module's parameters and state hold (counted from the specs: nothing is drawn)."""
    leaves = jax.tree.leaves((module.params, module.state), is_leaf=_is_param)
    return sum(math.prod(leaf.shape) if _is_param(leaf) else np.size(leaf) for leaf in leaves)


def stateless(fn: Callable[[dict, jax.Array], jax.Array], params: dict | None = None) -> Module:
    """A layer from ``fn(params, x) -> y``: no state, no randomness, the same in training and evaluation."""
    return Module(params or {}, {}, lambda p, s, x, key, train: (fn(p, x), s))


def _children(named: dict[str, Module]) -> tuple[dict, dict]:
    """The params and state of named sub-modules, for those that have any."""
    return ({n: m.params for n, m in named.items() if m.params}, {n: m.state for n, m in named.items() if m.state})


def _call(named: dict[str, Module], name: str, params, state, x, key, train, new_state: dict) -> jax.Array:
    """Apply sub-module ``name`` (its key: ``fold_in(key, its position)``), keeping its new state."""
    i = list(named).index(name)
    y, s = named[name].apply(params.get(name, {}), state.get(name, {}), x,
                             None if key is None else jax.random.fold_in(key, i), train)
    if s:
        new_state[name] = s
    return y


@layer
def sequential(*layers: Module) -> Module:
    """Layers one after another, like ``nn.Sequential``: params and state keyed by position ("0", "1",
    ...) for the layers that have any."""
    if not all(isinstance(m, Module) for m in layers):
        raise TypeError(f"sequential: expected layers (Module), got {', '.join(type(m).__name__ for m in layers)}")
    named = {str(i): m for i, m in enumerate(layers)}

    def apply(params, state, x, key, train):
        new_state = {}
        for name in named:
            x = _call(named, name, params, state, x, key, train, new_state)
        return x, new_state

    return Module(*_children(named), apply)


def _sizes(layer: str, minimum: int = 1, **sizes) -> None:
    """A layer's sizes are integers, ``minimum`` or more: a model's bad arguments (``--model-arg
    hidden=2.5``) fail here, naming the layer, rather than deep inside ``init``."""
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
            raise ValueError(f"{layer}: {name} {n!r}: expected an integer, {minimum} or more")


@layer
def dense(n_in: int, n_out: int, bias: bool = True, init: Init = torch_init) -> Module:
    """``nn.Linear``: (B, n_in) -> (B, n_out), ``x @ w + b`` with w (n_in, n_out)."""
    _sizes("dense", n_in=n_in, n_out=n_out)
    params = {"w": Param((n_in, n_out), n_in, init), **({"b": Param((n_out,), n_in, init)} if bias else {})}
    return stateless(lambda p, x: x @ p["w"] + p["b"] if bias else x @ p["w"], params)


@layer
def relu() -> Module:
    return stateless(lambda p, x: jax.nn.relu(x))


@layer
def sigmoid() -> Module:
    return stateless(lambda p, x: jax.nn.sigmoid(x))


@layer
def flatten() -> Module:
    """(B, ...) -> (B, F), like ``nn.Flatten``."""
    return stateless(lambda p, x: x.reshape(x.shape[0], -1))


@layer
def reshape(*shape: int) -> Module:
    """Each example to ``shape``, like ``nn.Unflatten``: ``reshape(28, 28, 1)`` gives images a channel axis."""
    _sizes("reshape", **{f"shape[{i}]": n for i, n in enumerate(shape)})
    return stateless(lambda p, x: x.reshape(x.shape[0], *shape))


def patches(x: jax.Array, k: int, stride: int = 1, padding: int = 0) -> jax.Array:
    """The k×k patches of (B, H, W, C) at every stride-th position: (B, H', W', k·k·C), tap-major.

    One channel (an image itself): one gather of the pixels, a single kernel where k·k slices compile
    to k·k. More channels: k·k strided slices side by side, whose gradient (a layer inside the net
    needs one) is cheaper than a gather's scatter. Not ``lax.conv_general_dilated``: XLA's CPU runs
    the gradients of its convolutions inside ``lax.scan`` on a slow generic path (docs/speed.md);
    ``lax.conv_general_dilated_patches`` is itself a convolution.
    """
    xp = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    b, h, w, c = xp.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    if c == 1:
        rows = stride * np.arange(ho)[:, None, None] + np.repeat(np.arange(k), k)  # (H', 1, k·k)
        cols = stride * np.arange(wo)[None, :, None] + np.tile(np.arange(k), k)    # (1, W', k·k)
        return xp.reshape(b, h * w)[:, rows * w + cols]
    return jnp.concatenate([xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
                            for i in range(k) for j in range(k)], axis=-1)


@layer
def conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True,
         init: Init = torch_init) -> Module:
    """``nn.Conv2d`` on channels-last images: (B, H, W, c_in) -> (B, H', W', c_out), H' = (H + 2·padding −
    kernel) // stride + 1, computed as patches + one matmul (im2col). w is (kernel·kernel·c_in, c_out)."""
    return _conv(c_in, c_out, kernel, stride, padding, bias, init, by_xla=False)


def _conv(c_in, c_out, kernel, stride, padding, bias, init, by_xla: bool) -> Module:
    _sizes("conv", c_in=c_in, c_out=c_out, kernel=kernel, stride=stride)
    _sizes("conv", 0, padding=padding)
    fan_in = c_in * kernel * kernel
    params = {"w": Param((fan_in, c_out), fan_in, init), **({"b": Param((c_out,), fan_in, init)} if bias else {})}

    def fn(p, x):
        if by_xla:  # w's rows are tap-major, as the patches are: HWIO reshaped
            y = xla_conv.conv(x, p["w"].reshape(kernel, kernel, c_in, c_out), stride, padding)
        else:
            y = patches(x, kernel, stride, padding) @ p["w"]
        return y + p["b"] if bias else y

    return stateless(fn, params)


def xla_convolutions(module: Module) -> Module | None:
    """``module`` (built from its architecture) with every ``conv`` computed by XLA's own convolution
    (``xla_conv.conv``): the same params, the same numbers up to rounding. None when it has
    no convolution or no architecture. For a step compiled on its own (``training.fit``'s route on
    the CPU, docs/speed.md): inside ``lax.scan`` XLA's CPU runs these convolutions on a slow path."""
    def convs(arch):
        return isinstance(arch, dict) and (arch.get("layer") == "conv" or any(convs(v) for v in arch.values())) \
            or isinstance(arch, list) and any(convs(v) for v in arch)

    if not convs(module.arch):
        return None

    def by_xla(c_in, c_out, kernel, stride=1, padding=0, bias=True):
        return _conv(c_in, c_out, kernel, stride, padding, bias, torch_init, by_xla=True)

    return from_arch(module.arch, {**LAYERS, "conv": by_xla})


@layer
def max_pool(window: int = 2) -> Module:
    """``nn.MaxPool2d(window)``: the max of each window×window block, (B, H, W, C) -> (B, H//w, W//w, C)."""
    _sizes("max_pool", window=window)
    def fn(p, x):
        b, h, w, c = x.shape
        h, w = h // window, w // window
        x = x[:, :h * window, :w * window]
        return x.reshape(b, h, window, w, window, c).max((2, 4))

    return stateless(fn)


@layer
def global_avg_pool() -> Module:
    """``nn.AdaptiveAvgPool2d(1)`` + flatten: (B, H, W, C) -> (B, C)."""
    return stateless(lambda p, x: x.mean((1, 2)))


@layer
def dropout(rate: float) -> Module:
    """``nn.Dropout``: in training, zero each value with probability ``rate`` and scale the rest by
    1/(1 − rate); in evaluation, the identity. Needs a key in training. ``rate``: 0 or more, under 1."""
    traced = isinstance(rate, jax.Array)  # a sweep's rate, one per model of one compiled program
    if not traced and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1):
        raise ValueError(f"dropout rate {rate!r}: expected a number, 0 or more and under 1")
    rate = rate if traced else float(rate)  # an int 0 from a config stays a float rate

    def apply(p, s, x, key, train):
        if not train or (not traced and rate == 0):
            return x, s
        if key is None:
            raise ValueError("dropout: training needs a PRNG key (apply(..., key=..., train=True))")
        keep = jax.random.bernoulli(key, 1 - rate, x.shape)
        return jnp.where(keep, x / (1 - rate), 0), s

    return Module({}, {}, apply)


@layer
def batch_norm(features: int, momentum: float = 0.1, eps: float = 1e-5) -> Module:
    """``nn.BatchNorm1d``/``2d`` over the last axis of (B, F) or (B, H, W, C) inputs.

    Training normalises with the batch's mean and (biased) variance, over every axis but the last,
    and moves the running statistics ``momentum`` of the way to the batch's (PyTorch's convention,
    the running variance unbiased); evaluation normalises with the running statistics.
    Under ``jit`` with a sharded batch the means are over the global batch, as on one device.
    """
    _sizes("batch_norm", features=features)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in (momentum, eps)):
        raise ValueError(f"batch_norm: momentum {momentum!r}, eps {eps!r}: expected numbers from 0 to 1")
    params = {"scale": np.ones(features, np.float32), "bias": np.zeros(features, np.float32)}
    state = {"mean": np.zeros(features, np.float32), "var": np.ones(features, np.float32)}

    def apply(p, s, x, key, train):
        axes = tuple(range(x.ndim - 1))
        if train:
            mean, var = x.mean(axes), x.var(axes)
            n = math.prod(x.shape[:-1])
            s = {"mean": (1 - momentum) * s["mean"] + momentum * jax.lax.stop_gradient(mean),
                 "var": (1 - momentum) * s["var"] + momentum * jax.lax.stop_gradient(var) * n / max(n - 1, 1)}
        else:
            mean, var = s["mean"], s["var"]
        a = jax.lax.rsqrt(var + eps) * p["scale"]  # one multiply-add a value: its gradient is fewer passes over x
        return x * a + (p["bias"] - mean * a), s

    return Module(params, state, apply)


@layer
def residual(main: Module, shortcut: Module | None = None) -> Module:
    """``main(x) + shortcut(x)`` (the identity when ``shortcut`` is None): a ResNet block's skip connection."""
    if not isinstance(main, Module) or not isinstance(shortcut, (Module, type(None))):
        raise TypeError("residual: expected layers (Module) for main and shortcut")
    named = {"main": main, "shortcut": shortcut or stateless(lambda p, x: x)}

    def apply(params, state, x, key, train):
        new_state = {}
        y = sum(_call(named, name, params, state, x, key, train, new_state) for name in named)
        return y, new_state

    return Module(*_children(named), apply)
