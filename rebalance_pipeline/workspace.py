"""Where a run keeps its intermediate frames between pipeline steps.

In one process (CLI, tests, benchmark) they are Parquet files in a temporary folder, which
the shard worker processes read too. Between Airflow tasks, which may run on different
workers, they are stored in the warehouse as Parquet bytes in ``rebalance.run_artifact``
keyed by run id; the tasks hand each other only the date, the run id and shard numbers
through XCom. The publish step clears them.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_pipeline.warehouse import query_sql


class Workspace(Protocol):
    def put(self, name: str, frame: pd.DataFrame | pa.Table) -> None: ...
    def get(self, name: str) -> pd.DataFrame: ...
    def has(self, name: str) -> bool: ...
    def names(self, prefix: str) -> list[str]: ...
    def clear(self) -> None: ...


def get_parts(workspace: Workspace, prefix: str) -> pd.DataFrame | None:
    """The frames stored under ``prefix/`` (parts written as they were read), as one; None
    when there are none."""
    names = workspace.names(prefix + "/")
    if not names:
        return None
    return pd.concat([workspace.get(n) for n in names], ignore_index=True)


class DirectoryWorkspace:
    """Parquet files in a folder (names may contain ``/``: sub-folders)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.parquet"

    def put(self, name: str, frame: pd.DataFrame | pa.Table) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_arrow(frame), path)

    def get(self, name: str) -> pd.DataFrame:
        path = self._path(name)
        if not path.exists():
            raise KeyError(f"no stored {name!r} in {self.folder}: did its earlier step run?")
        return pd.read_parquet(path)

    def has(self, name: str) -> bool:
        return self._path(name).exists()

    def names(self, prefix: str) -> list[str]:
        found = self.folder.glob(prefix + "**/*.parquet") if prefix.endswith("/") else self.folder.glob(
            prefix + "*.parquet")
        return sorted(str(p.relative_to(self.folder))[: -len(".parquet")] for p in found)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)


class WarehouseWorkspace:
    def __init__(self, engine: Engine, run_id: str) -> None:
        self.engine, self.run_id = engine, run_id

    def put(self, name: str, frame: pd.DataFrame | pa.Table) -> None:
        buffer = io.BytesIO()
        pq.write_table(_arrow(frame), buffer)
        with self.engine.begin() as conn:
            conn.execute(sa.text(query_sql("save_run_artifact")), {"r": self.run_id, "n": name, "p": buffer.getvalue()})

    def get(self, name: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            payload = conn.execute(sa.text(query_sql("run_artifact_payload")), {"r": self.run_id, "n": name}).scalar()
        if payload is None:
            raise KeyError(f"run {self.run_id} has no stored {name!r}: did its earlier task run?")
        return pd.read_parquet(io.BytesIO(payload))

    def has(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(query_sql("run_artifact_exists")), {"r": self.run_id, "n": name}).first() is not None

    def names(self, prefix: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(query_sql("run_artifact_names")), {"r": self.run_id, "p": prefix}).scalars())

    def clear(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(query_sql("delete_run_artifacts")), {"r": self.run_id})


def _arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
    return frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
