"""The jobs experiments run: one training run of the shared trainer with a configuration,
and the summaries every experiment needs from a trained network."""
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .pool import log_prefixed
from .runner import TINY_TRAIN_SIZE

# Each run evaluates a pass while the next one trains, although its process has one Numba thread:
# the evaluation threads fill the cores that stand idle while the last jobs finish (the suite's
# wall time with and without, measured by scripts/time_suite.py: results/README.md).
EVALUATE_CONCURRENTLY = True

def default_recipe_note():
    """The line saying a report's runs used TrainConfig's defaults (the default recipe)."""
    from ..training.config import DEFAULT_RECIPE, RECIPES

    settings = ", ".join(f"{k} {v}" for k, v in RECIPES[DEFAULT_RECIPE].items())
    return (f"Trained with the default recipe `{DEFAULT_RECIPE}` ({settings}); every recipe over "
            "5 seeds: results/recipes.")


def default_recipe(**settings):
    """TrainConfig settings: the default recipe's, written out (so a saved run of an earlier
    default is not taken for one of this default), with `settings` on top."""
    from ..training.config import DEFAULT_RECIPE

    return recipe(DEFAULT_RECIPE, **settings)


def recipe(name, **settings):
    """TrainConfig settings: a training recipe's (lenet5.training.config.RECIPES) with `settings` on top."""
    from ..training.config import RECIPES

    return dict(RECIPES[name], **settings)


@lru_cache(maxsize=2)
def mnist(data_dir=None):
    from ..data.mnist import load_mnist

    return load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)


def train_run(key, config, runs, data_dir=None, tiny=False, keep_outputs=False, reuse=False):
    """One run of lenet5.training.trainer.Trainer into runs/key. config: TrainConfig fields. reuse: continue
    the run saved there if it has the same settings (an interrupted run), else start afresh
    (replacing what is there). Returns the metrics history, the final test error, and
    (keep_outputs) the test-set RBF outputs of the final network."""
    config = dict(config)
    if tiny:  # (the pass count is already 1: Options.passes)
        config["train_size"] = min(config.get("train_size") or TINY_TRAIN_SIZE, TINY_TRAIN_SIZE)
    data = mnist(data_dir)
    trainer, history, seconds = train_into(Path(runs) / key, config, data, reuse, log_prefixed(key))
    result = {"config": config, "history": history, "seconds": seconds,
              "final": history[-1] if history else None, "checkpoint": str(trainer.checkpoint_path)}
    if keep_outputs:
        result.update(test_outputs(trainer.net, data[1][0], data[1][1]))
    return result


def train_into(out, config, data, reuse, log):
    """Train with the shared trainer into the folder `out` (continuing the run saved there when
    `reuse` and it has the same settings, else replacing it); (trainer, history, seconds), the
    seconds being the run's own training time over however many sittings it took (its passes'
    seconds summed, so a resumed run counts the passes it trained before too)."""
    from ..training.trainer import TrainConfig, Trainer

    settings = TrainConfig(**config)
    net, state = saved_run(out / "checkpoint.npz", settings, log) if reuse else (None, None)
    started = time.perf_counter()
    trainer = Trainer(settings, data, out, net=net, state=state, progress=False, log=log,
                      evaluate_concurrently=EVALUATE_CONCURRENTLY)
    history = trainer.run(overwrite=state is None)
    if history:
        return trainer, history, round(sum(row["seconds"] for row in history), 1)
    return trainer, history, round(time.perf_counter() - started, 1)


def saved_run(path, config, log):
    """(net, state) of the run saved at `path` when it was trained with `config`, else
    (None, None): nothing there, unreadable, or other settings."""
    import json

    from ..core.model import LeNet5
    from ..errors import Lenet5Error

    if not path.exists():
        return None, None
    try:
        net, state = LeNet5.load(path, with_state=True)
    except Lenet5Error as e:
        log(f"not resuming: {e}")
        return None, None
    from ..training.config import saved_config

    saved = saved_config(state["state.config"]) if "state.config" in state else None
    if saved != json.loads(config.to_json()):
        log(f"not resuming {path}: it was trained with other settings")
        return None, None
    done = int(state.get("state.epoch", 1)) - 1  # (the last may still await its evaluation)
    log(f"resuming {path} ({done} of {config.epochs} passes done)")
    return net, state


def test_outputs(net, images, labels):
    """RBF outputs on the test set and the misclassified images (index, true, predicted)."""
    y = net.forward(images.astype(net.dtype))
    predicted = np.argmin(y, axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return {"test_y": y.tolist(), "misclassified": wrong.tolist(),
            "true": labels[wrong].tolist(), "predicted": predicted[wrong].tolist()}


def per_pass(results, column):
    """{key: result} -> array (runs, passes) of one metrics column."""
    return np.array([[row[column] for row in r["history"]] for r in results.values()])


def spread(values):
    """mean, min, max of a 1-D sequence."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.min()), float(values.max())


def mean_range(values, digits=2):
    mean, lo, hi = spread(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
