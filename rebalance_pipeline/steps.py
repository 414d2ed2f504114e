"""The nightly pipeline: ingest, then per shard of funds validate and decide, then publish.

- ``ingest`` (once per night) reads the date's folder, resolves the reference data in
  force, reads the approved-history facts and each fund's previous state (the fund state,
  ``rebalance_core.fund_state``) the decision needs, runs the checks whose faults
  are global (prices, securities, fx rates) and splits every fund-keyed frame into shards;
  it writes the night's own rows (prices, fx rates) into unattached leaf tables.
- ``validate_shard`` (per shard) runs the fund-level Great Expectations checks on the
  shard's rows; with the night's faults they give the shard's blocked funds.
- ``decide_shard`` (per shard) calls ``rebalance_core.night.decide_night`` and COPYs the
  shard's inputs and outputs into leaf tables of its own, in one transaction.
- ``publish`` (once) makes the night visible in one short transaction: the leaves are
  attached as the date's partitions, proposals merged (see ``rebalance_pipeline.publish``).

Tasks hand each other only the date, the run id and shard numbers; frames travel through a
workspace (the warehouse's ``run_artifact`` between Airflow tasks, a temporary folder in
one process). ``run_nightly`` runs a whole night in one process, its shards in parallel
worker processes; the Airflow DAG runs the same functions as (mapped) tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_core import inputs as registry
from rebalance_core.index_events import night_targets
from rebalance_core.inputs import merge_reference, night_inputs
from rebalance_core.models import fund_models, models_in_force
from rebalance_core.night import NightInputs, decide_night
from rebalance_core.shards import choose_shard_count, shard_of
from rebalance_pipeline import history, landing, publish, warehouse
from rebalance_pipeline.workspace import DirectoryWorkspace, WarehouseWorkspace, Workspace, get_parts

log = logging.getLogger(__name__)

REFERENCE_STEMS = registry.REFERENCE_STEMS
# executions.csv is read with the daily files, checked against the proposals, and travels by
# fund with the approvals it reports on (``_fund_state_facts``), not as a file of its own.
STATE_STEMS = ("executions",)
# Daily files read whole (positions and tax lots are split: landing.SPLIT_STEMS)
DAILY_STEMS = tuple(f.stem for f in registry.INPUTS if not f.reference and not f.split and f.stem not in STATE_STEMS)
# Frames keyed by fund: split by shard. The others are the whole night's.
def _frame_name(declared: registry.InputFile) -> str:
    """The workspace name of an input's frame tonight: ``ref_<stem>`` (in force) or ``file_<stem>``."""
    return f"{'ref' if declared.reference else 'file'}_{declared.stem}"


def _fund_keyed(declared: registry.InputFile) -> bool:
    return any(c.name == "fund_id" for c in declared.columns)


# Frames keyed by fund: split by shard (the large ones as they are read, SPLIT_PARTS). The
# others are the whole night's. Inputs are placed by their declaration (a fund_id column).
FUND_KEYED = (*(_frame_name(f) for f in registry.INPUTS if _fund_keyed(f) and not f.split and f.stem != "targets"),
              "recent_loss_sales", "previous_state", "approved", "executions", "file_executions", "recent_buys",
              "open_harvests", "tracking_history", "recent_rejections")
NIGHT_FRAMES = (*(_frame_name(f) for f in registry.INPUTS if not _fund_keyed(f) and f.stem not in STATE_STEMS),
                "price_history")
# Reference files resolved against the warehouse history in ingest (targets are streamed by
# shard, model versions kept as a dated history).
MERGED_REFERENCE = tuple(f.stem for f in registry.INPUTS if f.reference and not f.split and f.stem != "model_targets")
# Daily input rows kept with the night: the security-level ones once, the fund-level by shard.
NIGHT_ROWS = tuple(f.stem for f in registry.INPUTS if not f.reference and not _fund_keyed(f) and f.scope == "night")
SHARD_ROWS = tuple(f.stem for f in registry.INPUTS if (not f.reference or f.split) and _fund_keyed(f))
# Stored in parts, batch by batch, as ingest reads them (see _shard_frames).
SPLIT_PARTS = {"file_positions": "positions", "file_targets": "targets", "file_tax_lots": "tax_lots"}
SHARDS_ENV = "REBALANCE_SHARDS"


