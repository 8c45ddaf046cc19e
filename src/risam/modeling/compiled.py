"""``torch.compile`` for a frozen encoder, with eager execution where compiling fails.

``torch.compile`` compiles at the first call, so a missing C++ compiler, an unsupported operator or a
backend error shows only then. :func:`compile_or_eager` catches that first failure, warns once in one
line and runs the module eager from then on; an error of the module's own (a wrong input shape) is
raised as it is.

Measured on ViT-B at 1024 x 1024 (``python -m benchmarks.encoder_cpu``): compiling takes 1.5-2 min
with a cold cache on 2 CPU cores; the compile cost, cold and warm, and what it gains are in the README.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch._dynamo.exc import TorchDynamoException


def compile_or_eager(module: nn.Module, name: str) -> nn.Module:
    """Make ``module`` (in place; returned) run through ``torch.compile`` with static shapes.

    Its parameters and state-dict keys stay as they are. If compiling fails, one warning names
    ``name`` and the error, and the module runs eager from then on.
    """
    eager = module.forward
    compiled = torch.compile(eager, dynamic=False)
    failed = False

    def forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        if not failed:
            try:
                return compiled(*args, **kwargs)
            except TorchDynamoException as error:
                failed = True
                text = str(error).strip()
                reason = text.splitlines()[0] if text else type(error).__name__
                warnings.warn(f"torch.compile of the {name} failed ({reason}); it runs eager", stacklevel=2)
        return eager(*args, **kwargs)

    module.forward = forward
    return module
