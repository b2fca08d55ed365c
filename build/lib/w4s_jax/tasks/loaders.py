"""Reading benchmark files into rows that remember where they came from, served through grain.

Every row carries its location ("file:line"), so a malformed row gives an error that names the
file, the line and the field. Single-file benchmarks are split by a seeded shuffle (1:4 validate to
test, as in AFlow); the split is a pure function of the file and the seed.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import pathlib
import random
from collections.abc import Callable, Sequence

import grain

from w4s_jax.data_errors import DataError, MissingData


@dataclasses.dataclass(frozen=True)
class Row:
    """One parsed record and its location, e.g. `data/gsm8k/test.jsonl:12`."""

    location: str
    fields: dict

    def get(self, name: str, kind: type | tuple[type, ...] = str) -> object:
        """The field's value, checked for presence and type (a clear DataError otherwise)."""
        if name not in self.fields:
            raise DataError(f"{self.location}: missing field '{name}' (fields present: {sorted(self.fields)})")
        value = self.fields[name]
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise DataError(f"{self.location}: field '{name}' should be {names}, got {type(value).__name__}")
        return value


def require_file(path: pathlib.Path) -> pathlib.Path:
    """The path, or MissingData saying what its folder holds instead (or that the folder is missing)."""
    if not path.is_file():
        if path.parent.is_dir():
            raise MissingData(str(path), f"{path.parent} holds {sorted(p.name for p in path.parent.iterdir())}")
        missing = path.parent
        while not missing.parent.is_dir():
            missing = missing.parent
        raise MissingData(str(path), f"directory {missing} does not exist")
    return path


def read_jsonl(path: pathlib.Path) -> list[Row]:
    """Rows of a .jsonl or .jsonl.gz file; a line that is not a JSON object is an error naming it."""
    path = require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno})") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
            rows.append(Row(f"{path}:{number}", value))
    return rows


def read_json_array(path: pathlib.Path) -> list[Row]:
    """Rows of a file holding one JSON array of objects (location = file:[index])."""
    path = require_file(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(values, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(values).__name__}")
    rows = []
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise DataError(f"{path}:[{index}]: expected a JSON object, got {type(value).__name__}")
        rows.append(Row(f"{path}:[{index}]", value))
    return rows


def read_tsv(path: pathlib.Path, columns: Sequence[str]) -> list[Row]:
    """Rows of a header-less TSV file with exactly `columns` per line."""
    path = require_file(path)
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != len(columns):
                raise DataError(f"{path}:{number}: expected {len(columns)} tab-separated fields "
                                f"({', '.join(columns)}), got {len(parts)}")
            rows.append(Row(f"{path}:{number}", dict(zip(columns, parts))))
    return rows


def read_csv(path: pathlib.Path) -> list[Row]:
    """Rows of a CSV file with a header line (location = file:row number, header = row 1)."""
    path = require_file(path)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return [Row(f"{path}:row {index + 2}", dict(record)) for index, record in enumerate(reader)]


def seeded_split(rows: Sequence[Row], split: str, seed: int, validate_fraction: float = 0.2) -> list[Row]:
    """The `split` ('validate' or 'test') of a single-file benchmark: a seeded shuffle cut 1:4."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = round(len(rows) * validate_fraction)
    chosen = sorted(order[:cut]) if split == "validate" else sorted(order[cut:])
    return [rows[i] for i in chosen]


def tfds_rows(name: str, source_split: str, split: str, data_dir: str, seed: int) -> list[Row]:
    """Rows of a prepared TFDS dataset: its held-out split (`source_split`, never 'train') cut 1:4
    like the single-file benchmarks.

    Offline there is no TFDS data: MissingData then says what TFDS reported.
    """
    try:
        import tensorflow_datasets as tfds

        source = tfds.data_source(name, data_dir=data_dir or None, split=source_split, download=False)
        records = [source[i] for i in range(len(source))]
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise MissingData(f"tfds:{data_dir}", f"TFDS dataset {name!r} could not be read: "
                          f"{type(error).__name__}: {reason}") from None
    rows = []
    for index, record in enumerate(records):
        fields = {key: _decoded(value) for key, value in record.items()}
        rows.append(Row(f"tfds:{name}/{source_split}[{index}]", fields))
    return seeded_split(rows, split, seed)


def _decoded(value: object) -> object:
    """TFDS text features arrive as bytes (sequences of them as lists or arrays): str, list of str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list | tuple) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0):
        return [_decoded(item) for item in (value.tolist() if hasattr(value, "tolist") else value)]
    return value


def as_dataset(rows: Sequence[Row], to_example: Callable[[Row], object]) -> grain.MapDataset:
    """A grain MapDataset of parsed examples (random access, so samplers and limits are cheap)."""
    return grain.MapDataset.source(list(rows)).map(to_example)
