"""Writing a night: shards fill leaf tables in parallel, one short transaction publishes.

The tables a night writes in bulk are partitioned by date and, within a date, by shard
(``sql/migrations/V007__night_partitions.sql``). Nobody sees a leaf until it is attached:

- ``write_night_rows`` (ingest): the night's own rows (prices, fx rates, index levels), shard -1;
- ``write_shard`` (each shard, one transaction): the shard's inputs (positions, cash,
  flows, tax lots, shares outstanding, the targets file's rows), its drift, fund summary,
  tracking, compliance results, fund state (``rebalance_core.fund_state``), trades and lots
  into new leaves, its proposals into ``proposal_stage``, its executions (executions.csv,
  orders its positions show done) into ``execution_stage``; keys built; the shard marked done. A
  retried shard replaces its own leaves, so it is idempotent; a killed one leaves nothing
  that anybody reads;
- ``publish_night`` (one transaction under the date's advisory lock, which decisions take
  too): refuses a night with a shard missing; carries the trades of the date's reviewed
  proposals over; attaches the run's leaves as the date's partitions (the old ones are
  detached and dropped); merges the proposals: pending ones of the date are replaced,
  approved or rejected ones never touched (a rerun that finds the same trades for a reviewed
  fund finds the same id, a hash of the trades, and adds nothing; different trades arrive as
  a new pending proposal beside it); pending proposals of earlier dates of tonight's funds
  become ``superseded``; the staged executions replace the date's (an operator's word stays);
  small reference files and the validation results are written;
  tonight's proposals that their fund's straight-through rule approves
  (``rebalance_core.approval``, flagged in the stage) are approved by ``rule:auto`` with an
  audit row (channel ``rule``), in the same transaction. Which proposal may move where is
  the lifecycle's call (``rebalance_core.lifecycle``): the publish looks up the facts and
  carries out ``transition``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from rebalance_core import lifecycle
from rebalance_core.approval import AUTO_APPROVER, RULE_CHANNEL
from rebalance_core.baskets import BASKET_COLUMNS, IN_KIND_LOT_COLUMNS
from rebalance_core.compliance import RESULT_COLUMNS as COMPLIANCE_COLUMNS
from rebalance_core.drift import CLASS_DRIFT_COLUMNS, DRIFT_COLUMNS
from rebalance_core.fund_state import DATE_COLUMNS as STATE_DATE_COLUMNS
from rebalance_core.fund_state import FUND_STATE_COLUMNS
from rebalance_core.inputs import INPUTS
from rebalance_core.night import NightDecision
from rebalance_core.tracking import TRACKING_COLUMNS
from rebalance_pipeline.warehouse import approval_twins, copy_frame, date_lock, query_sql, read_frame

NIGHT_SHARD = -1  # leaves of rows that belong to the whole night, not to a shard of funds

# Derived from the input registry (rebalance_core.inputs). The date's own rows (daily files,
# and targets.csv which is split by shard like them) go into the night's leaves: file stem:
# (table, columns).
DAILY_INPUTS = {f.stem: (f.table, ["source_row", *(c.name for c in f.columns if c.name != "as_of_date")])
                for f in INPUTS if not f.reference or f.split}
# Small reference files: a version is stored whole with its date (valid_from).
REFERENCE_INPUTS = {f.stem: (f"rebalance.{f.table}", ["valid_from", "source_row", *(c.name for c in f.columns)])
                    for f in INPUTS if f.reference and not f.split}
SHARD_TABLES = ["position", "cash_balance", "flow", "tax_lot", "target_ref", "fund_drift", "fund_class_drift",
                "fund_summary", "proposal_trade", "proposal_trade_lot", "fund_shares", "fund_tracking",
                "compliance_result", "creation", "basket", "in_kind_lot", "fund_state"]
NIGHT_TABLES = ["price", "fx_rate", "index_level"]
CARRIED_TABLES = ["proposal_trade", "proposal_trade_lot", "compliance_result"]
SUMMARY_COLUMNS = ["fund_id", "name", "base_currency", "policy", "nav", "cash", "cash_weight",
                   "max_abs_drift", "breached", "breach_count", "trigger", "status", "blocked_reason", "proposal_id",
                   "run_id", "flow", "model_id", "in_kind_unrealized_gain", "state_note"]
PROPOSAL_COLUMNS = ["proposal_id", "as_of_date", "fund_id", "trigger", "nav", "turnover", "est_cost",
                    "est_realized_gain", "trade_count", "cash_before", "cash_after", "run_id", "flow", "notes",
                    "est_realized_gain_short", "est_realized_gain_long", "wash_sale_trades", "est_harvested_loss",
                    "restriction_note", "tax_trade_count", "compliance_note", "in_kind_unrealized_gain",
                    *lifecycle.REJECTED_BEFORE_COLUMNS]
# Only in proposal_stage: what the core decided for the publish to apply (straight-through approval).
STAGE_ONLY_COLUMNS = ["auto_approve", "auto_approve_note"]
# The fund's figures of the night each proposal carries for the review queue (V010).
PROPOSAL_QUEUE_COLUMNS = ["base_currency", "max_abs_drift", "policy", "model_id"]
TRADE_COLUMNS = ["proposal_id", "security_id", "side", "quantity", "price", "currency", "notional", "weight_before",
                 "weight_after", "target_weight", "est_cost", "est_realized_gain", "reason",
                 "est_realized_gain_short", "est_realized_gain_long", "wash_sale", "harvest_of"]
LOT_COLUMNS = ["proposal_id", "security_id", "lot_id", "quantity", "unit_cost", "acquired_date", "realized_gain",
               "term"]
VALIDATION_COLUMNS = ["as_of_date", "run_id", "dataset", "check", "success", "failed_rows", "detail"]
DRIFT_LEAF_COLUMNS = [c for c in DRIFT_COLUMNS if c != "as_of_date"]
CLASS_DRIFT_LEAF_COLUMNS = [c for c in CLASS_DRIFT_COLUMNS if c != "as_of_date"]
TRACKING_LEAF_COLUMNS = [c for c in TRACKING_COLUMNS if c != "as_of_date"]
COMPLIANCE_LEAF_COLUMNS = [c for c in COMPLIANCE_COLUMNS if c != "as_of_date"]
BASKET_LEAF_COLUMNS = [c for c in BASKET_COLUMNS if c != "as_of_date"]
IN_KIND_LOT_LEAF_COLUMNS = [c for c in IN_KIND_LOT_COLUMNS if c != "as_of_date"]
FUND_STATE_LEAF_COLUMNS = [c for c in FUND_STATE_COLUMNS if c != "as_of_date"]
EXECUTION_STAGE_COLUMNS = ["as_of_date", "proposal_id", "security_id", "side", "quantity", "price", "status", "source",
                           "source_row", "recorded_by"]


class NightIncomplete(RuntimeError):
    """A publish was asked for a night whose shards did not all finish."""


@dataclass(frozen=True)
class NightToPublish:
    as_of: dt.date
    run_id: str
    started_at: dt.datetime | None
    shards: int
    reference_files: dict[str, pd.DataFrame]   # small reference files that came with the date
    validation_results: pd.DataFrame
    gx_results: pd.DataFrame | None = None     # part, suite, result (JSON): the GX results, for Data Docs


@dataclass(frozen=True)
class PublishReport:
    as_of: dt.date
    run_id: str
    funds: int
    proposed: int
    blocked: int
    trades: int
    new_proposals: int
    kept_existing: int
    superseded: int
    auto_approved: int = 0     # tonight's proposals approved by their fund's rule on publish


# --------------------------------------------------------------------- leaves
def _begin_leaves(conn: Connection, run_id: str, as_of: dt.date, shard: int, tables: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.text(query_sql("night_shard_begin")), {"r": run_id, "d": as_of, "s": shard, "t": tables}).all()
    return {row.table_name: f"rebalance.{_quoted(row.leaf_name)}" for row in rows}


def _quoted(identifier: str) -> str:
    # Leaf names come from the database (rebalance.night_leaf_name), never from input values.
    return '"' + identifier.replace('"', '""') + '"'


def _seal(conn: Connection, run_id: str, as_of: dt.date, shard: int, funds: int) -> None:
    conn.execute(sa.text(query_sql("night_shard_seal")), {"r": run_id, "d": as_of, "s": shard, "f": funds})


# A run that never published (killed, abandoned) leaves leaves and scratch behind: the next
# night drops what is older than this.
STALE_AFTER = dt.timedelta(days=1)


def _copy_inputs(conn: Connection, leaves: dict[str, str], frames: dict[str, pd.DataFrame]) -> int:
    """Input files' rows (by stem) into their tables' leaves; rows written."""
    written = 0
    for stem, frame in frames.items():
        table, columns = DAILY_INPUTS[stem]
        written += copy_frame(conn, leaves[table], frame, columns)
    return written


def write_night_rows(engine: Engine, run_id: str, as_of: dt.date, frames: dict[str, pd.DataFrame]) -> int:
    """The night's own input rows (prices, fx rates) into leaves of shard -1; first, what runs
    that never published left behind more than STALE_AFTER ago is dropped."""
    with engine.begin() as conn:
        conn.execute(sa.text(query_sql("night_discard_stale")), {"age": STALE_AFTER})
        conn.execute(sa.text(query_sql("delete_stale_run_artifacts")), {"age": STALE_AFTER, "r": run_id})
        conn.execute(sa.text(query_sql("delete_stale_execution_stage")), {"age": STALE_AFTER, "r": run_id})
    with engine.begin() as conn:
        leaves = _begin_leaves(conn, run_id, as_of, NIGHT_SHARD, NIGHT_TABLES)
        written = _copy_inputs(conn, leaves, frames)
        _seal(conn, run_id, as_of, NIGHT_SHARD, 0)
    return written


def write_shard(engine: Engine, run_id: str, as_of: dt.date, shard: int, decision: NightDecision,
                inputs: dict[str, pd.DataFrame], executions: pd.DataFrame | None = None) -> int:
    """One shard's inputs and decision into its own leaves and the proposal stage (and its
    executions.csv rows and the orders its positions show done into the execution stage);
    rows written."""
    with engine.begin() as conn:
        leaves = _begin_leaves(conn, run_id, as_of, shard, SHARD_TABLES)
        written = _copy_inputs(conn, leaves, inputs)
        written += copy_frame(conn, leaves["fund_drift"], decision.drift, DRIFT_LEAF_COLUMNS)
        written += copy_frame(conn, leaves["fund_class_drift"], decision.class_drift, CLASS_DRIFT_LEAF_COLUMNS)
        written += copy_frame(conn, leaves["fund_summary"], decision.summary.assign(run_id=run_id), SUMMARY_COLUMNS)
        written += copy_frame(conn, leaves["proposal_trade"], decision.trades, TRADE_COLUMNS)
        written += copy_frame(conn, leaves["proposal_trade_lot"], decision.lots, LOT_COLUMNS)
        if decision.tracking is not None:
            written += copy_frame(conn, leaves["fund_tracking"], decision.tracking, TRACKING_LEAF_COLUMNS)
        if decision.compliance is not None:
            written += copy_frame(conn, leaves["compliance_result"], decision.compliance, COMPLIANCE_LEAF_COLUMNS)
        if decision.baskets is not None:
            written += copy_frame(conn, leaves["basket"], decision.baskets, BASKET_LEAF_COLUMNS)
        if decision.in_kind_lots is not None:
            written += copy_frame(conn, leaves["in_kind_lot"], decision.in_kind_lots, IN_KIND_LOT_LEAF_COLUMNS)
        if decision.fund_state is not None:
            written += copy_frame(conn, leaves["fund_state"], _dated(decision.fund_state), FUND_STATE_LEAF_COLUMNS)
        written += _stage_executions(conn, run_id, as_of, shard, executions, decision.executed_by_positions)
        conn.execute(sa.text(query_sql("delete_shard_proposal_stage")), {"r": run_id, "s": shard})
        proposals = _with_queue_columns(decision)
        if "auto_approve" not in proposals:   # a decision made without the rule: nothing approved by it
            proposals = proposals.assign(auto_approve=False, auto_approve_note=None)
        missing = [c for c in lifecycle.REJECTED_BEFORE_COLUMNS if c not in proposals]
        proposals = proposals.assign(**dict.fromkeys(missing)) if missing else proposals
        written += copy_frame(conn, "rebalance.proposal_stage", proposals.assign(run_id=run_id, shard=shard),
                              [*PROPOSAL_COLUMNS, *PROPOSAL_QUEUE_COLUMNS, *STAGE_ONLY_COLUMNS, "shard"])
        # Gross notional summed in NUMERIC from the trades as stored (base currency): the
        # four-eyes threshold compares against exactly what the trades say. Built here, not in
        # sql/queries: it reads the shard's own leaf (a quoted name from the database).
        conn.execute(sa.text(
            f"UPDATE rebalance.proposal_stage s SET gross_notional = t.gross "
            f"FROM (SELECT proposal_id, sum(notional) AS gross FROM {leaves['proposal_trade']} GROUP BY proposal_id) t "
            "WHERE s.run_id = :r AND s.shard = :s AND s.proposal_id = t.proposal_id"), {"r": run_id, "s": shard})
        _seal(conn, run_id, as_of, shard, len(decision.summary))
    return written


def _dated(state: pd.DataFrame) -> pd.DataFrame:
    """The state's dates as dates (COPY reads them as such), its timestamps as ISO text."""
    out = state.copy()
    for column in STATE_DATE_COLUMNS:
        out[column] = pd.to_datetime(out[column]).dt.date.astype(object).where(out[column].notna(), None)
    at = pd.to_datetime(out["awaiting_approved_at"], utc=True)
    out["awaiting_approved_at"] = at.map(lambda t: t.isoformat(), na_action="ignore").astype(object)
    return out


