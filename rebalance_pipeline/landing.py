"""Reading one landing folder (``<landing>/<YYYY-MM-DD>/``) into typed DataFrames.

Structural faults stop the night with a ``StructuralError`` naming the file, the row and
the column: a required file missing, a file that cannot be parsed, a required column
missing, a row whose as_of_date is not the folder's date, a row with no fund or security
id (it cannot be attributed to any fund). Everything else (a price that is not a number,
a negative quantity...) is a row fault for validation, so numbers that do not parse
become NaN here rather than errors.

Row numbers are those a spreadsheet shows: the header is row 1, the first data row is 2.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from rebalance_core.inputs import BOOLEAN, DATE, INPUTS, NUMBER, InputFile
from rebalance_core.schema import FALSE_WORDS, TRUE_WORDS
from rebalance_core.shards import shard_of

FIRST_DATA_ROW = 2


@dataclass(frozen=True)
class FileSpec:
    stem: str
    columns: tuple[str, ...]
    numeric: tuple[str, ...] = ()
    boolean: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()          # must be non-empty on every row
    dated: bool = False                 # has an as_of_date column that must match the folder
    required: bool = False              # must be in every date's folder
    reference: bool = False             # kept as history; latest earlier version applies
    optional_columns: tuple[str, ...] = ()
    optional_numeric: tuple[str, ...] = ()  # optional columns that hold numbers
    strict_dates: tuple[str, ...] = ()      # date columns where a value that is not a date stops the night
    strict_booleans: tuple[str, ...] = ()   # true/false columns where another (non-empty) value stops the night
    # Optional numeric columns where text that is not a number must not read as "empty" (a
    # control such as four eyes would silently switch off): ``<column>_readable`` says
    # whether the row's value was empty or a number; validation blocks the fund otherwise.
    checked_numeric: tuple[str, ...] = ()
    # Choice columns and their values: matched case-insensitively and written in the declared
    # spelling (``FIFO`` reads ``fifo``); another value stays as written, for validation to block.
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        return (*self.columns, *self.optional_columns)

    @property
    def csv_name(self) -> str:
        return f"{self.stem}.csv"


def spec_of(declared: InputFile) -> FileSpec:
    """The reader's view of a file the registry (``rebalance_core.inputs``) declares."""
    cols = declared.columns
    required = tuple(c.name for c in cols if c.required)
    return FileSpec(
        declared.stem, required,
        numeric=tuple(c.name for c in cols if c.kind == NUMBER and c.required),
        boolean=tuple(c.name for c in cols if c.kind == BOOLEAN),
        dates=tuple(c.name for c in cols if c.kind == DATE),
        keys=tuple(c.name for c in cols if c.key),
        dated=declared.dated, required=declared.required, reference=declared.reference,
        optional_columns=tuple(c.name for c in cols if not c.required),
        optional_numeric=tuple(c.name for c in cols if c.kind == NUMBER and not c.required),
        strict_dates=tuple(c.name for c in cols if c.kind == DATE and c.strict),
        strict_booleans=tuple(c.name for c in cols if c.kind == BOOLEAN and c.strict),
        checked_numeric=tuple(c.name for c in cols if c.checked),
        choices=tuple((c.name, c.choices) for c in cols if c.choices))


# Derived from the registry: declare a file there, not here.
SPECS: dict[str, FileSpec] = {declared.stem: spec_of(declared) for declared in INPUTS}

_TRUE, _FALSE = TRUE_WORDS, FALSE_WORDS   # the one yes/no vocabulary (rebalance_core.schema)


