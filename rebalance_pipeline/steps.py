"""The nightly pipeline: ingest, then per shard of funds validate and decide, then publish.

- ``ingest`` (once per night; ``rebalance_pipeline.ingest``) reads the date's folder, resolves the reference data in
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
worker processes; the Airflow DAG runs the same functions as (mapped) tasks. Which frames
are split by shard and how a step reads them back: ``rebalance_pipeline.night_run``.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_core.index_events import night_targets
from rebalance_core.night import decide_night
from rebalance_pipeline import publish, warehouse

# The steps' names, importable from here as the DAGs, the CLI and the tests always did:
# ingest and the run's frames live in modules of their own.
from rebalance_pipeline.ingest import ingest
from rebalance_pipeline.night_run import (
    FUND_KEYED,
    NIGHT_FRAMES,
    REFERENCE_STEMS,
    SHARD_ROWS,
    SHARDS_ENV,
    NightlyRun,
    NightPlan,
    new_run_id,
    night_frames,
    shard_count,
    shard_frames,
    shard_night_inputs,
    validation_frames,
)
from rebalance_pipeline.workspace import DirectoryWorkspace

__all__ = ["FUND_KEYED", "NIGHT_FRAMES", "REFERENCE_STEMS", "SHARDS_ENV", "NightPlan", "NightlyRun", "decide_shard",
           "ingest", "new_run_id", "publish_step", "run_nightly", "shard_count", "shard_night_inputs",
           "validate_shard", "validation_frames"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------- per shard
def validate_shard(run: NightlyRun, shard: int) -> dict:
    """The fund-level checks on one shard's rows; with the night's faults, its blocked funds."""
    from rebalance_core.faults import blocked_funds
    from rebalance_pipeline import validation

    frames = shard_frames(run, shard)
    night = night_frames(run)
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
    frames = shard_frames(run, shard)
    night = night_frames(run)
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