def _stage_executions(conn: Connection, run_id: str, as_of: dt.date, shard: int, file_rows: pd.DataFrame | None,
                      by_positions: pd.DataFrame | None) -> int:
    """The shard's executions.csv rows (source file) and the orders its positions show done
    (source positions) into the execution stage; the publish moves them into rebalance.execution."""
    from rebalance_pipeline.executions import FILE_RECORDER, POSITIONS_RECORDER

    conn.execute(sa.text(query_sql("delete_shard_execution_stage")), {"r": run_id, "s": shard})
    parts = []
    if file_rows is not None and len(file_rows):
        parts.append(file_rows.assign(recorded_by=FILE_RECORDER))
    if by_positions is not None and len(by_positions):
        parts.append(by_positions.assign(source_row=None, recorded_by=POSITIONS_RECORDER))
    if not parts:
        return 0
    rows = pd.concat(parts, ignore_index=True).assign(as_of_date=as_of, run_id=run_id, shard=shard)
    rows["source_row"] = pd.to_numeric(rows["source_row"], errors="coerce").astype("Int64")
    return copy_frame(conn, "rebalance.execution_stage", rows, ["run_id", "shard", *EXECUTION_STAGE_COLUMNS])


def _with_queue_columns(decision: NightDecision) -> pd.DataFrame:
    """The shard's proposals with their fund's base currency, max drift, policy and model of the night."""
    summary = decision.summary.drop_duplicates("fund_id").set_index("fund_id")
    proposals = decision.proposals
    return proposals.assign(**{c: proposals["fund_id"].map(summary[c]) if c in summary else None
                               for c in PROPOSAL_QUEUE_COLUMNS})


