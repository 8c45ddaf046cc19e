"""risam.io.files: atomic writes, permissions from the umask, stale temporaries."""

import json
import os
import stat

import pytest

from risam.io.files import atomic_path, atomic_write, atomic_write_json, atomic_write_text, remove_stale_temporaries


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    """Run the test under this umask, then restore the previous one."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_replace_the_file_with_the_umask_permissions(tmp_path, umask):
    expected = {0o022: 0o644, 0o027: 0o640}[umask]
    text, data, raw, named = (tmp_path / name for name in ("a.txt", "sub/b.json", "c.bin", "d.bin"))
    text.write_text("old")
    text.chmod(0o600)
    atomic_write_text(text, "héllo\nwörld\r\n")
    atomic_write_json(data, {"iou": 0.5})
    with atomic_write(raw, "wb") as handle:
        handle.write(b"\x00\x01")
    with atomic_path(named) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".d.bin.") and temporary.is_file()
        temporary.unlink()  # a writer that puts its own file there, mode 0o600, as safetensors does
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, b"named")
        os.close(descriptor)
    assert text.read_bytes() == "héllo\nwörld\r\n".encode()  # UTF-8, newlines as written
    assert json.loads(data.read_text()) == {"iou": 0.5} and data.read_text().endswith("}\n")
    assert raw.read_bytes() == b"\x00\x01" and named.read_bytes() == b"named"
    assert {_mode(path) for path in (text, data, raw, named)} == {expected}
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt", "b.json", "c.bin", "d.bin"]


def test_a_crash_inside_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="crash"), atomic_write(path) as handle:
        handle.write("half of the new content")
        raise RuntimeError("crash")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'a'"), atomic_write(tmp_path / "x", "a"):
        pass
    assert not list(tmp_path.iterdir())


def test_only_our_own_temporaries_are_removed(tmp_path):
    ours = [".last.pt.abc123.tmp", ".last.safetensors.k2j4_x9q.tmp", ".train.csv.0a1b2c3d.tmp"]
    others = ["last.pt", "notes.tmp", ".keep", ".hidden.tmp", "last.pt.abc123.tmp", ".last.pt.ABC123.tmp"]
    for name in ours + others:
        (tmp_path / name).write_text(name)
    (tmp_path / ".folder.abc123.tmp").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".last.pt.abc123.tmp").write_text("in a subfolder")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == sorted(tmp_path / name for name in ours)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*others, ".folder.abc123.tmp", "sub"])
    assert (tmp_path / "sub" / ".last.pt.abc123.tmp").is_file()
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_the_temporaries_of_our_writes_are_recognised(tmp_path):
    killed = tmp_path / "killed"
    killed.mkdir()
    with atomic_path(tmp_path / "last.pt") as temporary:
        leftover = killed / temporary.name  # what a write killed at this point leaves
        leftover.write_bytes(b"half")
    assert remove_stale_temporaries(killed) == [leftover]