@dataclass
class NightlyRun:
    """What every step needs: the business date, the run's id, where things are."""

    as_of: dt.date
    run_id: str
    engine: Engine
    workspace: Workspace
    landing_dir: Path | None = None
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def for_task(cls, as_of: dt.date, run_id: str, engine: Engine, landing_dir: Path | None = None) -> NightlyRun:
        """A run whose frames live in the warehouse (one Airflow task per step)."""
        return cls(as_of, run_id, engine, WarehouseWorkspace(engine, run_id), landing_dir)


@dataclass(frozen=True)
class NightPlan:
    """What ingest found: how many shards, how many funds and positions."""

    as_of: dt.date
    run_id: str
    shards: int
    funds: int
    positions: int

    def describe(self) -> dict:
        return {"as_of_date": self.as_of.isoformat(), "run_id": self.run_id, "shards": self.shards,
                "funds": self.funds, "positions": self.positions}


def new_run_id(as_of: dt.date, source: str = "cli") -> str:
    return f"{source}-{as_of.isoformat()}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"


def shard_count(requested: int | None, positions: int) -> int:
    """The shard count: as asked, else $REBALANCE_SHARDS, else chosen by the night's size."""
    if requested is None and os.environ.get(SHARDS_ENV):
        requested = int(os.environ[SHARDS_ENV])
    if requested is not None:
        if requested < 1:
            raise ValueError(f"shards must be at least 1, not {requested}")
        return requested
    return choose_shard_count(positions, os.cpu_count() or 1)


# --------------------------------------------------------------------- ingest
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
        history_sink = sink_for("targets_history")
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
    if night["ref_funds"].empty:
        raise landing.StructuralError(
            "funds.csv", "not in this date's folder and no earlier version is in the warehouse "
            "(the first date loaded must bring funds.csv)")
    # Where every fund follows a model, targets.csv may be header-only or absent.
    own_target_funds = fund_models(night["ref_funds"]).isna().any()
    if own_target_funds and not any(name in ("file_targets", "targets_history") for name, _ in parts):
        raise landing.StructuralError(
            "targets.csv", "not in this date's folder and no earlier version is in the warehouse "
            "(the first date loaded must bring targets.csv)")
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
    plan = NightPlan(run.as_of, run.run_id, count, int(night["ref_funds"]["fund_id"].nunique()), positions)
    log.info("ingested %s for %s: %s; %d shards", run.landing_dir, run.as_of,
             {stem: len(frame) for stem, frame in frames.items()}, count)
    return plan


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


# --------------------------------------------------------------------- per shard
def validate_shard(run: NightlyRun, shard: int) -> dict:
    """The fund-level checks on one shard's rows; with the night's faults, its blocked funds."""
    from rebalance_core.faults import blocked_funds
    from rebalance_pipeline import validation

    frames = _shard_frames(run, shard)
    night = _night_frames(run)
    outcome = validation.validate(validation_frames(night, frames, as_of=run.as_of), scope="shard")
    night_faults = run.workspace.get("night/night_faults")
    faults = pd.concat([f for f in (night_faults, outcome.faults) if len(f)], ignore_index=True) if (
        len(night_faults) or len(outcome.faults)) else outcome.faults
    targets, _ = night_targets(run.as_of, frames["ref_funds"], frames["ref_targets"], night.get("ref_model_targets"))
    blocked = blocked_funds(faults, frames["file_positions"], targets, frames["ref_funds"])
    run.workspace.put(f"s{shard}/blocked", blocked)
    run.workspace.put(f"s{shard}/results", outcome.results)
    run.workspace.put(f"s{shard}/faults", outcome.faults)
    run.workspace.put(f"s{shard}/gx_results", outcome.gx_results)
    failed = outcome.results[~outcome.results["success"]]
    for row in failed.itertuples():
        log.warning("shard %d check failed: %s %s (%d rows): %s", shard, row.dataset, row.check, row.failed_rows,
                    row.detail)
    return {"shard": shard, "checks": len(outcome.results), "failed_checks": len(failed),
            "blocked_funds": len(blocked)}


