"""Files crafted to attack a reader: shared by the tests that prove risam refuses them."""

import struct
import zlib
from pathlib import Path

import torch
from torch import Tensor, nn


class WritesFileOnLoad(nn.Module):
    """Loading it with torch.jit.load creates ``marker``: its TorchScript __setstate__ calls torch.from_file."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))
        self.path = str(marker)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[Tensor, str, bool]:
        return (self.weight, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[Tensor, str, bool]) -> None:
        # shared=True opens the file with O_CREAT: an 8-byte file appears at state[1].
        self.weight = state[0] + torch.from_file(state[1], True, 2).mul(0)
        self.path = state[1]
        self.training = state[2]


def write_code_running_archive(path: Path, marker: Path) -> None:
    """A TorchScript archive at ``path`` whose loading with torch.jit.load creates ``marker``.

    torch.jit.load is run on it once here, and ``marker`` removed again, so that a test using it
    fails if torch stops running the crafted code (it would then prove nothing).
    """
    torch.jit.save(torch.jit.script(WritesFileOnLoad(marker)), path)
    assert not marker.exists()
    torch.jit.load(path)
    assert marker.exists(), "torch.jit.load no longer runs the crafted __setstate__: the tests prove nothing"
    marker.unlink()


def write_png_declaring(path: Path, width: int, height: int) -> None:
    """A valid little PNG file whose header declares ``width`` x ``height`` (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
