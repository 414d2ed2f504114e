"""Candidate measurement for issue 18: text COPY (today's path) against binary COPY of one
big table, fund_drift's columns (NUMERIC money, weights and quantities), ``--rows`` rows
(default 1,010,000: the 1M night's drift rows, cash rows included).

Into a table of fund_drift's columns without indexes (``LIKE``), in a database of its own,
each way ``--repeat`` times (the median is printed):

- ``product``: ``warehouse.copy_frame`` as a shard calls it (rounding to scale, pyarrow
  formats CSV in a thread, psycopg2 ``copy_expert``), all in;
- ``csv_format``: pyarrow's CSV formatting alone (client side);
- ``text_server``: PostgreSQL's parse of that CSV alone (COPY from memory);
- ``binary_server``: the same rows COPYed in binary (COPY TO binary read back first): what
  the server saves with binary;
- ``psycopg3_write_row``: psycopg 3 binary COPY, ``set_types`` and ``write_row`` per row
  (client cost in Python, floats made Decimals as binary NUMERIC needs; run on a
  tenth of the rows and scaled);
- ``adbc_ingest``: Arrow to PostgreSQL binary COPY by the ADBC driver
  (adbc-driver-postgresql), the float columns cast to Arrow decimals of the columns' scale
  (the cast included), appended to the same table;
- ``float8_binary_adbc``: the same through ADBC into double precision columns (not a
  candidate for money: the contract keeps NUMERIC; a reference for the binary path's floor).

    python bench/copy_formats.py [--rows N] [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

COLUMNS = {  # fund_drift's columns without as_of_date (a leaf's): name -> (PostgreSQL type, scale)
    "fund_id": ("text", None), "security_id": ("text", None), "quantity": ("numeric(28,10)", 10),
    "price": ("numeric(28,10)", 10), "currency": ("text", None), "fx_rate": ("numeric(28,12)", 12),
    "market_value": ("numeric(28,6)", 6), "current_weight": ("numeric(18,12)", 12),
    "target_weight": ("numeric(18,12)", 12), "drift": ("numeric(18,12)", 12), "band_lower": ("numeric(18,12)", 12),
    "band_upper": ("numeric(18,12)", 12), "breached": ("boolean", None),
}


def drift_frame(rows: int, seed: int = 7) -> pd.DataFrame:
    """Rows shaped like a night's drift rows (floats as decide_night makes them)."""
    rng = np.random.default_rng(seed)
    fund = rng.integers(0, max(rows // 101, 1), rows)
    weight = rng.gamma(2.0, 0.005, rows)
    target = weight * rng.normal(1.0, 0.1, rows)
    return pd.DataFrame({
        "fund_id": pd.Series([f"FUND{i:05d}" for i in fund]), "security_id": [f"SEC{i:05d}" for i in
                                                                             rng.integers(0, 5000, rows)],
        "quantity": np.round(rng.lognormal(7, 2, rows)), "price": np.round(rng.lognormal(4, 0.8, rows), 4),
        "currency": "USD", "fx_rate": 1.0, "market_value": rng.lognormal(10, 2, rows), "current_weight": weight,
        "target_weight": target, "drift": weight - target, "band_lower": target * 0.75, "band_upper": target * 1.25,
        "breached": rng.random(rows) < 0.05,
    })


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_010_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import psycopg
    import sqlalchemy as sa

    from rebalance_pipeline import warehouse

    server = warehouse.get_engine()
    name = f"rebalance_bench_copy_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = server.url.set(database=name).render_as_string(hide_password=False)
    plain_url = url.replace("postgresql+psycopg2://", "postgresql://")
    engine = sa.create_engine(url)
    frame = drift_frame(args.rows)
    ddl = ", ".join(f"{c} {t}" for c, (t, _) in COLUMNS.items())
    float_ddl = ", ".join(f"{c} {'double precision' if t.startswith('numeric') else t}" for c, (t, _) in COLUMNS.items())
    out: dict[str, float] = {}
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE drift_text ({ddl}); CREATE TABLE drift_float ({float_ddl})"))

        def truncate(table: str = "drift_text") -> None:
            with engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {table}"))

        def product() -> None:
            truncate()
            with engine.begin() as conn:
                warehouse.copy_frame(conn, "drift_text", frame, list(COLUMNS))

        out["product"] = timed(product, args.repeat)
        with engine.connect() as conn:
            rounded = warehouse._rounded_to_scale(conn, "drift_text", frame[list(COLUMNS)])
        arrow = pa.Table.from_pandas(rounded, preserve_index=False)
        csv = io.BytesIO()

        def csv_format() -> None:
            csv.seek(0)
            csv.truncate()
            pa_csv.write_csv(arrow, csv, pa_csv.WriteOptions(include_header=False, quoting_style="needed",
                                                              batch_size=65536))

        out["csv_format"] = timed(csv_format, args.repeat)
        out["csv_mib"] = csv.tell() / 2**20

        def server_copy(fmt: str, buffer: io.BytesIO) -> None:
            truncate()
            raw = engine.raw_connection()
            try:
                with raw.cursor() as cur:
                    buffer.seek(0)
                    cur.copy_expert(f"COPY drift_text FROM STDIN WITH ({fmt})", buffer, size=1 << 20)
                raw.commit()
            finally:
                raw.close()

        out["text_server"] = timed(lambda: server_copy("FORMAT csv, NULL ''", csv), args.repeat)
        binary = io.BytesIO()
        raw = engine.raw_connection()
        with raw.cursor() as cur:
            cur.copy_expert("COPY drift_text TO STDOUT WITH (FORMAT binary)", binary)
        raw.close()
        out["binary_mib"] = binary.tell() / 2**20
        out["binary_server"] = timed(lambda: server_copy("FORMAT binary", binary), args.repeat)

        # psycopg 3, binary, row by row (set_types: floats dumped as NUMERIC in binary).
        tenth = rounded.head(max(len(rounded) // 10, 1))
        types = ["numeric" if t.startswith("numeric") else t for t, _ in COLUMNS.values()]

        def write_row() -> None:
            truncate()
            with psycopg.connect(plain_url) as conn, conn.cursor() as cur, \
                    cur.copy("COPY drift_text FROM STDIN WITH (FORMAT binary)") as copy:
                    copy.set_types(types)
                    # NUMERIC in binary takes a Decimal, not a float: the conversion is counted.
                    columns = [[None if v != v else Decimal(repr(v)) for v in tenth[c].tolist()]
                               if t == "numeric" else tenth[c].tolist() for c, t in zip(COLUMNS, types, strict=True)]
                    for row in zip(*columns, strict=True):
                        copy.write_row(row)

        out["psycopg3_write_row"] = timed(write_row, args.repeat) * len(rounded) / len(tenth)

        import adbc_driver_postgresql.dbapi as adbc

        def decimal_arrow() -> pa.Table:
            fields = []
            for column, (pg_type, scale) in COLUMNS.items():
                values = pa.array(rounded[column])
                if pg_type.startswith("numeric"):
                    precision = int(pg_type.split("(")[1].split(",")[0])
                    values = pa.compute.cast(pa.array(rounded[column].round(scale)), pa.decimal128(precision, scale),
                                             safe=False)
                fields.append(values)
            return pa.table(fields, names=list(COLUMNS))

        def adbc_ingest(table: str, data_fn) -> None:
            truncate(table)
            data = data_fn()
            with adbc.connect(plain_url) as conn, conn.cursor() as cur:
                cur.adbc_ingest(table, data, mode="append")
                conn.commit()

        try:
            out["adbc_ingest"] = timed(lambda: adbc_ingest("drift_text", decimal_arrow), args.repeat)
        except Exception as exc:  # the driver's support of NUMERIC varies by version: say so
            out["adbc_ingest_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out["float8_binary_adbc"] = timed(lambda: adbc_ingest("drift_float", lambda: pa.Table.from_pandas(
            rounded, preserve_index=False)), args.repeat)
    finally:
        engine.dispose()
        warehouse._engine_for.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    print(json.dumps({"rows": args.rows, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}}))


if __name__ == "__main__":
    main()