class StructuralError(Exception):
    """The night cannot run: a file is missing, unreadable or malformed."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column, self.reason = file, row, column, message
        where = file
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


def date_folder(landing: Path, as_of: dt.date) -> Path:
    return Path(landing) / as_of.isoformat()


def find_file(folder: Path, stem: str) -> Path | None:
    for suffix in (".csv", ".parquet"):
        candidate = folder / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


# Fund-keyed files that grow with the book: read in batches and split by shard.
SPLIT_STEMS = tuple(declared.stem for declared in INPUTS if declared.split)


def read_landing(landing: Path, as_of: dt.date, skip: tuple[str, ...] = ()) -> tuple[dict[str, pd.DataFrame],
                                                                                       dict[str, str]]:
    """Every file of the date's folder, typed: ({stem: frame}, {stem: file name read}).
    Files of ``skip`` are only found (their names are in the second dict), not read."""
    folder = date_folder(landing, as_of)
    if not folder.is_dir():
        raise StructuralError(str(folder), "landing folder for this date does not exist")
    frames, sources = {}, {}
    for stem, spec in SPECS.items():
        path = find_file(folder, stem)
        if path is None:
            if spec.required:
                raise StructuralError(spec.csv_name, f"required file is missing from {folder}")
            continue
        if stem not in skip:
            frames[stem] = read_file(path, spec, as_of)
        sources[stem] = path.name
    return frames, sources


def read_file(path: Path, spec: FileSpec, as_of: dt.date) -> pd.DataFrame:
    """One file, checked for structure and typed; adds ``source_row``."""
    return _typed(_read_raw(path), spec, as_of, path.name, FIRST_DATA_ROW)


def read_file_split(path: Path, spec: FileSpec, as_of: dt.date, shards: int, sink,
                    batch_bytes: int = 64 << 20) -> set[str]:
    """A large fund-keyed file, checked and typed batch by batch and split by the shard of its
    ``fund_id``: each batch's rows of shard i go to ``sink(i, arrow_table)`` at once, so
    memory is one batch, never the file. Faults are reported as ``read_file`` does (the
    first in file order). Returns the fund ids the file lists."""
    first_row = FIRST_DATA_ROW
    funds: set[str] = set()
    for raw in _raw_batches(path, batch_bytes):
        typed = _typed(raw, spec, as_of, path.name, first_row)
        first_row += len(raw)
        funds.update(typed["fund_id"].unique())
        shard = shard_of(typed["fund_id"].to_numpy(), shards)
        for i in range(shards):
            piece = typed[shard == i]
            if len(piece):
                sink(i, pa.Table.from_pandas(piece, preserve_index=False))
    if first_row == FIRST_DATA_ROW:   # a header and no rows: still checked for its columns
        _typed(_read_raw(path), spec, as_of, path.name, FIRST_DATA_ROW)
    return funds


def count_rows(path: Path) -> int:
    """Data rows of a landing file, cheaply (line count, or the Parquet footer)."""
    if path.suffix == ".parquet":
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StructuralError(path.name, f"not a readable Parquet file ({exc})") from exc
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 24):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, lines + (last != b"\n") - 1)


def empty_frame(stem: str) -> pd.DataFrame:
    """A typed frame of ``stem`` with no rows."""
    spec = SPECS[stem]
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in spec.all_columns})
    for column in (*spec.numeric, *spec.optional_numeric):
        frame[column] = frame[column].astype("float64")
    frame["source_row"] = pd.Series(dtype="int64")
    return frame


def _typed(raw: pd.DataFrame, spec: FileSpec, as_of: dt.date, file: str, first_row: int) -> pd.DataFrame:
    """Rows as strings (``first_row``: the file row of the first) checked and typed."""
    missing = [c for c in spec.columns if c not in raw.columns]
    if missing:
        raise StructuralError(file, f"required column is missing (found: {', '.join(raw.columns)})",
                              row=1, column=missing[0])
    keep = [c for c in (*spec.columns, *spec.optional_columns) if c in raw.columns]
    frame = raw[keep].copy()
    frame["source_row"] = np.arange(first_row, first_row + len(frame), dtype="int64")
    path = Path(file)

    for key in spec.keys:
        values = frame[key].str.strip()
        blank = values.isna() | (values == "")
        if blank.any():
            row = int(frame.loc[blank, "source_row"].iloc[0])
            raise StructuralError(path.name, "value is empty; the row cannot be attributed", row=row, column=key)
        frame[key] = values
    if spec.dated:
        _check_as_of(frame, path.name, as_of)
        frame["as_of_date"] = as_of
    for column, values in spec.choices:
        if column in frame:
            frame[column] = normalise_choice(frame[column], values)
    for column in spec.checked_numeric:
        if column in frame:
            text = frame[column].astype("object").where(frame[column].notna(), "").astype(str).str.strip()
            frame[f"{column}_readable"] = (text == "") | _to_float(frame[column]).notna()
    for column in (*spec.numeric, *spec.optional_numeric):
        if column in frame:
            frame[column] = _to_float(frame[column])
    for column in spec.boolean:
        if column not in frame:   # an optional true/false column the file leaves out
            continue
        lowered = frame[column].str.strip().str.lower()
        if column in spec.strict_booleans:
            # These decide trades (an index event, a basket's lean): a typo must not read as false.
            bad = lowered.notna() & (lowered != "") & ~lowered.isin(_TRUE | _FALSE)
            if bad.any():
                row = int(frame.loc[bad, "source_row"].iloc[0])
                raise StructuralError(path.name, f"{frame.loc[bad, column].iloc[0]!r} is not true or false", row=row,
                                      column=column)
        frame[column] = pd.Series(np.where(lowered.isin(_TRUE), True, np.where(lowered.isin(_FALSE), False, None)),
                                  index=frame.index, dtype="object")
    for column in spec.dates:
        if column not in frame:
            continue
        parsed = pd.to_datetime(frame[column], errors="coerce", format="ISO8601")
        if column in spec.strict_dates:
            # A model version's start decides when every follower trades: a typo must not
            # make it start at once (an empty cell does: no announced date).
            text = frame[column].astype("object").where(frame[column].notna(), "").astype(str).str.strip()
            bad = parsed.isna() & (text != "")
            if bad.any():
                row = int(frame.loc[bad, "source_row"].iloc[0])
                raise StructuralError(path.name, f"{text[bad].iloc[0]!r} is not a date (YYYY-MM-DD)", row=row,
                                      column=column)
        frame[column] = parsed.dt.date
    return frame


def normalise_choice(values: pd.Series, choices: tuple[str, ...]) -> pd.Series:
    """A choice column: stripped, a value matching a choice whatever its case in the choice's
    spelling, an empty cell None (the column's default applies); other values as written."""
    text = values.astype("object").where(values.notna(), "").astype(str).str.strip()
    canonical = text.str.lower().map({c.lower(): c for c in choices})
    out = canonical.where(canonical.notna(), text).astype("object")
    out[out == ""] = None
    return out


def _to_float(values: pd.Series) -> pd.Series:
    """Numbers as float64; anything that is not a number becomes NaN (a row fault, not an error)."""
    try:
        return values.astype("float64")  # fast path: the whole column parses (Arrow's cast)
    except (ValueError, TypeError, ArithmeticError):
        return pd.to_numeric(values.str.strip(), errors="coerce").astype("float64")


def _check_as_of(frame: pd.DataFrame, file: str, as_of: dt.date) -> None:
    expected = as_of.isoformat()
    values = frame["as_of_date"].str.strip()
    distinct = values.dropna().unique()
    # Most files carry one distinct value; only parse those that are not the folder's date.
    bad_values = [v for v in distinct if v != expected and _parse_date(v) != as_of]
    if bad_values or values.isna().any():
        bad = values.isna() | values.isin(bad_values)
        row = int(frame.loc[bad, "source_row"].iloc[0])
        value = values[bad].iloc[0]
        raise StructuralError(file, f"as_of_date {value!r} is not the folder's date {expected}", row=row,
                              column="as_of_date")


def _parse_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _raw_batches(path: Path, batch_bytes: int):
    """The file's rows as frames of strings, a batch at a time."""
    if path.suffix == ".parquet":
        try:
            parquet = pq.ParquetFile(path)
            for batch in parquet.iter_batches(batch_size=1_000_000):
                yield batch.to_pandas().astype("str")
        except StructuralError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StructuralError(path.name, f"not a readable Parquet file ({exc})") from exc
        return
    try:
        header = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 16)).schema.names
        reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=batch_bytes),
                                 convert_options=pa_csv.ConvertOptions(
                                     column_types={name: pa.string() for name in header},
                                     strings_can_be_null=True, quoted_strings_can_be_null=False))
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            frame = batch.to_pandas()
            frame.columns = [str(c).strip() for c in frame.columns]
            yield frame
    except StructuralError:
        raise
    except Exception as exc:  # the pyarrow parser names no row: find it ourselves
        raise _diagnose_csv(path, exc) from exc


