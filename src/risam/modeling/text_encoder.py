"""The frozen CLIP text encoder: open_clip's ``TextTransformer``, per-token outputs and padding mask.

RISAM needs every token's feature, not only CLIP's pooled sentence feature, so ``forward``
runs open_clip's submodules itself (``TextTransformer.forward`` applies the full 77 x 77
causal mask, which does not fit the shorter RIS sequences, and pools).

Weights come from OpenAI's CLIP files (``ViT-B-16.pt``: TorchScript archives of the whole
model) or open_clip checkpoints (``.safetensors``, ``.bin``, ``.pt`` state dicts). Both use
OpenAI's key names; only the text tower's keys are kept. No code in these files runs: the
TorchScript archives are read by :mod:`risam.io.torchscript_reader`, not torch.jit, and
one that needs its code to be read is refused; :func:`convert_clip_checkpoint` with
``run_torchscript=True`` is the explicit, one-time way to turn such a file into safetensors.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import QuickGELU, TextTransformer
from torch import Tensor, nn

from risam.config.model import TextEncoderConfig
from risam.io.files import readable_file
from risam.io.state_dict import (
    CheckpointError,
    is_torchscript_archive,
    load_state_dict_strict,
    torch_load_weights_only,
)
from risam.io.torchscript_reader import TorchScriptCodeRefused, read_torchscript_state_dict
from risam.io.weights import atomic_save_safetensors, load_safetensors

PAD_ID = 0
_TEXT_TOWER_KEYS = ("positional_embedding", "text_projection")
_TEXT_TOWER_PREFIXES = ("token_embedding.", "transformer.", "ln_final.")
_EXPECTED_FILES = (
    "expected an OpenAI CLIP .pt file (TorchScript archive) or an open_clip checkpoint "
    "(.safetensors, or a .bin/.pt/.pth state dict)"
)
TEXT_TOWER_FORMAT = "risam.clip_text_tower/1"


@functools.lru_cache(maxsize=1)
def _bpe_tokenizer() -> SimpleTokenizer:
    """open_clip's tokenizer with its shipped BPE vocabulary (read once: it is slow)."""
    return SimpleTokenizer()


