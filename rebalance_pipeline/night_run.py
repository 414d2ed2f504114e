"""A night's run and where its frames live: the run's id and shard count, which frames are
split by shard and which are the whole night's, and the frames each step reads back.

``ingest`` (``rebalance_pipeline.ingest``) puts the frames into the run's workspace under
these names; the per-shard steps (``rebalance_pipeline.steps``) and the replay read them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_core import inputs as registry
from rebalance_core.inputs import night_inputs
from rebalance_core.models import models_in_force
from rebalance_core.night import NightInputs
from rebalance_core.shards import choose_shard_count
from rebalance_pipeline import landing
from rebalance_pipeline.workspace import WarehouseWorkspace, Workspace, get_parts

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
# Stored in parts, batch by batch, as ingest reads them (see shard_frames).
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


# --------------------------------------------------------------------- frames
def shard_frames(run: NightlyRun, shard: int) -> dict[str, pd.DataFrame]:
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


def night_frames(run: NightlyRun) -> dict[str, pd.DataFrame]:
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
