"""risam: referring image segmentation with RISAM."""

from risam.config import RISAMConfig
from risam.io.weights import load_weights, save_weights
from risam.modeling.model import RISAM
from risam.predictor import RISAMPredictor
from risam.registry import create_model, get_config, list_models
from risam.version import __version__

__all__ = [
    "RISAM",
    "RISAMConfig",
    "RISAMPredictor",
    "__version__",
    "create_model",
    "get_config",
    "list_models",
    "load_weights",
    "save_weights",
]
