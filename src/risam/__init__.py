"""risam: referring image segmentation with RISAM.

The names below load on first use, so that ``import risam.cli`` (and ``risam --help``) does not
import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from risam.version import __version__

if TYPE_CHECKING:
    from risam.config import RISAMConfig
    from risam.io.config_files import load_config
    from risam.io.weights import load_weights, save_weights
    from risam.modeling.model import RISAM
    from risam.predictor import RISAMPredictor
    from risam.registry.create import create_model
    from risam.registry.names import get_config, list_models

# Each public name and the module that defines it.
_EXPORTS = {
    "RISAM": "risam.modeling.model",
    "RISAMConfig": "risam.config",
    "RISAMPredictor": "risam.predictor",
    "create_model": "risam.registry.create",
    "get_config": "risam.registry.names",
    "list_models": "risam.registry.names",
    "load_config": "risam.io.config_files",
    "load_weights": "risam.io.weights",
    "save_weights": "risam.io.weights",
}

__all__ = [
    "RISAM",
    "RISAMConfig",
    "RISAMPredictor",
    "__version__",
    "create_model",
    "get_config",
    "list_models",
    "load_config",
    "load_weights",
    "save_weights",
]


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module the first time it is asked for."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'risam' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
