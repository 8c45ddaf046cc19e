"""The TorchScript reader against torch.jit.load, and proof that no code of a TorchScript file runs on load."""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from torch import Tensor, nn

from hostile_files import write_code_running_archive
from official_formats import save_openai_jit
from risam.config.model import TextEncoderConfig
from risam.io.state_dict import CheckpointError, torch_load_weights_only
from risam.io.torchscript_reader import TorchScriptCodeRefused, read_torchscript_state_dict
from risam.modeling.text_encoder import ClipTextEncoder, convert_clip_checkpoint

WIDTH, HEADS, LAYERS, VOCAB, CONTEXT, OUTPUT = 32, 2, 2, 64, 8, 16
CONFIG = TextEncoderConfig(
    width=WIDTH, heads=HEADS, layers=LAYERS, vocab_size=VOCAB, context_length=CONTEXT, output_dim=OUTPUT, max_words=8
)
TOKENS = torch.tensor([[1, 5, 9, 63, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 63]])

# torch.jit.* is deprecated; tracing warns about Python conditions.
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """OpenAI CLIP's block: nn.MultiheadAttention, ln_1/ln_2, mlp.c_fc/c_proj."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(WIDTH, HEADS)
        self.ln_1 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(
            collections.OrderedDict(
                [("c_fc", nn.Linear(WIDTH, 4 * WIDTH)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * WIDTH, WIDTH))]
            )
        )
        self.ln_2 = nn.LayerNorm(WIDTH)

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock() for _ in range(LAYERS)])

    def forward(self, x: Tensor, attn_mask: Tensor) -> Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class TextTower(nn.Module):
    """CLIP's text side with OpenAI's names, a plain tensor attribute (the mask) and a registered buffer."""

    def __init__(self, visual: nn.Module | None = None) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.positional_embedding = nn.Parameter(torch.randn(CONTEXT, WIDTH) * 0.1)
        self.transformer = Transformer()
        self.ln_final = nn.LayerNorm(WIDTH)
        self.text_projection = nn.Parameter(torch.randn(WIDTH, OUTPUT) * WIDTH**-0.5)
        self.attn_mask = torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1)
        self.register_buffer("logit_scale", torch.tensor(4.6))
        self.visual = nn.Identity() if visual is None else visual
        with torch.no_grad():
            for param in self.parameters():
                param.add_(0.05 * torch.randn_like(param))

    def forward(self, text: Tensor) -> Tensor:
        x = (self.token_embedding(text) + self.positional_embedding).permute(1, 0, 2)
        x = self.ln_final(self.transformer(x, self.attn_mask).permute(1, 0, 2))
        return self.visual(x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection)


class Visual(nn.Module):
    """A leaf whose state only its own TorchScript __setstate__ code sets (benign here)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.sum()

    @torch.jit.export
    def __getstate__(self) -> tuple[Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]