# --------------------------------------------------------------------- publish
def published_report(engine: Engine, as_of: dt.date, run_id: str) -> PublishReport | None:
    """The report of a run that already published (None if it has not)."""
    with engine.connect() as conn:
        if conn.execute(sa.text(query_sql("run_published")), {"r": run_id}).first():
            night = NightToPublish(as_of, run_id, None, 0, {}, pd.DataFrame())
            return _report(conn, night, new=0, kept=0, superseded=0)
    return None


def publish_night(engine: Engine, night: NightToPublish) -> PublishReport:
    d = {"d": night.as_of}
    r = {"r": night.run_id}
    with engine.begin() as conn:
        date_lock(conn, night.as_of)
        if conn.execute(sa.text(query_sql("run_published")), r).first():
            # A retried publish of a run that did publish: nothing more to do.
            return _report(conn, night, new=0, kept=0, superseded=0)
        finished = set(conn.execute(sa.text(query_sql("finished_shards")), {**r, **d}).scalars())
        missing = sorted(set(range(night.shards)) - finished)
        if missing:
            raise NightIncomplete(f"run {night.run_id} for {night.as_of}: shard(s) {missing} of {night.shards} did "
                                  "not finish; nothing was published (the date's previous state stands)")

        for stem, (table, columns) in REFERENCE_INPUTS.items():
            # The table is the input registry's identifier (one statement per reference table).
            conn.execute(sa.text(f"DELETE FROM {table} WHERE valid_from = :d"), d)
            if stem in night.reference_files:
                copy_frame(conn, table, night.reference_files[stem].assign(valid_from=night.as_of).reindex(
                    columns=columns), columns)
        conn.execute(sa.text(query_sql("delete_run_validation_results")), {**d, **r})
        copy_frame(conn, "rebalance.validation_result",
                   night.validation_results.assign(as_of_date=night.as_of, run_id=night.run_id), VALIDATION_COLUMNS)
        conn.execute(sa.text(query_sql("delete_run_gx_results")), {**d, **r})
        if night.gx_results is not None and len(night.gx_results):
            copy_frame(conn, "rebalance.validation_gx_result",
                       night.gx_results.assign(as_of_date=night.as_of, run_id=night.run_id),
                       ["as_of_date", "run_id", "part", "suite", "result"])

        # The shards COPYed tonight's proposals into the stage just now: statistics first, so
        # the joins below with rebalance.proposal are planned for their real size.
        conn.execute(sa.text(query_sql("night_analyze_stage")))
        # A rerun replaces only what the lifecycle lets it (lifecycle.RERUN_REPLACEABLE).
        replaceable = {"replaceable": list(lifecycle.RERUN_REPLACEABLE)}
        refreshed = conn.execute(sa.text(query_sql("refresh_pending_proposals")), {**r, **d, **replaceable}).rowcount
        conn.execute(sa.text(query_sql("drop_unfound_pending_proposals")), {**r, **d, **replaceable})
        # Ids are hashes of the trades (and carry the date): a reviewed proposal of the date
        # stays exactly as it is, trades included, even when tonight finds it again.
        reviewed = list(conn.execute(sa.text(query_sql("reviewed_proposal_ids")), {**d, **replaceable}).scalars())
        _carry_reviewed_trades(conn, night, reviewed)
        conn.execute(sa.text(query_sql("night_publish")), {**r, **d})

        _publish_executions(conn, night)
        inserted = conn.execute(sa.text(query_sql("insert_staged_proposals")), r).rowcount
        # Straight-through approval, in this transaction: a night that does not commit
        # approves nothing.
        auto_approved = _auto_approve(conn, night)
        conn.execute(sa.text(query_sql("delete_run_proposal_stage")), r)
        new, kept = inserted + refreshed, reviewed
        supersede = lifecycle.transition(lifecycle.PENDING, lifecycle.SUPERSEDE)
        superseded = conn.execute(sa.text(query_sql("supersede_pending_proposals")),
                                  {**d, "from": list(lifecycle.SUPERSEDABLE), "to": supersede.target}).rowcount
        return _report(conn, night, new=new, kept=len(kept), superseded=superseded, record=True,
                       auto_approved=auto_approved)


