"""The chapter's models, written with ``layers``, and your own by name: ``build("cnn", n_out=10)``,
``build("my_models.py:wide_net", n_out=10, width=512)``.

Every model takes images (B, 28, 28) float32 and gives logits (B, n_out): one logit for two classes
with ``mnist_loss``, one per class with cross-entropy.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable, Sequence

from mnistjax.errors import MnistjaxError, check_arguments
from mnistjax.layers import (Init, Module, batch_norm, conv, dense, dropout, flatten, global_avg_pool, max_pool, relu,
                             reshape, residual, sequential, torch_init)


def linear(n_out: int = 1, init: Init = torch_init) -> Module:
    """The chapter's linear model ``x @ w + b``: 784 -> n_out."""
    return sequential(flatten(), dense(28 * 28, n_out, init=init))


def simple_net(n_out: int = 1, hidden: int = 30, init: Init = torch_init) -> Module:
    """The chapter's ``simple_net``: Linear(784, 30) -> ReLU -> Linear(30, 1)."""
    return sequential(flatten(), dense(28 * 28, hidden, init=init), relu(), dense(hidden, n_out, init=init))


def mlp(n_out: int = 10, hidden: Sequence[int] = (256, 128), init: Init = torch_init) -> Module:
    """Fully connected layers with ReLU between them: 784 -> hidden... -> n_out."""
    sizes = (28 * 28, *hidden)
    body = [layer for a, b in zip(sizes, sizes[1:]) for layer in (dense(a, b, init=init), relu())]
    return sequential(flatten(), *body, dense(sizes[-1], n_out, init=init))


def cnn(n_out: int = 10, channels: Sequence[int] = (32, 64), hidden: int = 128) -> Module:
    """A small CNN: conv 5×5 stride 2 -> ReLU -> conv 3×3 stride 2 -> ReLU -> dense -> ReLU -> dense.

    28×28 -> 14×14×c1 -> 7×7×c2 -> hidden -> n_out. Strided convolutions instead of pooling: fewer FLOPs.
    """
    c1, c2 = channels
    return sequential(reshape(28, 28, 1), conv(1, c1, 5, stride=2, padding=2), relu(),
                      conv(c1, c2, 3, stride=2, padding=1), relu(), flatten(),
                      dense(7 * 7 * c2, hidden), relu(), dense(hidden, n_out))


def fast_cnn(n_out: int = 10, channels: Sequence[int] = (24, 32), hidden: int = 256) -> Module:
    """The net of github.com/tuomaso/train_mnist_fast: conv 5×5 -> max-pool -> ReLU -> conv 3×3 ->
    max-pool -> ReLU -> dense -> ReLU -> dense, no padding: 28×28 -> 12×12×c1 -> 5×5×c2 -> hidden -> n_out.
    Pooling before the ReLU gives the same result with a quarter of the ReLUs."""
    c1, c2 = channels
    return sequential(reshape(28, 28, 1), conv(1, c1, 5), max_pool(2), relu(), conv(c1, c2, 3), max_pool(2), relu(),
                      flatten(), dense(5 * 5 * c2, hidden), relu(), dense(hidden, n_out))


def fast_cnn_bn(n_out: int = 10, channels: Sequence[int] = (24, 32), hidden: int = 256) -> Module:
    """``fast_cnn`` made cheaper for a CPU: the first convolution strided instead of pooled (a quarter of
    its work, and no pool), and batch norm on each convolution's output (the second's after its pool),
    which wins back the accuracy in one epoch.
    28×28 -> 12×12×c1 -> conv 3×3 -> max-pool -> 5×5×c2 -> hidden -> n_out."""
    c1, c2 = channels
    return sequential(reshape(28, 28, 1), conv(1, c1, 5, stride=2, bias=False), batch_norm(c1), relu(),
                      conv(c1, c2, 3, bias=False), max_pool(2), batch_norm(c2), relu(), flatten(),
                      dense(5 * 5 * c2, hidden), relu(), dense(hidden, n_out))


def cnn_bn(n_out: int = 10, channels: Sequence[int] = (32, 64), hidden: int = 128, drop: float = 0.25) -> Module:
    """``cnn`` with batch norm after each convolution and dropout before each dense layer."""
    c1, c2 = channels
    return sequential(reshape(28, 28, 1), conv(1, c1, 5, stride=2, padding=2, bias=False), batch_norm(c1), relu(),
                      conv(c1, c2, 3, stride=2, padding=1, bias=False), batch_norm(c2), relu(), flatten(),
                      dropout(drop), dense(7 * 7 * c2, hidden), relu(), dropout(drop), dense(hidden, n_out))