class Storages(nn.Module):
    """Every storage dtype, a strided view with an offset, and a parameter shared by two submodules."""

    def __init__(self) -> None:
        super().__init__()
        for dtype in (torch.float64, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            self.register_buffer(f"b_{str(dtype).removeprefix('torch.')}", (torch.randn(5) * 50).to(dtype))
        self.register_buffer("b_bool", torch.randn(5) > 0)
        self.register_buffer("view", torch.randn(4, 6)[1:, ::2])
        self.first = nn.Linear(3, 3)
        self.second = nn.Linear(3, 3)
        self.second.weight = self.first.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.second(self.first(x)) + self.view.sum()


def _traced(model: nn.Module, example: Tensor) -> torch.jit.ScriptModule:
    return torch.jit.trace(model.eval(), example, check_trace=False)


def _open_clip_model() -> CLIP:
    return CLIP(
        embed_dim=OUTPUT,
        vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=8, image_size=16),
        text_cfg=CLIPTextCfg(context_length=CONTEXT, vocab_size=VOCAB, width=WIDTH, heads=HEADS, layers=LAYERS),
        quick_gelu=True,
    ).eval()


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TorchScript archives, traced and scripted, made by torch.jit.save."""
    root = tmp_path_factory.mktemp("torchscript")
    torch.manual_seed(0)
    paths = {name: root / f"{name}.pt" for name in ("traced", "traced_fp16", "scripted", "storages", "open_clip")}
    tower = TextTower().eval()
    torch.jit.save(_traced(tower, TOKENS), paths["traced"])
    torch.jit.save(_traced(tower, TOKENS).half(), paths["traced_fp16"])
    torch.jit.save(torch.jit.script(tower), paths["scripted"])
    torch.jit.save(torch.jit.script(Storages()), paths["storages"])
    save_openai_jit(_open_clip_model(), paths["open_clip"], image_size=16)
    return paths


def _bits(tensor: Tensor) -> Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


@pytest.mark.parametrize("name", ["traced", "traced_fp16", "scripted", "storages", "open_clip"])
def test_state_dict_is_torch_jit_loads_bit_for_bit(archives: dict[str, Path], name: str) -> None:
    expected = torch.jit.load(archives[name]).state_dict()
    found = read_torchscript_state_dict(archives[name])
    assert list(found) == list(expected)
    for key, value in expected.items():
        assert (found[key].dtype, found[key].shape) == (value.dtype, value.shape), key
        assert (found[key].stride(), found[key].storage_offset()) == (value.stride(), value.storage_offset()), key
        assert torch.equal(_bits(found[key]), _bits(value)), key


def test_plain_tensor_attributes_are_left_out_and_buffers_kept(archives: dict[str, Path]) -> None:
    found = read_torchscript_state_dict(archives["scripted"])
    assert "logit_scale" in found and "transformer.resblocks.1.attn.in_proj_weight" in found
    assert "attn_mask" not in found
    assert torch.jit.load(archives["scripted"]).attn_mask.shape == (CONTEXT, CONTEXT)  # in the archive all the same
    storages = read_torchscript_state_dict(archives["storages"])
    assert (
        storages["first.weight"].untyped_storage().data_ptr() == storages["second.weight"].untyped_storage().data_ptr()
    )


def _encoder(path: Path) -> ClipTextEncoder:
    encoder = ClipTextEncoder(CONFIG).eval()
    encoder.load_clip_checkpoint(path)
    return encoder


@pytest.mark.parametrize("name", ["traced", "scripted", "open_clip"])
def test_text_encoder_loads_archive_without_torch_jit(
    archives: dict[str, Path], name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dict = torch.jit.load(archives[name]).state_dict()
    reference = tmp_path / "from_torch_jit.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state_dict.items()}, reference)
    with torch.no_grad():
        expected, _ = _encoder(reference)(TOKENS)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load was called")

    monkeypatch.setattr(torch.jit, "load", refuse)
    with torch.no_grad():
        features, _ = _encoder(archives[name])(TOKENS)
    assert torch.equal(features, expected)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A TorchScript archive whose loading writes ``marker``, and ``marker``, absent.

    torch.jit.load is run on it once here, so the tests below fail if it stops writing the marker.
    """
    root = tmp_path_factory.mktemp("crafted")
    marker, path = root / "written-on-load", root / "ViT-B-16.pt"
    write_code_running_archive(path, marker)
    return path, marker


def _load_clip(path: Path, tmp_path: Path) -> None:
    ClipTextEncoder(CONFIG).load_clip_checkpoint(path)


def _convert(path: Path, tmp_path: Path) -> None:
    convert_clip_checkpoint(path, tmp_path / "text.safetensors")


def _sam_or_training_checkpoint(path: Path, tmp_path: Path) -> None:
    torch_load_weights_only(path, "expected a SAM checkpoint")


def _sam_checkpoint_with_torch_before_2_6(path: Path, tmp_path: Path) -> None:
    """As above, with torch.load doing what it did before torch 2.6: TorchScript zips go to torch.jit.load."""
    load = torch.load
    torch.load = lambda file, **kwargs: torch.jit.load(file)
    try:
        torch_load_weights_only(path, "expected a SAM checkpoint")
    finally:
        torch.load = load


def _reader(path: Path, tmp_path: Path) -> None:
    read_torchscript_state_dict(path)