def _publish_executions(conn: Connection, night: NightToPublish) -> None:
    """The night's executions (executions.csv, the positions' evidence) replace those an
    earlier run of the date recorded; an operator's word is never touched by a night."""
    # The INSERT is built here, not in sql/queries: its column list is EXECUTION_STAGE_COLUMNS.
    columns = ", ".join(EXECUTION_STAGE_COLUMNS)
    conn.execute(sa.text(query_sql("delete_night_executions")), {"d": night.as_of})
    conn.execute(sa.text(f"INSERT INTO rebalance.execution ({columns}, run_id) SELECT {columns}, run_id "
                         "FROM rebalance.execution_stage WHERE run_id = :r ORDER BY shard, source, source_row"),
                 {"r": night.run_id})
    conn.execute(sa.text(query_sql("delete_run_execution_stage")), {"r": night.run_id})


def _auto_approve(conn: Connection, night: NightToPublish) -> int:
    """Tonight's proposals the fund's rule approves, carried out as the lifecycle decides
    (``transition(status, auto_approve, ...)``: still pending, not above the four-eyes threshold
    compared as stored money, no twin approval of the fund); approved ones get ``rule:auto``
    and an audit row. Returns how many were approved."""
    candidates = read_frame(conn, query_sql("auto_approve_candidates"), {"r": night.run_id, "d": night.as_of})
    if candidates.empty:
        return 0
    twins = set(approval_twins(conn, candidates["proposal_id"].tolist())["proposal_id"])
    approved, step = [], None
    for row in candidates.itertuples(index=False):
        try:
            step = lifecycle.transition(row.status, lifecycle.AUTO_APPROVE, gross=row.gross_notional,
                                        threshold=row.second_approval_notional, twin=row.proposal_id in twins)
        except lifecycle.LifecycleError:
            continue   # waits for a person (or was decided already)
        approved.append(row.proposal_id)
    if not approved:
        return 0
    return conn.execute(sa.text(query_sql("auto_approve_proposals")), {
        "r": night.run_id, "d": night.as_of, "ids": approved, "by": AUTO_APPROVER, "channel": RULE_CHANNEL,
        "from": step.source, "to": step.target, "audit": step.audit}).rowcount


