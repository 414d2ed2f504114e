"""Export of approved trades to the order management system (OMS), exactly once per proposal.

Each approved proposal becomes one CSV file of orders (one proposal = one fund on one business
date) at ``<outbox>/<as_of_date>/orders_<fund_id>_<proposal_id>.csv``, and a row in
``rebalance.order_export`` records that it was handed over. The exporter only picks approved
proposals without such a row, so running it again, from the CLI or the nightly DAG, sends
nothing twice.

How "exactly once" holds when something fails (staged delivery):

- everything up to the commit happens in ONE transaction holding a transaction-level advisory
  lock of its own (two exporters never prepare at once) with the chosen proposals locked
  ``FOR UPDATE``;
- each file is first written atomically into the staging folder
  ``<outbox>/.staging/<same relative path>`` (a dot folder, which an OMS pickup ignores): a
  dot-named temporary file, fsync, ``os.replace``, fsync of the folder;
- the ``order_export`` rows are inserted and COMMITTED; only then is each staged file moved
  into place in the outbox (``os.replace`` on the same file system, then fsync of both
  folders). So a file appears in the outbox only after its ledger row is committed, and the
  move is atomic: the OMS sees the whole file or none;
- if anything fails before the commit, nothing is recorded and no file reaches the outbox
  (the attempt removes what it staged; a crash may leave staged files behind);
- every export starts, under the same lock and inside its transaction, by reconciling the
  staging folder: a staged file whose relative path is recorded in ``order_export.file_name``
  was committed by an earlier export whose delivery was interrupted, and is delivered now
  (``recovered``); a staged file without a record is what an attempt that never committed
  left behind, and is deleted (``discarded``). So every committed row's file reaches the
  outbox exactly once: a staged file is moved, never copied, and only one move can succeed.

File names and contents depend only on the approved proposal and its trades (decided
proposals never change; migration V006 enforces it), so a retry stages the same file again.

A proposal approved with zero trades writes no file but is still recorded as exported, with
``order_count`` 0 and no ``file_name``.

A proposal that cannot be exported as it is (a fund or proposal id that cannot be part of a
file name, a quantity that is not a number) is refused: it is skipped with a warning, not
recorded (so it is exported by the first export after it is fixed), listed in
``ExportReport.refused``, and the other proposals are exported as usual.

File names and contents (one order file per proposal, or a batch of block orders with
their allocations: ``blocks=True``, ``rebalance export --blocks``): ``rebalance_pipeline.order_files``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core.schema import APPROVED
from rebalance_pipeline.order_files import (  # noqa: F401 (the names tests and pcf import from here)
    _SAFE_NAME,
    ALLOCATION_COLUMNS,
    BLOCK_COLUMNS,
    ORDER_COLUMNS,
    BlockBatch,
    ExportError,
    block_batch,
    order_file_name,
    order_rows,
    orders_csv,
    plain_decimal,
)
from rebalance_pipeline.warehouse import LOCK_NAMESPACE, query_sql

log = logging.getLogger(__name__)

# Second key of the exporter's advisory lock (the first is LOCK_NAMESPACE). Date locks use
# YYYYMMDD (below 10^8) and migrations 0, so this value never collides with either.
EXPORT_LOCK_KEY = 0x4F524458  # "ORDX"

# Files wait here, under the outbox (same file system: moving them out is atomic), until their
# ledger rows are committed. A dot folder: OMS pickups ignore it.
STAGING = ".staging"


@dataclass(frozen=True)
class ExportReport:
    """What one export did: files delivered, proposals and orders newly exported, staged files
    of earlier exports recovered (delivered now) or discarded, proposals refused."""

    outbox: Path
    up_to: dt.date | None
    files: tuple[Path, ...]
    proposals: int
    orders: int
    skipped_already_exported: int
    recovered: int = 0          # staged files of committed exports whose delivery was interrupted
    discarded: int = 0          # staged files of attempts that never committed
    refused: tuple[tuple[str, str], ...] = ()   # (proposal_id, reason): skipped, not recorded
    blocks: int = 0                              # block orders written (a block export)
    block_batch_id: str | None = None

    def summary(self) -> str:
        scope = f"approved up to {self.up_to}" if self.up_to else "all approved"
        orders = (f"{self.orders} orders in {self.blocks} block orders of batch {self.block_batch_id}"
                  if self.block_batch_id else f"{self.orders} orders")
        text = (f"exported {self.proposals} proposals ({orders}, {len(self.files)} files) to "
                f"{self.outbox}; {self.skipped_already_exported} already exported ({scope})")
        if self.recovered:
            text += f"; delivered {self.recovered} staged files of an earlier export"
        if self.discarded:
            text += f"; discarded {self.discarded} staged files that were never recorded"
        if self.refused:
            text += f"; REFUSED {len(self.refused)} proposals (not exported: {', '.join(p for p, _ in self.refused)})"
        return text


def export_approved_orders(engine: Engine, outbox: Path, up_to: dt.date | None = None,
                           run_id: str | None = None, blocks: bool = False) -> ExportReport:
    """Deliver one order file per approved, not yet exported proposal and record it, exactly once.

    ``up_to`` limits the export to proposals of that business date and earlier (the nightly
    DAG passes its business date); ``run_id`` is recorded with each export. A proposal
    approved with zero trades writes no file but is recorded as exported (``order_count`` 0).
    A proposal that cannot be exported as it is is refused (``report.refused``) and the others
    are exported. See the module docstring for why a failure at any point never leaves a
    proposal exported twice, nor a file in the outbox without its committed record.

    ``blocks``: one batch of block orders and allocations instead of a file per proposal
    (module docstring).
    """
    outbox = Path(outbox)
    window = {"approved": APPROVED, "up_to": up_to}
    staged: list[Path] = []            # relative paths staged by this export
    refused: list[tuple[str, str]] = []
    with engine.begin() as conn:
        conn.execute(sa.text(query_sql("advisory_lock")), {"ns": LOCK_NAMESPACE, "key": EXPORT_LOCK_KEY})
        recovered, discarded = _reconcile_staging(conn, outbox)
        already_exported = conn.execute(sa.text(query_sql("exported_proposals_count")), window).scalar_one()
        proposals = conn.execute(sa.text(query_sql("proposals_to_export")), window).mappings().all()
        trades_by_proposal = _trades_by_proposal(conn, [p["proposal_id"] for p in proposals])
        try:
            exports, batch = _stage(outbox, proposals, trades_by_proposal, blocks, run_id, staged, refused)
            if exports:
                if batch is None:
                    _record_exports(conn, exports)
                else:
                    _record_exports(conn, exports, batch, run_id)
        except BaseException:
            # Still under the lock and before the commit: nothing staged here is recorded.
            # (A crash leaves them to the next export's reconciliation.)
            for relative in staged:
                with contextlib.suppress(OSError):
                    (outbox / STAGING / relative).unlink()
            raise
    # Committed: the files may go out now. Should this fail or stop half way, the next export
    # delivers what is still staged.
    try:
        for relative in staged:
            _deliver(outbox, relative)
    except BaseException:
        log.error("order files of committed exports are still staged in %s; the next export delivers them",
                  outbox / STAGING)
        raise
    report = ExportReport(outbox=outbox, up_to=up_to, files=tuple(outbox / r for r in staged),
                          proposals=len(exports), orders=sum(e["order_count"] for e in exports),
                          skipped_already_exported=already_exported, recovered=recovered, discarded=discarded,
                          refused=tuple(refused), blocks=batch.block_count if batch else 0,
                          block_batch_id=batch.batch_id if batch else None)
    (log.warning if refused else log.info)("%s", report.summary())
    return report


def _stage(outbox: Path, proposals, trades_by_proposal: dict[str, list], blocks: bool, run_id: str | None,
           staged: list[Path], refused: list[tuple[str, str]]) -> tuple[list[dict], BlockBatch | None]:
    """Each proposal's orders (a refused proposal into ``refused``), their files written into the
    staging folder (each path appended to ``staged`` as it is written, so a failure can remove
    them): one per proposal, or one block batch. The ledger rows to record, and the batch."""
    exports: list[dict] = []
    for proposal in proposals:
        proposal_id = proposal["proposal_id"]
        try:
            orders = order_rows(proposal_id, proposal["fund_id"], proposal["as_of_date"],
                                trades_by_proposal.get(proposal_id, []))
            relative = (order_file_name(proposal["fund_id"], proposal_id, proposal["as_of_date"])
                        if orders and not blocks else None)
        except ExportError as exc:
            log.warning("approved proposal %s refused, not exported: %s", proposal_id, exc)
            refused.append((proposal_id, str(exc)))
            continue
        if relative is not None:
            write_atomically(outbox / STAGING / relative, orders_csv(orders))
            staged.append(relative)
        exports.append({"proposal_id": proposal_id, "fund_id": proposal["fund_id"],
                        "as_of_date": proposal["as_of_date"],
                        "file_name": relative.as_posix() if relative else None,
                        "order_count": len(orders), "run_id": run_id, "orders": orders})
    batch = block_batch([e for e in exports if e["orders"]]) if blocks else None
    if batch is not None:
        # Allocations first: delivered in this order, a block never arrives alone.
        for relative, content in ((batch.allocations_file, batch.allocations_csv),
                                  (batch.blocks_file, batch.blocks_csv)):
            write_atomically(outbox / STAGING / relative, content)
            staged.append(relative)
        for e in exports:
            if e["orders"]:
                e["file_name"] = batch.allocations_file.as_posix()
    return exports, batch


def write_atomically(path: Path, content: bytes) -> None:
    """Replace ``path`` with ``content`` so that a reader sees the old file, or the whole new one."""
    folder = path.parent
    _make_folder(folder)
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


def _deliver(outbox: Path, relative: Path) -> bool:
    """Move the staged file of ``relative`` into place in the outbox; False if it is not staged.

    Called only for files whose ledger row is committed. A staged file that is gone was moved
    by a concurrent export's reconciliation (an export that starts right after this one
    committed): moving is atomic and only one move can succeed, so the file goes out once.
    """
    source = outbox / STAGING / relative
    target = outbox / relative
    _make_folder(target.parent)
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not source.exists():
            log.info("staged %s was already delivered by another export", relative.as_posix())
            return False
        raise
    _fsync_folder(target.parent)
    with contextlib.suppress(FileNotFoundError):   # a later export may have tidied it away already
        _fsync_folder(source.parent)
    return True


def _reconcile_staging(conn: Connection, outbox: Path) -> tuple[int, int]:
    """Deliver the staged files that are recorded, delete the others; (delivered, deleted).

    Runs under the exporter's lock, so no other export is staging or recording meanwhile:
    a staged file either belongs to a committed export (its row is visible now) or to an
    attempt that will never commit.
    """
    staging = outbox / STAGING
    if not staging.is_dir():
        return 0, 0
    staged = sorted(p.relative_to(staging) for p in staging.rglob("*") if not p.is_dir())
    recorded: set[str] = set()
    if staged:
        recorded = set(conn.execute(sa.text(query_sql("recorded_export_files")),
                                    {"names": [p.as_posix() for p in staged]}).scalars())
    delivered = deleted = 0
    for relative in staged:
        if relative.as_posix() in recorded:
            log.warning("delivering %s: recorded by an earlier export whose delivery was interrupted",
                        relative.as_posix())
            if _deliver(outbox, relative):
                delivered += 1
        else:
            log.warning("discarding staged %s: an earlier export staged it but never recorded it",
                        relative.as_posix())
            (staging / relative).unlink(missing_ok=True)
            deleted += 1
    # Empty date folders of the staging area go too (safe here: nobody else stages meanwhile).
    for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    return delivered, deleted


def _make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) if missing, durably."""
    if folder.is_dir():
        return
    missing = [folder, *(p for p in folder.parents if not p.exists())]
    folder.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        _fsync_folder(created.parent)


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
    for trade in conn.execute(sa.text(query_sql("export_trades")), {"proposal_ids": proposal_ids}):
        grouped.setdefault(trade.proposal_id, []).append(trade)
    return grouped


def _record_exports(conn: Connection, exports: list[dict], batch: BlockBatch | None = None,
                    run_id: str | None = None) -> None:
    rows = [{k: v for k, v in e.items() if k != "orders"} for e in exports]
    if batch is None:
        conn.execute(sa.text(query_sql("record_order_export")), rows)
        return
    conn.execute(sa.text(query_sql("record_block_export")), {
        "block_batch_id": batch.batch_id, "blocks_file": batch.blocks_file.as_posix(),
        "allocations_file": batch.allocations_file.as_posix(), "block_count": batch.block_count,
        "allocation_count": batch.allocation_count, "proposal_count": batch.proposal_count, "run_id": run_id})
    conn.execute(sa.text(query_sql("record_block_order_export")),
                 [{**row, "block_batch_id": batch.batch_id if row["order_count"] else None} for row in rows])


