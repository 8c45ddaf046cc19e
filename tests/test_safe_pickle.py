import collections
import os
import pickle

import pytest

from risam.data.masks import AnnotationError
from risam.data.safe_pickle import load_pickle

REFS = [
    {
        "ref_id": 1,
        "ann_id": 101,
        "sentences": [{"sent_id": 11, "sent": "the man", "raw": "The man.", "tokens": ["the", "man"]}],
        "score": 0.5,
        "flag": True,
        "nothing": None,
    }
]


class RunsCommand:
    """Unpickling this with the standard unpickler runs a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class PlainClass:
    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_loads_in_every_protocol(tmp_path, protocol):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=protocol))
    assert load_pickle(path) == REFS


def test_python2_byte_strings_decode_as_utf8(tmp_path):
    # Protocol 2 as Python 2 writes it: [{'sent': 'café', 'sent_id': 7}] with py2 str (SHORT_BINSTRING) values.
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02]q\x00}q\x01(U\x04sentq\x02U\x05caf\xc3\xa9q\x03U\x07sent_idq\x04K\x07ua.")
    assert load_pickle(path) == [{"sent": "café", "sent_id": 7}]


def test_a_pickle_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "payload": RunsCommand(f"touch {marker}")}], protocol=2))
    with pytest.raises(AnnotationError) as raised:
        load_pickle(path)
    assert str(path) in str(raised.value)
    assert f"{os.system.__module__}.system" in str(raised.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        (PlainClass(), f"{__name__}.PlainClass"),
        (collections.OrderedDict(a=1), "collections.OrderedDict"),
        ({1, 2}, "__builtin__.set"),  # as protocol 2 stores it for Python 2
    ],
)
def test_any_global_is_refused(tmp_path, value, refused):
    path = tmp_path / "data.p"
    path.write_bytes(pickle.dumps(value, protocol=2))
    with pytest.raises(AnnotationError, match="refused") as raised:
        load_pickle(path)
    assert refused in str(raised.value)
    assert str(path) in str(raised.value)


def test_truncated_and_corrupt_files_raise_annotation_error_naming_the_file(tmp_path):
    data = pickle.dumps(REFS, protocol=4)
    truncated = tmp_path / "truncated.p"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.p"
    garbage.write_bytes(b"this is not a pickle")
    for path in (truncated, garbage):
        with pytest.raises(AnnotationError, match="not a readable pickle") as raised:
            load_pickle(path)
        assert str(path) in str(raised.value)


def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    path = tmp_path / "refs(unc).p"
    with pytest.raises(FileNotFoundError, match=r"refs\(unc\)\.p"):
        load_pickle(path)