def _carry_reviewed_trades(conn: Connection, night: NightToPublish, kept: list[str]) -> None:
    """The date's reviewed proposals keep their trades and lots exactly as they were: copied
    from the date's current partition into a night leaf; tonight's rows for those ids go."""
    params = {"d": night.as_of, "kept": kept}
    leaves = _begin_leaves(conn, night.run_id, night.as_of, NIGHT_SHARD, CARRIED_TABLES)
    shard_leaves = conn.execute(sa.text(query_sql("shard_leaves")), {"r": night.run_id, "d": night.as_of, "t": CARRIED_TABLES}).all()
    if kept:
        # Built here, not in sql/queries: the leaves' names come from the database (quoted)
        # and the column lists from this module's constants.
        for table, columns in (("proposal_trade", TRADE_COLUMNS), ("proposal_trade_lot", LOT_COLUMNS),
                               ("compliance_result", COMPLIANCE_LEAF_COLUMNS)):
            column_list = ", ".join(f'"{c}"' for c in columns)
            conn.execute(sa.text(
                f"INSERT INTO {leaves[table]} ({column_list}) SELECT {column_list} FROM rebalance.{table} "
                "WHERE as_of_date = :d AND proposal_id = ANY(CAST(:kept AS text[]))"), params)
        for row in shard_leaves:
            conn.execute(sa.text(f"DELETE FROM rebalance.{_quoted(row.leaf_name)} "
                                 "WHERE as_of_date = :d AND proposal_id = ANY(CAST(:kept AS text[]))"), params)
    _seal(conn, night.run_id, night.as_of, NIGHT_SHARD, 0)


def _report(conn: Connection, night: NightToPublish, new: int, kept: int, superseded: int,
            record: bool = False, auto_approved: int = 0) -> PublishReport:
    counts = dict(conn.execute(sa.text(query_sql("night_status_counts")), {"d": night.as_of}).all())
    trades = conn.execute(sa.text(query_sql("night_trade_count")), {"d": night.as_of}).scalar()
    funds = sum(counts.values())
    if record:
        conn.execute(sa.text(query_sql("record_pipeline_run")), {"r": night.run_id, "d": night.as_of, "s": night.started_at, "f": funds,
             "p": int(counts.get("proposed", 0)), "b": int(counts.get("blocked", 0)), "t": int(trades or 0)})
    return PublishReport(
        as_of=night.as_of, run_id=night.run_id, funds=funds, proposed=int(counts.get("proposed", 0)),
        blocked=int(counts.get("blocked", 0)), trades=int(trades or 0), new_proposals=new, kept_existing=kept,
        superseded=superseded, auto_approved=auto_approved)
