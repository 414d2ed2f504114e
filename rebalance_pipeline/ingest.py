"""Ingest, once a night: read and type the date's folder, resolve the reference data in
force, read what the decision needs of the warehouse's history, run the night-level checks
and split every fund-keyed frame into shards (``rebalance_pipeline.night_run`` names them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pandas as pd

from rebalance_core.inputs import merge_reference
from rebalance_core.models import fund_models
from rebalance_core.shards import shard_of
from rebalance_pipeline import history, landing, publish, warehouse
from rebalance_pipeline.night_run import (
    DAILY_STEMS,
    FUND_KEYED,
    MERGED_REFERENCE,
    NIGHT_ROWS,
    NightlyRun,
    NightPlan,
    shard_count,
    validation_frames,
)

log = logging.getLogger(__name__)


def ingest(run: NightlyRun, shards: int | None = None) -> NightPlan:
    """Read and type the date's folder, resolve reference data, check the night-level rows,
    split the fund-keyed frames into shards.

    The files that grow with the book (positions, targets, tax lots) and the targets history
    are read in batches and go straight into per-shard parts, so this step's memory is a
    batch plus compact Arrow parts, never the whole night as Python objects.
    """
    from rebalance_pipeline import validation

    folder = landing.date_folder(run.landing_dir, run.as_of)
    frames, sources = landing.read_landing(run.landing_dir, run.as_of, skip=landing.SPLIT_STEMS)
    positions = landing.count_rows(folder / sources["positions"])
    count = shard_count(shards, positions)
    ws = run.workspace
    parts: dict[tuple[str, int], int] = {}

    def sink_for(name: str):
        def sink(shard: int, table) -> None:   # a batch's rows of one shard, stored at once
            k = parts[(name, shard)] = parts.get((name, shard), 0) + 1
            ws.put(f"s{shard}/{name}/part{k:05d}", table)
        return sink

    listed = {stem: landing.read_file_split(folder / sources[stem], landing.SPECS[stem], run.as_of, count,
                                            sink_for(f"file_{stem}"))
              for stem in landing.SPLIT_STEMS if stem in sources}
    night = _from_warehouse(run, frames, listed, count, sink_for("targets_history"))
    _check_first_load(night, stored_targets=any(name in ("file_targets", "targets_history") for name, _ in parts))
    for stem in DAILY_STEMS:
        if stem in frames:
            night[f"file_{stem}"] = frames[stem]
    _tracking_history(run, night)
    night["meta"] = pd.DataFrame({"key": ["sources"], "value": [json.dumps(sources)]})

    # Faults of prices, securities and fx rates touch every fund exposed to them: once a night.
    outcome = validation.validate(validation_frames(night, shard_frames=None, as_of=run.as_of), scope="night")
    night["night_faults"] = outcome.faults
    night["night_results"] = outcome.results
    night["night_gx_results"] = outcome.gx_results
    _store(run, night, count)
    plan = NightPlan(run.as_of, run.run_id, count, int(night["ref_funds"]["fund_id"].nunique()), positions)
    log.info("ingested %s for %s: %s; %d shards", run.landing_dir, run.as_of,
             {stem: len(frame) for stem, frame in frames.items()}, count)
    return plan


def _from_warehouse(run: NightlyRun, frames: dict[str, pd.DataFrame], listed: dict, count: int,
                    history_sink) -> dict[str, pd.DataFrame]:
    """The night's frames the warehouse gives: the reference data in force (the targets
    history streamed into ``history_sink`` by shard), the model versions, and the history
    facts (loss sales, fund states, buys, open harvests, rejections)."""
    night: dict[str, pd.DataFrame] = {}
    with run.engine.connect() as conn:
        for stem in MERGED_REFERENCE:
            # The date's own version is the file in its folder, or none: a rerun without the
            # file falls back to the latest earlier version (publish drops the stale one).
            history_rows = warehouse.reference_as_of(conn, stem, run.as_of, include_same_day=False)
            if stem in frames:
                night[f"file_{stem}"] = frames[stem]
            # The one merge rule (the replay uses it too): the file's keys replace their rows.
            night[f"ref_{stem}"] = _typed_reference(stem, merge_reference(stem, history_rows, frames.get(stem)))
        # Targets in force: this date's file for the funds it lists, the history for the others
        # (streamed, and stored by shard as it comes): merge_reference's rule, by fund_id, done
        # in the query (the history leaves out the funds the file lists) to keep memory flat.
        for chunk in warehouse.reference_as_of_chunks(conn, "targets", run.as_of, sorted(listed.get("targets", ()))):
            for i, part in enumerate(_split(_typed_reference("targets", chunk), count)):
                if len(part):
                    history_sink(i, part)
        # Model versions: the whole (small) history before tonight, and tonight's file.
        night["ref_model_targets"] = _model_history(warehouse.model_target_history(conn, run.as_of),
                                                    frames.get("model_targets"), run.as_of)
        if "model_targets" in frames:
            night["file_model_targets"] = frames["model_targets"]
        night["recent_loss_sales"] = history.recent_loss_sales(conn, run.as_of)
        _fund_state_facts(conn, run.as_of, night, frames.get("executions"))
        night["recent_buys"] = history.recent_buys(conn, run.as_of)
        night["open_harvests"] = history.open_harvests(conn, run.as_of)
        night["recent_rejections"] = history.recent_rejections(conn, run.as_of)
    return night


def _check_first_load(night: dict[str, pd.DataFrame], stored_targets: bool) -> None:
    """funds.csv (and targets.csv, unless every fund follows a model) must have come once."""
    if night["ref_funds"].empty:
        raise landing.StructuralError(
            "funds.csv", "not in this date's folder and no earlier version is in the warehouse "
            "(the first date loaded must bring funds.csv)")
    # Where every fund follows a model, targets.csv may be header-only or absent.
    own_target_funds = fund_models(night["ref_funds"]).isna().any()
    if own_target_funds and not stored_targets:
        raise landing.StructuralError(
            "targets.csv", "not in this date's folder and no earlier version is in the warehouse "
            "(the first date loaded must bring targets.csv)")


def _store(run: NightlyRun, night: dict[str, pd.DataFrame], count: int) -> None:
    """The night's frames into the workspace (fund-keyed ones split by shard), and its own
    input rows (prices, fx rates) into the warehouse's night leaves."""
    ws = run.workspace
    for name, frame in night.items():
        if name in FUND_KEYED:
            for i, part in enumerate(_split(frame, count)):
                ws.put(f"s{i}/{name}", part)
        else:
            ws.put(f"night/{name}", frame)
    ws.put("night/plan", pd.DataFrame([{"shards": count}]))
    publish.write_night_rows(run.engine, run.run_id, run.as_of,
                             {stem: night[f"file_{stem}"] for stem in NIGHT_ROWS
                              if f"file_{stem}" in night})


