"""risam: referring image segmentation with RISAM."""

__version__ = "0.1.0"

from risam.configs import RISAMConfig
from risam.modeling.risam import RISAM
from risam.predictor import RISAMPredictor
from risam.registry import create_model, get_config, list_models
from risam.weights import load_weights, save_weights

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