class ClipTextEncoder(nn.Module):
    """CLIP's text transformer returning per-token features and the padding mask.

    ``self.model`` is open_clip's ``TextTransformer``; its state-dict keys are OpenAI
    CLIP's text-tower names (``token_embedding.weight``, ``positional_embedding``,
    ``transformer.resblocks.N.*``, ``ln_final.*``, ``text_projection``). The activation is
    QuickGELU, as in OpenAI's CLIP, unless ``config.quick_gelu`` is False (open_clip models
    trained with GELU, such as the LAION ``ViT-B-16``).
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.model = TextTransformer(
            context_length=config.context_length,
            vocab_size=config.vocab_size,
            width=config.width,
            heads=config.heads,
            layers=config.layers,
            output_dim=config.output_dim,
            pool_type="argmax",
            act_layer=QuickGELU if config.quick_gelu else nn.GELU,
        )

    def tokenize(self, texts: str | Sequence[str]) -> torch.LongTensor:
        """CLIP BPE token ids, B x ``max_words``, zero-padded.

        The start token comes first and the end token last; longer expressions are
        truncated with the end token kept, as open_clip does.
        """
        batch = [texts] if isinstance(texts, str) else list(texts)
        return _bpe_tokenizer()(batch, context_length=self.config.max_words)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each expression has before truncation, start and end tokens included."""
        tokenizer = _bpe_tokenizer()
        return [len(tokenizer.encode(text)) + 2 for text in texts]

    def token_words(self, tokens: Tensor) -> list[str]:
        """The text of each token id of one expression (L ids), e.g. ``['<start>', 'the', 'dog', '<end>']``."""
        tokenizer = _bpe_tokenizer()
        names = {
            tokenizer.encoder["<start_of_text>"]: "<start>",
            tokenizer.encoder["<end_of_text>"]: "<end>",
            PAD_ID: "",
        }
        return [names.get(int(t), tokenizer.decode([int(t)]).strip()) for t in tokens]

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token features of ``tokens`` (B x L token ids, L <= context_length).

        Returns the features, B x L x C' (C' = ``config.feature_dim``: the text projection
        applied to every token when ``config.project_tokens``, else the ``ln_final``
        output of width ``config.width``), and the padding mask, B x L, True at padding
        (token id 0), the convention of PyTorch's ``key_padding_mask``. With the
        projection, the end token's row (argmax of the ids) is CLIP's pooled text feature.
        """
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be B x L token ids, got shape {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.config.context_length:
            raise ValueError(
                f"tokens have length {length}, more than the text encoder's context_length="
                f"{self.config.context_length}; tokenize with max_words <= context_length"
            )
        model = self.model
        x = model.token_embedding(tokens) + model.positional_embedding[:length]
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)
        if self.config.project_tokens:
            x = x @ model.text_projection
        return x, tokens == PAD_ID

    def load_clip_checkpoint(self, path: str | os.PathLike) -> None:
        """Load the text tower of a local CLIP checkpoint, strictly, without running code from the file.

        Accepted: OpenAI's ``.pt`` files (TorchScript archives, or plain state dicts) and
        open_clip checkpoints (``.safetensors``; ``.bin``/``.pt``/``.pth`` state dicts,
        possibly under ``"state_dict"`` with a ``module.`` prefix, as open_clip's training
        saves them). TorchScript archives are read by
        :func:`~risam.io.torchscript_reader.read_torchscript_state_dict`, never
        torch.jit; one that needs its own code to be read is refused with a CheckpointError
        naming ``risam convert-clip ... --run-torchscript``, the explicit opt-in. Pickles are
        read with ``weights_only=True``. The vision tower and the other non-text keys are
        dropped; the text keys must fit exactly, otherwise CheckpointError names the file and
        the keys.
        """
        path = Path(path)
        load_state_dict_strict(self.model, _read_text_tower(path), source=str(path))


def convert_clip_checkpoint(
    source: str | os.PathLike, destination: str | os.PathLike, run_torchscript: bool = False
) -> int:
    """Write the text tower of the CLIP checkpoint ``source`` to the safetensors file ``destination``.

    ``source`` is any file :meth:`ClipTextEncoder.load_clip_checkpoint` accepts; the tensors
    keep OpenAI's key names and dtypes, so ``destination`` loads there like the original.
    With ``run_torchscript=True`` only, a TorchScript archive that the safe reader refuses
    is loaded with ``torch.jit.load``, which runs the code it holds: for files you trust.
    The file is written atomically; returns the number of tensors written.
    """
    source = Path(source)
    text_tower = _read_text_tower(source, run_torchscript=run_torchscript)
    if not text_tower:
        raise CheckpointError(f"{source} holds no CLIP text-tower keys; {_EXPECTED_FILES}")
    # clone: a file's tensors may share storage, which safetensors refuses to write.
    tensors = {key: value.clone(memory_format=torch.contiguous_format) for key, value in text_tower.items()}
    atomic_save_safetensors(tensors, destination, {"format": TEXT_TOWER_FORMAT, "source": source.name})
    return len(tensors)


def _read_text_tower(path: Path, run_torchscript: bool = False) -> dict[str, Tensor]:
    """The text-tower tensors of the CLIP checkpoint at ``path``, with OpenAI's key names.

    Only with ``run_torchscript`` does a TorchScript archive that the safe reader refuses go
    through ``torch.jit.load``.
    """
    path = readable_file(path, "CLIP checkpoint")
    if path.suffix == ".safetensors":
        try:
            checkpoint = load_safetensors(path)
        except Exception as err:
            raise CheckpointError(f"{path} could not be read ({type(err).__name__}); {_EXPECTED_FILES}") from err
    elif is_torchscript_archive(path):
        checkpoint = _read_torchscript(path, run_torchscript)
    else:
        checkpoint = torch_load_weights_only(path, _EXPECTED_FILES)
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not all(isinstance(key, str) for key in checkpoint):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__} that is not a state dict; expected a CLIP state "
            f"dict mapping parameter names to tensors ({_EXPECTED_FILES})"
        )
    if checkpoint and all(key.startswith("module.") for key in checkpoint):
        checkpoint = {key.removeprefix("module."): value for key, value in checkpoint.items()}
    text_tower = {
        key: value
        for key, value in checkpoint.items()
        if key in _TEXT_TOWER_KEYS or key.startswith(_TEXT_TOWER_PREFIXES)
    }
    not_tensors = sorted(key for key, value in text_tower.items() if not isinstance(value, Tensor))
    if not_tensors:
        raise CheckpointError(f"{path}: the values of {not_tensors[:12]} are not tensors; {_EXPECTED_FILES}")
    return text_tower


def _read_torchscript(path: Path, run_torchscript: bool) -> dict[str, Tensor]:
    """The state dict of a TorchScript archive: read safely, or with torch.jit.load when allowed and needed."""
    try:
        return read_torchscript_state_dict(path)
    except TorchScriptCodeRefused as err:
        if not run_torchscript:
            raise CheckpointError(
                f"{err}. If you trust the file, convert it once, running its code: "
                f"risam convert-clip {shlex.quote(str(path))} DST.safetensors --run-torchscript"
            ) from err
    try:
        return torch.jit.load(path, map_location="cpu").state_dict()
    except Exception as err:
        detail = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path}: torch.jit.load failed ({type(err).__name__}: {detail})") from err