@pytest.mark.parametrize(
    "load", [_load_clip, _convert, _sam_or_training_checkpoint, _sam_checkpoint_with_torch_before_2_6, _reader]
)
def test_crafted_archive_is_refused_and_nothing_runs(
    crafted: tuple[Path, Path], tmp_path: Path, load: Callable[[Path, Path], None]
) -> None:
    path, marker = crafted
    with pytest.raises(CheckpointError) as error:
        load(path, tmp_path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    assert not marker.exists()
    assert not (tmp_path / "text.safetensors").exists()
    if load in (_load_clip, _convert):
        assert "WritesFileOnLoad defines __setstate__" in message
        assert f"risam convert-clip {path} DST.safetensors --run-torchscript" in message
    if load is _reader:
        assert isinstance(error.value, TorchScriptCodeRefused)


def test_conversion_writes_the_text_tower(archives: dict[str, Path], tmp_path: Path) -> None:
    destination = tmp_path / "text.safetensors"
    assert convert_clip_checkpoint(archives["traced_fp16"], destination) == 5 + 12 * LAYERS
    written = safetensors.torch.load_file(destination)
    found = read_torchscript_state_dict(archives["traced_fp16"])
    assert "logit_scale" not in written and written["text_projection"].dtype == torch.float16
    assert all(torch.equal(value, found[key]) for key, value in written.items())
    with torch.no_grad():
        assert torch.equal(_encoder(destination)(TOKENS)[0], _encoder(archives["traced_fp16"])(TOKENS)[0])


def test_conversion_runs_torchscript_only_when_asked(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source, destination = tmp_path / "clip.pt", tmp_path / "text.safetensors"
    torch.jit.save(torch.jit.script(TextTower(visual=Visual())), source)
    expected = torch.jit.load(source).state_dict()
    with pytest.raises(CheckpointError, match=r"Visual defines __setstate__.*--run-torchscript"):
        convert_clip_checkpoint(source, destination)
    with pytest.raises(CheckpointError, match=r"Visual defines __setstate__.*--run-torchscript"):
        ClipTextEncoder(CONFIG).load_clip_checkpoint(source)
    assert not destination.exists()

    count = convert_clip_checkpoint(source, destination, run_torchscript=True)
    written = safetensors.torch.load_file(destination)
    assert count == len(written) == len(expected) - 2  # without logit_scale and visual.weight
    assert all(torch.equal(value, expected[key]) for key, value in written.items())
    assert safetensors.safe_open(destination, "pt").metadata()["source"] == "clip.pt"


class _Pickled:
    """Pickles as ``function(*args)``, then BUILD with ``state`` if given: the opcodes of a crafted data.pkl."""

    def __init__(self, function: object, args: tuple, state: object = None) -> None:
        self.function, self.args, self.state = function, args, state

    def __reduce__(self) -> tuple:
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


class _StorageId:
    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> tuple | None:
        if isinstance(obj, _StorageId):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def _tensor(key: str, numel: int, size: tuple, stride: tuple, offset: int = 0, state: object = None) -> _Pickled:
    args = (_StorageId(key, numel), offset, size, stride, False, collections.OrderedDict())
    return _Pickled(torch._utils._rebuild_tensor_v2, args, state)


_CODE = 'class M(Module):\n  __parameters__ = ["weight", ]\n  __buffers__ = []\n  weight : Tensor\n'
_STORAGE = torch.arange(6, dtype=torch.float32)


def _write_archive(
    path: Path, weight: object, storage: bytes = _STORAGE.numpy().tobytes(), byteorder: str = ""
) -> Path:
    """A TorchScript archive written by hand: module ``__torch__.M`` holding ``weight``, one storage ``data/0``."""
    body = io.BytesIO()
    _Pickler(body, protocol=2).dump({"weight": weight, "training": False})
    data_pkl = b"\x80\x02c__torch__\nM\n)\x81" + body.getvalue()[2:-1] + b"b."
    contents = {"data.pkl": data_pkl, "code/__torch__.py": _CODE, "constants.pkl": b"\x80\x02).", "version": "3\n"}
    contents |= {"data/0": storage} | ({"byteorder": byteorder} if byteorder else {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(f"archive/{name}", data)
    return path


def test_hand_made_archive_is_read(tmp_path: Path) -> None:
    """The control for the crafted archives below: the same writer, with nothing wrong."""
    path = _write_archive(tmp_path / "ok.pt", _tensor("0", 6, (2, 2), (1, 3), offset=1))
    assert torch.equal(read_torchscript_state_dict(path)["weight"], _STORAGE.as_strided((2, 2), (1, 3), 1))
    assert torch.equal(torch.jit.load(path).state_dict()["weight"], _STORAGE.as_strided((2, 2), (1, 3), 1))
    swapped = _STORAGE.numpy().byteswap().tobytes()
    big_endian = _write_archive(tmp_path / "big.pt", _tensor("0", 6, (6,), (1,)), swapped, byteorder="big")
    assert torch.equal(read_torchscript_state_dict(big_endian)["weight"], _STORAGE)


def test_refused_global_is_named_and_not_called(tmp_path: Path) -> None:
    marker = tmp_path / "made-by-unpickling"
    path = _write_archive(tmp_path / "ViT-B-16.pt", _Pickled(os.makedirs, (str(marker),)))
    with pytest.raises(
        TorchScriptCodeRefused, match=r"ViT-B-16\.pt: data\.pkl refers to os\.makedirs.*nothing"
    ) as error:
        read_torchscript_state_dict(path)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match=r"os\.makedirs.*risam convert-clip .*ViT-B-16\.pt DST\.safetensors"):
        ClipTextEncoder(CONFIG).load_clip_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("weight", "storage_bytes", "message"),
    [
        (_tensor("0", 6, (2, 4), (4, 1)), 24, "tensor view outside its storage"),
        (_tensor("0", 6, (2,), (1,), offset=5), 24, "tensor view outside its storage"),
        (_tensor("0", 6, (2,), (-1,), offset=3), 24, "tensor view outside its storage"),
        (_tensor("0", 6, (6,), (1,)), 28, r"data/0 holds 28 bytes, not the 24 expected"),
        (_tensor("0", 6, (2,), (1,)), 20, r"data/0 holds 20 bytes, not the 24 expected"),
        (_tensor("0", 6, (6,), (1,)), 1 << 24, r"data/0 holds 16777216 bytes, not the 24 expected"),
        (_tensor("1", 6, (6,), (1,)), 24, r"KeyError"),
        # BUILD on a tensor would call Tensor.__setstate__, whose set_ makes views outside the storage.
        (_tensor("0", 6, (1,), (1,), state=(_tensor("0", 6, (1,), (1,)), 0, (1000,), (1,))), 24, "UnpicklingError"),
        (torch.zeros(2), 24, "not a TorchScript module"),
    ],
    ids=[
        "size",
        "offset",
        "negative-stride",
        "long-storage",
        "short-storage",
        "zip-bomb",
        "missing-storage",
        "build-on-tensor",
        "no-module",
    ],
)
def test_malformed_archive_is_refused(tmp_path: Path, weight: object, storage_bytes: int, message: str) -> None:
    path = tmp_path / "ViT-B-16.pt"
    if isinstance(weight, Tensor):  # a torch.save zip: data.pkl holds a tensor, not a module
        torch.save(weight, path)
    else:
        storage = _STORAGE.numpy().tobytes() if storage_bytes == 24 else bytes(storage_bytes)
        _write_archive(path, weight, storage)
    with pytest.raises(CheckpointError, match=rf"ViT-B-16\.pt.*{message}") as error:
        read_torchscript_state_dict(path)
    assert "\n" not in str(error.value)


def test_truncated_archive_is_refused(archives: dict[str, Path], tmp_path: Path) -> None:
    data = archives["scripted"].read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path = tmp_path / "truncated.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"truncated\.pt could not be read as a TorchScript archive"):
            read_torchscript_state_dict(path)
        with pytest.raises(CheckpointError, match=r"truncated\.pt"):
            ClipTextEncoder(CONFIG).load_clip_checkpoint(path)