def _fund_state_facts(conn, as_of: dt.date, night: dict[str, pd.DataFrame], file_rows: pd.DataFrame | None) -> None:
    """What tonight's fund state needs of the warehouse, read once (fund-keyed, split by
    shard): each fund's previous state, its latest approved proposal with its orders, and
    what was reported done of it (earlier nights' rows, operators' words, tonight's
    executions.csv, checked here: a bad row is left out with a finding)."""
    from rebalance_core.fund_state import DEFAULT_EXECUTION_EXPIRY_DAYS
    from rebalance_pipeline import executions

    funds = night["ref_funds"]
    night["previous_state"] = history.previous_state(conn, as_of, funds["fund_id"].unique())
    # An approval older than the longest expiry cannot block a fund any more: not read.
    days = pd.to_numeric(funds.get("execution_expiry_days"), errors="coerce") if len(funds) else None
    longest = int(max(days.max() if days is not None and days.notna().any() else 0, DEFAULT_EXECUTION_EXPIRY_DAYS))
    since = as_of - dt.timedelta(days=2 * longest + 10)   # business days, with weekends and holidays
    approved = history.approved_orders(conn, as_of, since)
    night["approved"] = approved
    earlier = history.executions_of(conn, as_of, approved["proposal_id"].unique())
    earlier = earlier.assign(fund_id=earlier["proposal_id"].map(
        approved.drop_duplicates("proposal_id").set_index("proposal_id")["fund_id"]))
    tonight = None
    if file_rows is not None:
        usable, results, faults = executions.check_executions(
            file_rows, executions.known_proposals(conn, file_rows["proposal_id"].dropna().astype(str)))
        night["file_executions"] = usable
        night["execution_results"], night["execution_faults"] = results, faults
        tonight = usable.drop(columns="source_row")
    parts = [f for f in (earlier, tonight) if f is not None and len(f)]
    night["executions"] = (pd.concat(parts, ignore_index=True) if parts else earlier).reindex(
        columns=["fund_id", "proposal_id", "security_id", "side", "quantity", "price", "status", "source"])


