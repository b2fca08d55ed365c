"""Reading a benchmark release as its authors publish it: parquet (Hugging Face exports), JSON arrays
or JSON Lines, found under the first of several names a release has used.

Parquet needs pyarrow, which tensorflow-datasets (a dependency of w4s-jax) already installs; it is
imported only when a parquet file is read.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from w4s_jax.data_errors import DataError
from w4s_jax.tasks.loaders import Row, read_json_array, read_jsonl, require_file


def first_present(folder: pathlib.Path, names: Sequence[str]) -> pathlib.Path:
    """The first of `names` that is a file in `folder`; MissingData naming the first name otherwise
    (with what the folder holds, or which directory is missing)."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return require_file(folder / names[0])


def read_release(path: pathlib.Path) -> list[Row]:
    """Rows of a .parquet, .json (one array of objects) or .jsonl / .jsonl.gz file, by its suffix."""
    name = path.name
    if name.endswith(".parquet"):
        return read_parquet(path)
    if name.endswith(".json"):
        return read_json_array(path)
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_jsonl(path)
    raise DataError(f"{path}: expected a .parquet, .json or .jsonl file")


def read_parquet(path: pathlib.Path) -> list[Row]:
    """Rows of a parquet file (location = file:row N, counted from 1); list columns come back as lists."""
    path = require_file(path)
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(f"{path}: reading parquet needs pyarrow (pip install pyarrow), or give the release "
                        "as .json / .jsonl with the same fields") from None
    try:
        records = parquet.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises its own ArrowInvalid / OSError kinds for a bad file
        raise DataError(f"{path}: not a readable parquet file ({type(error).__name__}: {error})") from None
    return [Row(f"{path}:row {index + 1}", record) for index, record in enumerate(records)]
