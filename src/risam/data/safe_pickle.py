"""Reading pickles that hold only plain data, such as REFER's ``refs(unc).p``.

REFER publishes its references as pickles of dicts, lists, strings and numbers. Unpickling
can call any importable function, so a pickle from an untrusted download could run code;
this reader refuses every global (class or function) before anything is called.

Python 2 pickles store byte strings for ``str``; they are decoded as UTF-8. The published
REFER files load with Python 3's default ASCII decoding, so their text is plain ASCII and
reads the same either way; UTF-8 also reads non-ASCII text of other files correctly.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import BinaryIO, NoReturn

from risam.data.masks import AnnotationError
from risam.io.pickle_scan import pickle_opcodes_problem
from risam.io.reading import read_bytes

# What the unpickler raises on a truncated or corrupt file.
_CORRUPT_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    OverflowError,
)


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, tuples, strings, numbers, booleans and None only."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="utf-8")
        self.path = path

    def find_class(self, module: str, name: str) -> NoReturn:
        raise AnnotationError(
            f"{self.path}: refused to load the global {module}.{name}; this file may only hold plain data "
            "(dicts, lists, strings, numbers, booleans, None), and nothing in it was run"
        )


def load_pickle(path: str | Path) -> object:
    """The plain-data object stored in the pickle file ``path``.

    Raises FileNotFoundError naming ``path`` when it does not exist, and AnnotationError naming
    it when the file references a class or function (the refused ``module.name`` is named too)
    or is not a readable pickle (corrupt, truncated).
    """
    path = Path(path)
    data = read_bytes(path)
    try:
        problem = pickle_opcodes_problem(io.BytesIO(data))
        if problem:
            raise AnnotationError(
                f"{path}: not a readable pickle ({problem}); the file may be truncated or corrupt, nothing in it "
                "was loaded"
            )
        return _PlainDataUnpickler(io.BytesIO(data), path).load()
    except AnnotationError:
        raise
    except _CORRUPT_PICKLE_ERRORS as error:
        raise AnnotationError(
            f"{path}: not a readable pickle ({type(error).__name__}: {' '.join(str(error).split())}); the file may "
            "be truncated or corrupt"
        ) from error
