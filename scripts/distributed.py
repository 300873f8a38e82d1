"""Data-parallel training over several processes (hosts) with JAX's own distributed runtime.

On a GPU/TPU cluster run one process per host; on one machine, N processes on 127.0.0.1:

    python scripts/distributed.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 0 &
    python scripts/distributed.py --coordinator 127.0.0.1:12355 --num-processes 2 --process-id 1

Each process calls ``jax.distributed.initialize``; ``jax.devices()`` then lists every process's
devices, ``data_parallel()`` makes one mesh over all of them, and the same ``fit`` trains with each
batch split across processes and the gradients reduced by XLA. (On SLURM or TPU pods,
``jax.distributed.initialize()`` finds these arguments by itself.) Prints one JSON line per process.
"""

import argparse
import json

import jax


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--coordinator", required=True, help="HOST:PORT of process 0")
    p.add_argument("--num-processes", type=int, required=True)
    p.add_argument("--process-id", type=int, required=True)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args()
    # CPU devices need an implementation of cross-process collectives (GPUs and TPUs bring their own);
    # set before initialize, since asking which backend runs would already start it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)

    import optax

    from mnistjax import data, losses, models
    from mnistjax.data import data_from
    from mnistjax.mesh import data_parallel
    from mnistjax.training import Learner, fit

    d = data_from(data.mnist_sample(data.load_tiny(), (3, 7)))  # every process holds the same data
    learner = Learner(models.simple_net(), losses.binary, optax.sgd(0.1), batch_size=256, mesh=data_parallel())
    r = fit(learner, d, args.epochs, jax.random.key(0), progress=False)
    w = r.state.params["1"]["w"]
    print(json.dumps({"process": jax.process_index(), "processes": jax.process_count(), "devices": len(jax.devices()),
                      "local_devices": len(jax.local_devices()), "history": r.history,
                      "checksum": float(w.addressable_data(0).sum())}))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