def decide_shard(run: NightlyRun, shard: int) -> dict:
    """One shard's decision (``decide_night``), written to its own leaf tables."""
    frames = _shard_frames(run, shard)
    night = _night_frames(run)
    inputs = shard_night_inputs(run, shard, frames, night)
    decision = decide_night(run.as_of, inputs)
    written = publish.write_shard(run.engine, run.run_id, run.as_of, shard, decision,
                                  inputs={stem: frames[f"file_{stem}"] for stem in SHARD_ROWS
                                          if f"file_{stem}" in frames},
                                  executions=frames.get("file_executions"))
    counts = decision.summary["status"].value_counts()
    return {"shard": shard, "funds": len(decision.summary), "proposed": int(counts.get("proposed", 0)),
            "blocked": int(counts.get("blocked", 0)), "trades": len(decision.trades), "rows_written": written}


# --------------------------------------------------------------------- publish
def publish_step(run: NightlyRun) -> publish.PublishReport:
    """Make the night visible in one transaction (see ``rebalance_pipeline.publish``)."""
    from rebalance_pipeline import validation

    done = publish.published_report(run.engine, run.as_of, run.run_id)
    if done is not None:   # a retried publish of a run that did publish: nothing more to do
        return done
    ws = run.workspace
    shards = int(ws.get("night/plan")["shards"].iloc[0])
    parts = [validation.ValidationOutcome(ws.get("night/night_results"), ws.get("night/night_faults"))]
    if ws.has("night/execution_results"):   # executions.csv's findings block no fund: kept apart
        parts.append(validation.ValidationOutcome(ws.get("night/execution_results"),
                                                  ws.get("night/execution_faults")))
    parts += [validation.ValidationOutcome(ws.get(f"s{i}/results"), ws.get(f"s{i}/faults")) for i in range(shards)]
    reference_files = {s: ws.get(f"night/file_{s}") for s in REFERENCE_STEMS
                       if s != "targets" and ws.has(f"night/file_{s}")}
    # Each suite's GX result, by the part it ran on: kept with the night for its Data Docs.
    gx_keys = {"night": "night/night_gx_results", **{f"shard-{i}": f"s{i}/gx_results" for i in range(shards)}}
    gx_results = [ws.get(key).assign(part=part) for part, key in gx_keys.items() if ws.has(key)]
    report = publish.publish_night(run.engine, publish.NightToPublish(
        as_of=run.as_of, run_id=run.run_id, started_at=run.started_at, shards=shards,
        reference_files=reference_files, validation_results=validation.merge_results(parts),
        gx_results=pd.concat(gx_results, ignore_index=True) if gx_results else None))
    ws.clear()
    log.info("published %s", report)
    return report


# --------------------------------------------------------------------- one process
def run_nightly(as_of: dt.date, landing_dir: Path, engine: Engine, run_id: str | None = None,
                on_step=None, shards: int | None = None, workers: int | None = None) -> publish.PublishReport:
    """The whole night in one process: shards run in ``workers`` child processes (default:
    one per core, at most one per shard); frames pass through a temporary folder."""
    scratch = Path(tempfile.mkdtemp(prefix="rebalance-night-"))
    try:
        run = NightlyRun(as_of, run_id or new_run_id(as_of), engine, DirectoryWorkspace(scratch), Path(landing_dir))
        plan = ingest(run, shards)
        if on_step:
            on_step("ingest", plan)
        workers = max(1, min(workers or os.cpu_count() or 1, plan.shards))
        jobs = [(engine.url.render_as_string(hide_password=False), as_of, run.run_id, str(scratch), i)
                for i in range(plan.shards)]
        if workers == 1:
            results = [_shard_job(job) for job in jobs]
        else:
            # fork: the children start with the libraries imported; each opens its own connections.
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
                results = list(pool.map(_shard_job, jobs))
        if on_step:
            on_step("shards", _total(results))
        report = publish_step(run)
        if on_step:
            on_step("publish", report)
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _shard_job(job: tuple) -> dict:
    url, as_of, run_id, scratch, shard = job
    engine = warehouse.get_engine(url) if os.getpid() == _PARENT_PID else _fresh_engine(url)
    run = NightlyRun(as_of, run_id, engine, DirectoryWorkspace(Path(scratch)))
    checked = validate_shard(run, shard)
    decided = decide_shard(run, shard)
    return {**checked, **decided}


_PARENT_PID = os.getpid()


def _fresh_engine(url: str) -> Engine:
    """An engine of this child process's own (a forked parent's pooled connections are not
    shared across processes)."""
    warehouse._engine_for.cache_clear()
    return warehouse.get_engine(url)


