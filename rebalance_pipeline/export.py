"""Export of approved trades to the order management system (OMS), exactly once per proposal.

Each approved proposal becomes one CSV file of orders (one proposal = one fund on one business
date) at ``<outbox>/<as_of_date>/orders_<fund_id>_<proposal_id>.csv``, and a row in
``rebalance.order_export`` records that it was handed over. The exporter only picks approved
proposals without such a row, so running it again, from the CLI or the nightly DAG, sends
nothing twice.

How "exactly once" holds when something fails:

- everything happens in ONE transaction holding a transaction-level advisory lock of its own
  (two exporters never run at once) with the chosen proposals locked ``FOR UPDATE``;
- files are written atomically: a temporary file in the same folder (a dot file, which an
  OMS pickup should ignore), fsync, ``os.replace``, fsync of the folder; a reader sees the
  whole file or none;
- the ``order_export`` rows are inserted after the files and committed last. If anything
  fails before the commit, no row is recorded and the next export writes the files again;
  file names and contents depend only on the approved proposal and its trades (which never
  change once approved), so the retry replaces a file with an identical one and there is
  still exactly one file per proposal. Once the commit succeeds the proposal is never
  exported again.

A proposal approved with zero trades writes no file but is still recorded as exported, with
``order_count`` 0 and no ``file_name``.

File format (UTF-8, header row, comma separated, RFC 4180 quoting and CRLF line ends), one
line per trade, sells before buys (cash is raised first), then by security id:

    account, security, side, quantity, order_type, limit_price, time_in_force, currency,
    client_order_id, proposal_id, as_of_date

``account`` is the fund id; ``quantity`` a plain decimal (``100``, ``12.5``: no exponent, no
trailing zeros); market orders (``MARKET``, empty ``limit_price``) good for the ``DAY``;
``client_order_id`` is ``<proposal_id>-<NNN>`` numbered in file order, stable across retries.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import logging
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core.schema import APPROVED
from rebalance_pipeline.warehouse import LOCK_NAMESPACE

log = logging.getLogger(__name__)

# Second key of the exporter's advisory lock (the first is LOCK_NAMESPACE). Date locks use
# YYYYMMDD (below 10^8) and migrations 0, so this value never collides with either.
EXPORT_LOCK_KEY = 0x4F524458  # "ORDX"

ORDER_COLUMNS = ("account", "security", "side", "quantity", "order_type", "limit_price", "time_in_force",
                 "currency", "client_order_id", "proposal_id", "as_of_date")
ORDER_TYPE = "MARKET"
TIME_IN_FORCE = "DAY"
SELL = "SELL"
# Fund and proposal ids become part of a file name: nothing that could leave the folder.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_LOCK_EXPORTER = "SELECT pg_advisory_xact_lock(:ns, :key)"
_COUNT_ALREADY_EXPORTED = (
    "SELECT count(*) FROM rebalance.order_export e JOIN rebalance.proposal p USING (proposal_id) "
    "WHERE p.status = :approved AND (CAST(:up_to AS date) IS NULL OR p.as_of_date <= CAST(:up_to AS date))")
_SELECT_PROPOSALS_TO_EXPORT = (
    "SELECT p.proposal_id, p.fund_id, p.as_of_date FROM rebalance.proposal p "
    "WHERE p.status = :approved AND (CAST(:up_to AS date) IS NULL OR p.as_of_date <= CAST(:up_to AS date)) "
    "AND NOT EXISTS (SELECT 1 FROM rebalance.order_export e WHERE e.proposal_id = p.proposal_id) "
    "ORDER BY p.as_of_date, p.fund_id, p.proposal_id FOR UPDATE OF p")
_SELECT_TRADES = (
    "SELECT proposal_id, security_id, side, quantity, currency FROM rebalance.proposal_trade "
    "WHERE proposal_id = ANY(:proposal_ids)")
_INSERT_EXPORT = (
    "INSERT INTO rebalance.order_export (proposal_id, fund_id, as_of_date, file_name, order_count, run_id) "
    "VALUES (:proposal_id, :fund_id, :as_of_date, :file_name, :order_count, :run_id)")


class ExportError(Exception):
    """An approved proposal that cannot be exported as it is (nothing is recorded)."""


@dataclass(frozen=True)
class ExportReport:
    """What one export did: files written, proposals and orders newly exported."""

    outbox: Path
    up_to: dt.date | None
    files: tuple[Path, ...]
    proposals: int
    orders: int
    skipped_already_exported: int

    def summary(self) -> str:
        scope = f"approved up to {self.up_to}" if self.up_to else "all approved"
        return (f"exported {self.proposals} proposals ({self.orders} orders, {len(self.files)} files) to "
                f"{self.outbox}; {self.skipped_already_exported} already exported ({scope})")


def export_approved_orders(engine: Engine, outbox: Path, up_to: dt.date | None = None,
                           run_id: str | None = None) -> ExportReport:
    """Write one order file per approved, not yet exported proposal and record it, exactly once.

    ``up_to`` limits the export to proposals of that business date and earlier (the nightly
    DAG passes its business date); ``run_id`` is recorded with each export. A proposal
    approved with zero trades writes no file but is recorded as exported (``order_count`` 0).
    See the module docstring for why a failure at any point never leaves a proposal exported
    twice or a file without its orders.
    """
    outbox = Path(outbox)
    window = {"approved": APPROVED, "up_to": up_to}
    with engine.begin() as conn:
        conn.execute(sa.text(_LOCK_EXPORTER), {"ns": LOCK_NAMESPACE, "key": EXPORT_LOCK_KEY})
        already_exported = conn.execute(sa.text(_COUNT_ALREADY_EXPORTED), window).scalar_one()
        proposals = conn.execute(sa.text(_SELECT_PROPOSALS_TO_EXPORT), window).mappings().all()
        trades_by_proposal = _trades_by_proposal(conn, [p["proposal_id"] for p in proposals])

        files: list[Path] = []
        exports: list[dict] = []
        for proposal in proposals:
            orders = order_rows(proposal["proposal_id"], proposal["fund_id"], proposal["as_of_date"],
                                trades_by_proposal.get(proposal["proposal_id"], []))
            file_name = None
            if orders:
                relative = order_file_name(proposal["fund_id"], proposal["proposal_id"], proposal["as_of_date"])
                write_atomically(outbox / relative, orders_csv(orders))
                files.append(outbox / relative)
                file_name = relative.as_posix()
            exports.append({"proposal_id": proposal["proposal_id"], "fund_id": proposal["fund_id"],
                            "as_of_date": proposal["as_of_date"], "file_name": file_name,
                            "order_count": len(orders), "run_id": run_id})
        if exports:
            _record_exports(conn, exports)
    report = ExportReport(outbox=outbox, up_to=up_to, files=tuple(files), proposals=len(exports),
                          orders=sum(e["order_count"] for e in exports), skipped_already_exported=already_exported)
    log.info("%s", report.summary())
    return report


def order_file_name(fund_id: str, proposal_id: str, as_of: dt.date) -> Path:
    """``<as_of_date>/orders_<fund_id>_<proposal_id>.csv``, relative to the outbox."""
    for what, value in (("fund id", fund_id), ("proposal id", proposal_id)):
        if not _SAFE_NAME.match(value):
            raise ExportError(f"{what} {value!r} cannot be part of a file name (letters, digits, '.', '_', '-'); "
                              f"proposal {proposal_id} was not exported")
    return Path(as_of.isoformat()) / f"orders_{fund_id}_{proposal_id}.csv"


def order_rows(proposal_id: str, fund_id: str, as_of: dt.date, trades: list) -> list[dict[str, str]]:
    """The proposal's trades as OMS orders: sells first, then by security id, numbered in that order."""
    ordered = sorted(trades, key=lambda t: (t.side != SELL, t.security_id))
    return [{
        "account": fund_id,
        "security": trade.security_id,
        "side": trade.side,
        "quantity": plain_decimal(trade.quantity),
        "order_type": ORDER_TYPE,
        "limit_price": "",
        "time_in_force": TIME_IN_FORCE,
        "currency": trade.currency or "",
        "client_order_id": f"{proposal_id}-{number:03d}",
        "proposal_id": proposal_id,
        "as_of_date": as_of.isoformat(),
    } for number, trade in enumerate(ordered, start=1)]


def orders_csv(orders: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=ORDER_COLUMNS)
    writer.writeheader()
    writer.writerows(orders)
    return buffer.getvalue().encode("utf-8")


def plain_decimal(value) -> str:
    """``Decimal('100.0000000000')`` -> ``'100'``, ``12.5`` -> ``'12.5'``: fixed point, no trailing zeros."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise ExportError(f"quantity {value!r} is not a number")
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` so that a reader sees the old file, or the whole new one."""
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        _fsync_folder(folder.parent)
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _trades_by_proposal(conn: Connection, proposal_ids: list[str]) -> dict[str, list]:
    if not proposal_ids:
        return {}
    grouped: dict[str, list] = {}
    for trade in conn.execute(sa.text(_SELECT_TRADES), {"proposal_ids": proposal_ids}):
        grouped.setdefault(trade.proposal_id, []).append(trade)
    return grouped


def _record_exports(conn: Connection, exports: list[dict]) -> None:
    conn.execute(sa.text(_INSERT_EXPORT), exports)
