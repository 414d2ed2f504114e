"""What the order management system (OMS) receives: the order files' names and contents.

Pure formatting, no database and no file system: ``rebalance_pipeline.export`` stages,
records and delivers what this module makes (exactly once; see its docstring).

File format (UTF-8, header row, comma separated, RFC 4180 quoting and CRLF line ends), one
line per trade, sells before buys (cash is raised first), then by security id:

    account, security, side, quantity, order_type, limit_price, time_in_force, currency,
    client_order_id, proposal_id, as_of_date

``account`` is the fund id; ``quantity`` a plain decimal (``100``, ``12.5``: no exponent, no
trailing zeros); market orders (``MARKET``, empty ``limit_price``) good for the ``DAY``;
``client_order_id`` is ``<proposal_id>-<NNN>`` numbered in file order, stable across retries.

Block orders (``blocks=True``, ``rebalance export --blocks``): the same approved, not yet
exported proposals, but their orders aggregated across accounts into one block order per
security, side and currency, with an allocation file saying how much of each block each
account gets. One export writes one batch, two files in the date folder of the batch's
latest business date:

    <as_of_date>/block_orders_<batch_id>.csv       block_id, security, side, quantity, currency,
                                                   order_type, limit_price, time_in_force,
                                                   allocations, as_of_date
    <as_of_date>/block_allocations_<batch_id>.csv  block_id, account, security, side, quantity,
                                                   currency, client_order_id, proposal_id, as_of_date

``batch_id`` is ``BLK-<YYYYMMDD>-<hash of the batch's proposal ids>`` and ``block_id``
``<batch_id>-<NNN>`` (sells first, then by security and currency), so a retry of the same
proposals writes the same files. A block's quantity is the exact (decimal) sum of its
allocations; an allocation is one order of one proposal, with the ``client_order_id`` the
per-proposal file would have given it. The ledger is the same: each proposal gets its
``order_export`` row (``file_name`` = the allocation file, ``block_batch_id``), the batch a
``block_export`` row naming both files; exactly once and crash recovery work as above
(the allocation file is delivered before the block file, so a block never arrives without
its allocations).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

ORDER_COLUMNS = ("account", "security", "side", "quantity", "order_type", "limit_price", "time_in_force",
                 "currency", "client_order_id", "proposal_id", "as_of_date")
ORDER_TYPE = "MARKET"
TIME_IN_FORCE = "DAY"
SELL = "SELL"
# Fund and proposal ids become part of a file name: nothing that could leave the folder
# (matched with fullmatch: "$" would accept a trailing newline).
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MAX_FILE_NAME = 255   # bytes, the usual limit of a file system; safe names are ASCII

BLOCK_COLUMNS = ("block_id", "security", "side", "quantity", "currency", "order_type", "limit_price",
                 "time_in_force", "allocations", "as_of_date")
ALLOCATION_COLUMNS = ("block_id", "account", "security", "side", "quantity", "currency", "client_order_id",
                      "proposal_id", "as_of_date")


class ExportError(Exception):
    """An approved proposal that cannot be exported as it is (it is refused, nothing is recorded)."""


def order_file_name(fund_id: str, proposal_id: str, as_of: dt.date) -> Path:
    """``<as_of_date>/orders_<fund_id>_<proposal_id>.csv``, relative to the outbox."""
    for what, value in (("fund id", fund_id), ("proposal id", proposal_id)):
        if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
            raise ExportError(f"{what} {value!r} cannot be part of a file name (letters, digits, '.', '_', '-'); "
                              f"proposal {proposal_id!r} was not exported")
    name = f"orders_{fund_id}_{proposal_id}.csv"
    if len(name) > _MAX_FILE_NAME:
        raise ExportError(f"file name {name[:40]}... is longer than {_MAX_FILE_NAME} characters; "
                          f"proposal {proposal_id!r} was not exported")
    return Path(as_of.isoformat()) / name


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


@dataclass(frozen=True)
class BlockBatch:
    """One block export: its id, the two files (relative to the outbox) and their contents."""

    batch_id: str
    blocks_file: Path
    allocations_file: Path
    blocks_csv: bytes
    allocations_csv: bytes
    block_count: int
    allocation_count: int
    proposal_count: int


def block_batch(exports: list[dict]) -> BlockBatch | None:
    """The orders of ``exports`` (each with its ``orders``, as ``order_rows`` makes them)
    aggregated into block orders per security, side and currency, with their allocations.

    Quantities are added as decimals (exactly). Blocks are numbered sells first, then by
    security and currency; allocations follow their block, then account and client order id.
    """
    if not exports:
        return None
    proposal_ids = sorted(e["proposal_id"] for e in exports)
    as_of = max(e["as_of_date"] for e in exports)
    digest = hashlib.sha256("\n".join(proposal_ids).encode("utf-8")).hexdigest()[:12]
    batch_id = f"BLK-{as_of:%Y%m%d}-{digest}"
    grouped: dict[tuple[str, str, str], list[dict]] = {}
    for e in exports:
        for order in e["orders"]:
            key = (order["side"], order["security"], order["currency"])
            grouped.setdefault(key, []).append(order)
    block_rows, allocation_rows = [], []
    keys = sorted(grouped, key=lambda k: (k[0] != SELL, k[1], k[2], k[0]))
    for number, key in enumerate(keys, start=1):
        side, security, currency = key
        block_id = f"{batch_id}-{number:03d}"
        orders = sorted(grouped[key], key=lambda o: (o["account"], o["client_order_id"]))
        total = sum((Decimal(o["quantity"]) for o in orders), Decimal(0))
        block_rows.append({"block_id": block_id, "security": security, "side": side,
                           "quantity": plain_decimal(total), "currency": currency, "order_type": ORDER_TYPE,
                           "limit_price": "", "time_in_force": TIME_IN_FORCE, "allocations": str(len(orders)),
                           "as_of_date": max(o["as_of_date"] for o in orders)})
        allocation_rows += [{"block_id": block_id, "account": o["account"], "security": security, "side": side,
                             "quantity": o["quantity"], "currency": currency,
                             "client_order_id": o["client_order_id"], "proposal_id": o["proposal_id"],
                             "as_of_date": o["as_of_date"]} for o in orders]
    folder = Path(as_of.isoformat())
    return BlockBatch(batch_id=batch_id, blocks_file=folder / f"block_orders_{batch_id}.csv",
                      allocations_file=folder / f"block_allocations_{batch_id}.csv",
                      blocks_csv=_csv(BLOCK_COLUMNS, block_rows), allocations_csv=_csv(ALLOCATION_COLUMNS, allocation_rows),
                      block_count=len(block_rows), allocation_count=len(allocation_rows),
                      proposal_count=len(exports))


def _csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