def _tracking_history(run: NightlyRun, night: dict[str, pd.DataFrame]) -> None:
    """What tonight's tracking needs of the warehouse, read once: the tracking funds' earlier
    fund_tracking rows (split by shard) and the closes of the last 60 business dates of
    tonight's priced securities (a night frame). Nothing is read when no fund tracks."""
    from rebalance_core.tracking import tracking_funds

    funds = tracking_funds(night["ref_funds"], night.get("file_index_levels"), night.get("file_fund_shares"))
    if funds.empty:
        return
    with run.engine.connect() as conn:
        night["tracking_history"] = history.tracking_history(conn, run.as_of, funds["fund_id"])
        night["price_history"] = history.price_history(conn, run.as_of, night["file_prices"]["security_id"].unique())


def _split(frame: pd.DataFrame, count: int) -> list[pd.DataFrame]:
    """A fund-keyed frame in ``count`` parts by the shard of its fund."""
    shard = shard_of(frame["fund_id"].to_numpy(), count)
    return [frame[shard == i].reset_index(drop=True) for i in range(count)]


def _model_history(stored: pd.DataFrame, today: pd.DataFrame | None, as_of: dt.date) -> pd.DataFrame:
    """Model versions known tonight: those stored before tonight and tonight's file (which
    replaces a version stored for this date by an earlier run)."""
    parts = [stored.astype({"target_weight": "float64"}) if len(stored) else stored]
    if today is not None and len(today):
        parts.append(today.assign(valid_from=as_of))
    parts = [p for p in parts if len(p)]
    columns = ["model_id", "security_id", "target_weight", "valid_from", "effective_date", "source_row"]
    if not parts:
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    else:
        out = pd.concat(parts, ignore_index=True).reindex(columns=columns)
    out["target_weight"] = pd.to_numeric(out["target_weight"], errors="coerce").astype("float64")
    for column in ("valid_from", "effective_date"):
        out[column] = pd.to_datetime(out[column], errors="coerce")
    out["source_row"] = pd.to_numeric(out["source_row"], errors="coerce").astype("Int64")
    return out


def _typed_reference(stem: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Reference rows from the warehouse come back as Decimal/None: give them the file types."""
    spec = landing.SPECS[stem]
    frame = frame.copy()
    for column in spec.all_columns:
        if column not in frame:
            frame[column] = None
    for column in (*spec.numeric, *spec.optional_numeric):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in spec.boolean:
        frame[column] = frame[column].astype("object").where(frame[column].notna(), None)
    for column, choices in spec.choices:   # rows stored before choices were normalised
        frame[column] = landing.normalise_choice(frame[column], choices)
    return frame