def _read_raw(path: Path) -> pd.DataFrame:
    """All columns as strings (numbers are typed later, leniently)."""
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StructuralError(path.name, f"not a readable Parquet file ({exc})") from exc
        return frame.astype("str")
    try:
        frame = pd.read_csv(path, dtype=str, engine="pyarrow", encoding="utf-8")
    except Exception as exc:  # the pyarrow parser names no row: find it ourselves
        raise _diagnose_csv(path, exc) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _diagnose_csv(path: Path, original: Exception) -> StructuralError:
    """Turn a parser failure into file/row/column: re-read slowly, stop at the first bad row."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                return StructuralError(path.name, "file is empty (no header row)", row=1)
            for row_number, row in enumerate(reader, start=FIRST_DATA_ROW):
                if len(row) != len(header) and any(cell.strip() for cell in row):
                    column = header[len(row)] if len(row) < len(header) else f"#{len(header) + 1} (beyond the header)"
                    return StructuralError(path.name, f"row has {len(row)} fields, the header has {len(header)}",
                                           row=row_number, column=column)
    except UnicodeDecodeError as exc:
        data = path.read_bytes()
        row = data[: exc.start].count(b"\n") + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        field = data[line_start: exc.start].count(b",")
        header = data.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")
        column = header[field].strip() if field < len(header) else f"#{field + 1}"
        return StructuralError(path.name, "bytes are not UTF-8 text", row=row, column=column)
    except csv.Error as exc:
        return StructuralError(path.name, f"CSV syntax error ({exc})")
    return StructuralError(path.name, f"cannot be parsed as CSV ({original})")