def deep_cnn(n_out: int = 10, channels: Sequence[int] = (32, 64), hidden: int = 128, drop: float = 0.4) -> Module:
    """The one-net MNIST CNN of github cdeotte/MNIST-CNN-99.75 (Kaggle's "How to choose CNN architecture
    MNIST"), for an accelerator: per stage two 3×3 convolutions and a 5×5 stride-2 one, each
    followed by ReLU and batch norm, then dropout. 28×28 -> 24×24×c1 -> 12×12×c1 -> 8×8×c2 ->
    4×4×c2 -> hidden -> n_out."""
    stages, c_in = [], 1
    for c in channels:
        for k, stride, pad in ((3, 1, 0), (3, 1, 0), (5, 2, 2)):
            stages += [conv(c_in, c, k, stride, pad), relu(), batch_norm(c)]
            c_in = c
        stages.append(dropout(drop))
    return sequential(reshape(28, 28, 1), *stages, flatten(), dense(4 * 4 * channels[-1], hidden), relu(),
                      batch_norm(hidden), dropout(drop), dense(hidden, n_out))


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[Module]:
    return [conv(c_in, c_out, 3, stride, padding=1, bias=False), batch_norm(c_out)]


def _block(c_in: int, c_out: int, stride: int) -> Module:
    """ResNet's basic block: two 3×3 conv + batch norm, added to the input (1×1 conv when the shape changes)."""
    main = sequential(*_conv_bn(c_in, c_out, stride), relu(), *_conv_bn(c_out, c_out))
    shortcut = None if stride == 1 and c_in == c_out else sequential(conv(c_in, c_out, 1, stride, bias=False),
                                                                    batch_norm(c_out))
    return sequential(residual(main, shortcut), relu())


def resnet(n_out: int = 10, channels: Sequence[int] = (16, 32, 64)) -> Module:
    """The book's "going deeper" in small: a ResNet with batch norm, one basic block per width.

    28×28×c1 -> block -> 14×14×c2 -> block -> 7×7×c3 -> block -> global average pool -> dense.
    """
    widths = (channels[0], *channels)
    blocks = [_block(a, b, 1 if i == 0 else 2) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
    return sequential(reshape(28, 28, 1), *_conv_bn(1, channels[0]), relu(), *blocks, global_avg_pool(),
                      dense(channels[-1], n_out))


MODELS: dict[str, Callable[..., Module]] = {
    "linear": linear, "simple_net": simple_net, "mlp": mlp, "cnn": cnn, "fast_cnn": fast_cnn,
    "fast_cnn_bn": fast_cnn_bn, "cnn_bn": cnn_bn, "resnet": resnet, "deep_cnn": deep_cnn}


def _load_file(path: Path):
    if not path.is_file():
        raise MnistjaxError(f"{path}: no such file; expected a Python file defining the model", param="model")
    name = f"mnistjax_plugin_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    spec.loader.exec_module(module)
    return module


def is_plugin(fn) -> bool:
    """Whether ``fn`` says it builds a model: a Python function annotated ``-> Module`` (or
    ``-> layers.Module``). Checked before it is called, so that no other callable (``os:system``) is
    ever called with arguments from a command line or a file."""
    returns = getattr(fn, "__annotations__", {}).get("return") if inspect.isfunction(fn) else None
    return returns is Module or (isinstance(returns, str) and returns.rpartition(".")[2] == "Module")


def builder(name: str) -> Callable[..., Module]:
    """The function that builds model ``name``: a built-in name, ``path/to/file.py:function`` or
    ``package.module:function``, a function annotated ``-> Module`` (``is_plugin``)."""
    if name in MODELS:
        return MODELS[name]
    target, sep, attr = name.rpartition(":")
    if not sep or not target or not attr:
        raise MnistjaxError(f"{name!r}: not a model; expected one of {', '.join(MODELS)}, FILE.py:FUNCTION "
                            "or package.module:FUNCTION", param="model")
    try:
        module = _load_file(Path(target)) if target.endswith(".py") else importlib.import_module(target)
    except MnistjaxError:
        raise
    except (Exception, SystemExit) as e:  # the plug-in's own error, whatever it is (sys.exit too): one line naming it
        raise MnistjaxError(f"{name}: cannot import {target} ({type(e).__name__}: {e})", param="model") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise MnistjaxError(f"{name}: {target} has no function {attr!r}", param="model")
    if not is_plugin(fn):
        raise MnistjaxError(f"{name}: not a model function; expected a function that says it returns a layers.Module "
                            f"(def {attr}(...) -> Module:)", param="model")
    return fn


def build(name: str, n_out: int, /, **args) -> Module:
    """Model ``name`` (see ``builder``) with ``n_out`` outputs; ``args`` go to its function, and so does
    ``n_out`` when the function takes it."""
    fn = builder(name)
    check_arguments(fn, args, name, "model_args", fixed=("n_out",))  # n_out: set by the classes and the loss
    takes = inspect.signature(fn).parameters
    if "n_out" in takes or any(p.kind is p.VAR_KEYWORD for p in takes.values()):
        args = {**args, "n_out": n_out}
    try:
        model = fn(**args)
    except MnistjaxError:
        raise
    except (Exception, SystemExit) as e:  # a plug-in's own error (sys.exit too), or arguments of the wrong kind
        raise MnistjaxError(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed "
                            f"({type(e).__name__}: {e})", param="model") from None
    if not isinstance(model, Module):
        raise MnistjaxError(f"{name} returned {type(model).__name__}, not a model; expected a layers.Module "
                            "(params, state, apply), e.g. from layers.sequential(...)", param="model")
    return model
