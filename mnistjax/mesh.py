"""Devices: the mesh a Learner may carry (``Learner.mesh``), and how arrays go onto it. One model:
each batch is split over the mesh's "batch" axis, everything else is whole on every device (also
across processes, ``jax.distributed``), so XLA reduces the gradients and the params stay the same.
Several models (seeds, a sweep): their leading axis is split over the mesh's "runs" axis, each
device trains its share of them, and the data are whole on every device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnistjax.errors import MnistjaxError


def _devices(n: int | None) -> list:
    available = jax.devices()
    n = n or len(available)
    if not 1 <= n <= len(available):
        cpu = (f"; on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count={n} makes {n} (set before the process starts)"
               if available[0].platform == "cpu" else "")
        raise MnistjaxError(f"{n}: this machine has {len(available)} {available[0].platform} device(s){cpu}", param="devices")
    return available[:n]


def data_parallel(devices: int | None = None) -> Mesh:
    """A one-axis ("batch") mesh over the first ``devices`` devices (all by default), for ``Learner.mesh``."""
    return Mesh(np.array(_devices(devices)), ("batch",))


def spread_runs(devices: int | None = None) -> Mesh:
    """A one-axis ("runs") mesh over the first ``devices`` devices: several models, each device its share."""
    return Mesh(np.array(_devices(devices)), ("runs",))


def _place(tree, mesh: Mesh, spec: PartitionSpec):
    sharding = NamedSharding(mesh, spec)

    def put(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(x)))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def shard_runs(tree, mesh: Mesh):
    """Every leaf's leading (runs) axis split over the mesh's "runs" axis (its length a multiple of the
    mesh's size)."""
    return _place(tree, mesh, PartitionSpec("runs"))


def replicate(tree, mesh: Mesh):
    """Every leaf whole on every device of ``mesh``, also when the mesh spans several processes
    (each process passes the same values, as ``jax.distributed`` programs do)."""
    return _place(tree, mesh, PartitionSpec())


def to_host(tree):
    """Every leaf as a NumPy array on the host, also one spread over several processes' devices
    (gathered from all of them: every process must call this, as it does the compiled step)."""
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(get, tree)


def split_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Shard a batch's leading axis over the mesh (``fit`` checks that its devices divide the batch)."""
    if mesh is None or "batch" not in mesh.axis_names:
        return x
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, PartitionSpec("batch")))