def _total(results: list[dict]) -> dict:
    keys = ("funds", "proposed", "blocked", "trades", "failed_checks")
    return {"shards": len(results), **{k: sum(r.get(k, 0) for r in results) for k in keys}}


# --------------------------------------------------------------------- helpers
def _shard_frames(run: NightlyRun, shard: int) -> dict[str, pd.DataFrame]:
    """The shard's frames; the files read in parts put together again, and its targets in
    force (this date's file rows, then the history of the funds the file does not list)."""
    ws = run.workspace
    frames = {name: ws.get(f"s{shard}/{name}") for name in FUND_KEYED if ws.has(f"s{shard}/{name}")}
    sources = json.loads(ws.get("night/meta").set_index("key").loc["sources", "value"])
    for name, stem in SPLIT_PARTS.items():
        if stem in sources:
            part = get_parts(ws, f"s{shard}/{name}")
            frames[name] = part if part is not None else landing.empty_frame(stem)
    pieces = [f for f in (frames.get("file_targets"), get_parts(ws, f"s{shard}/targets_history"))
              if f is not None and len(f)]
    frames["ref_targets"] = pd.concat(pieces, ignore_index=True) if pieces else landing.empty_frame("targets")
    return frames


def _night_frames(run: NightlyRun) -> dict[str, pd.DataFrame]:
    ws = run.workspace
    names = NIGHT_FRAMES
    return {name: ws.get(f"night/{name}") for name in names if ws.has(f"night/{name}")}


def shard_night_inputs(run: NightlyRun, shard: int, frames: dict[str, pd.DataFrame],
                       night: dict[str, pd.DataFrame]) -> NightInputs:
    """The shard's NightInputs, built by the one builder the replay uses too."""
    # Each declared input in force tonight, where ingest put it (the shard's or the night's).
    files = {f.stem: frames.get(_frame_name(f), night.get(_frame_name(f))) for f in registry.INPUTS}
    carried = {"blocked": run.workspace.get(f"s{shard}/blocked"), "recent_loss_sales": frames["recent_loss_sales"],
               "model_targets": night.get("ref_model_targets"), "previous_state": frames.get("previous_state"),
               "approved": frames.get("approved"), "executions": frames.get("executions"),
               "recent_rejections": frames.get("recent_rejections"),
               "recent_buys": frames.get("recent_buys"), "open_harvests": frames.get("open_harvests"),
               "tracking_history": frames.get("tracking_history"), "price_history": night.get("price_history")}
    return night_inputs(files, carried)


def _optional(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    return None if frame is None or frame.empty else frame


def validation_frames(night: dict[str, pd.DataFrame], shard_frames: dict[str, pd.DataFrame] | None,
                       as_of: dt.date) -> dict:
    """The frames validation reads, by file stem: the night's, and a shard's fund rows."""
    frames = {"prices": night["file_prices"]}
    if night.get("ref_model_targets") is not None and len(night["ref_model_targets"]):
        frames["model_targets"] = models_in_force(as_of, night["ref_model_targets"])
    for stem in ("fx_rates", "index_levels"):
        if f"file_{stem}" in night:
            frames[stem] = night[f"file_{stem}"]
    for stem in ("securities", "substitutes"):
        if _optional(night.get(f"ref_{stem}")) is not None:
            frames[stem] = night[f"ref_{stem}"]
    if shard_frames is None:   # the night-level checks read no fund rows: give them none
        shard_frames = {"ref_funds": night["ref_funds"].iloc[0:0], "ref_targets": landing.empty_frame("targets"),
                        "file_positions": landing.empty_frame("positions"), "file_cash": landing.empty_frame("cash")}
    frames["funds"] = shard_frames["ref_funds"]
    frames["targets"] = shard_frames["ref_targets"]
    frames["positions"] = shard_frames["file_positions"]
    frames["cash"] = shard_frames["file_cash"]
    for stem in ("flows", "creations", "fund_shares"):
        if f"file_{stem}" in shard_frames:
            frames[stem] = shard_frames[f"file_{stem}"]
    if "file_targets" in shard_frames:
        frames["file_targets"] = shard_frames["file_targets"]
    if _optional(shard_frames.get("ref_restrictions")) is not None:
        frames["restrictions"] = shard_frames["ref_restrictions"]
    if "file_tax_lots" in shard_frames:
        frames["tax_lots"] = shard_frames["file_tax_lots"]
    return frames


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
