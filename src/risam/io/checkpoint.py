"""Training checkpoints: everything needed to resume exactly, written atomically.

A training checkpoint is a torch file of plain containers and tensors (readable with
``weights_only=True``): the experiment config, the trainable weights, the optimizer state,
the data position (epoch, step within it), the RNG states and the best score so far.
The weights alone, for ``risam evaluate`` and the predictor, go to safetensors files
(:func:`risam.io.weights.save_weights`). Both are written with :func:`risam.io.files.atomic_path`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from risam.io.files import atomic_path
from risam.io.state_dict import CheckpointError, torch_load_weights_only

TRAINING_FORMAT = "risam.training/1"


def save_training_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` ``state`` to ``path`` through :func:`risam.io.files.atomic_path`: never a half-written file,
    permissions from the umask."""
    with atomic_path(path) as temporary:
        torch.save({"format": TRAINING_FORMAT, **state}, temporary)


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_training_state`."""
    path = Path(path)
    state = torch_load_weights_only(path, "expected a risam training checkpoint (last.pt)")
    if not isinstance(state, dict) or state.get("format") != TRAINING_FORMAT:
        raise CheckpointError(f"{path}: key 'format' is not {TRAINING_FORMAT!r}; not a risam training checkpoint")
    return state


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's random generators (CUDA's too, if present)."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": numpy_state[0],
            "keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
