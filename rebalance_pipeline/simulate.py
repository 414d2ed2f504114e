"""`rebalance simulate`: replay a landing folder's history under each fund's policy.

Reads the dates' files as the night does (the daily files of the input registry every day,
reference files merged by key when they come, the book at the first date, the closes of
earlier folders as price history), runs the nightly Great Expectations checks on each
day (so a fund the night would block is blocked in the replay too), hands them to
``rebalance_core.simulation`` (which calls the nightly decision) and writes the per-fund
summary (CSV) and one chart per fund (PNG, matplotlib): NAV against the always-on-target
fund, with the rebalance days marked. Nothing is written to the warehouse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd

from rebalance_core import inputs as registry
from rebalance_core.calendar import previous_session, sessions_between
from rebalance_core.faults import blocked_funds
from rebalance_core.index_events import night_targets
from rebalance_core.inputs import merge_reference
from rebalance_core.night import NightInputs
from rebalance_core.schema import is_true_word
from rebalance_core.simulation import DAILY as DAILY_FILES
from rebalance_core.simulation import SimulationResult, simulate
from rebalance_pipeline import landing, validation

# Reference files merge by key into the data in force (rebalance_core.inputs.merge_reference);
# model versions are kept as a dated history instead.
REFERENCE = tuple(stem for stem in registry.REFERENCE_STEMS if stem != "model_targets")
DAILY = DAILY_FILES


def run_simulation(landing_dir: Path, start: dt.date, end: dt.date, out_dir: Path,
                   max_charts: int = 50, validate: bool = True,
                   fund_settings: dict[str, str] | None = None) -> tuple[SimulationResult, Path]:
    """Replay the dates of ``landing_dir`` between ``start`` and ``end``. ``fund_settings``
    (funds.csv column -> value) overrides a policy column for every fund in the replay, e.g.
    ``{"harvest_loss_pct": "0.05"}`` to compare a harvest threshold with the files' own."""
    overrides = _typed_settings(fund_settings or {})
    dates = [d for d in sessions_between(start, end) if landing.date_folder(landing_dir, d).is_dir()]
    if not dates:
        raise landing.StructuralError(str(landing_dir), f"no date folders between {start} and {end}")
    first = dates[0]
    book, _ = landing.read_landing(landing_dir, first)
    initial = _reference_before(landing_dir, first)
    model_history = _model_history(landing_dir, first)
    previous = _previous_state(landing_dir, first, model_history)
    day_files: dict[dt.date, dict[str, pd.DataFrame]] = {}
    # A suite whose rows did not change since the day before (reference data, a book that did
    # not trade) is not run again: the same rows give the same faults.
    memo = validation.SuiteMemo() if validate else None

    def load_day(as_of: dt.date) -> dict[str, pd.DataFrame]:
        """The day's files; its reference files as versions for the replay to merge (on the
        first date: the reference data in force, every earlier folder merged)."""
        folder = landing.date_folder(landing_dir, as_of)
        frames = {}
        for stem in DAILY:
            path = landing.find_file(folder, stem)
            if path is not None:
                frames[stem] = landing.read_file(path, landing.SPECS[stem], as_of)
        if "prices" not in frames:
            raise landing.StructuralError("prices.csv", f"required file is missing from {folder}")
        if as_of == first:
            frames.update(initial)
        else:
            for stem in (*REFERENCE, "model_targets"):
                path = landing.find_file(folder, stem)
                if path is not None:
                    frames[stem] = landing.read_file(path, landing.SPECS[stem], as_of)
        if "funds" in frames and overrides:
            frames["funds"] = frames["funds"].assign(**overrides)
        day_files.clear()
        day_files[as_of] = frames
        return frames

    def check_day(as_of: dt.date, inputs: NightInputs) -> pd.DataFrame:
        """The nightly checks on the day's files and the simulated book: the funds they block.
        The frames are those the night validates (steps.validation_frames), from the same
        NightInputs fields."""
        from rebalance_pipeline.steps import validation_frames

        files = day_files[as_of]
        night = {"file_prices": inputs.prices, "ref_model_targets": inputs.model_targets,
                 "ref_funds": inputs.funds}
        shard = {"ref_funds": inputs.funds, "ref_targets": inputs.targets, "file_positions": inputs.positions,
                 "file_cash": inputs.cash}
        for stem, frame in (("fx_rates", inputs.fx_rates), ("index_levels", inputs.index_levels)):
            if frame is not None:
                night[f"file_{stem}"] = frame
        for stem, frame in (("securities", inputs.securities), ("substitutes", inputs.substitutes)):
            if frame is not None:
                night[f"ref_{stem}"] = frame
        for stem, frame in (("flows", inputs.flows), ("creations", inputs.creations),
                            ("fund_shares", inputs.fund_shares), ("tax_lots", inputs.tax_lots)):
            if frame is not None:
                shard[f"file_{stem}"] = frame
        if inputs.restrictions is not None:
            shard["ref_restrictions"] = inputs.restrictions
        if "targets" in files:
            shard["file_targets"] = files["targets"]
        outcome = validation.validate(validation_frames(night, shard, as_of), memo=memo, record=False)
        targets, _ = night_targets(as_of, inputs.funds, inputs.targets, inputs.model_targets)
        return blocked_funds(outcome.faults, inputs.positions, targets, inputs.funds)

    result = simulate(dates, load_day, book["positions"], book["cash"], book.get("tax_lots"),
                      check_day=check_day if validate else None, model_history=model_history,
                      previous_state=previous, price_history=_price_history(landing_dir, first))
    result = dataclasses.replace(result, summary=_with_fund_columns(result.summary, initial["funds"], dates))
    out_dir.mkdir(parents=True, exist_ok=True)
    _rounded(result.summary).to_csv(out_dir / "simulation_summary.csv", index=False)
    _rounded(result.daily.merge(result.summary[["fund_id", "policy", "base_currency"]], on="fund_id", how="left")
             ).to_csv(out_dir / "simulation_daily.csv", index=False)
    charted = result.summary.reindex(result.summary["tracking_difference"].abs().sort_values(
        ascending=False).index).head(max_charts)["fund_id"]
    _charts(result, set(charted), out_dir)
    return result, out_dir


def _typed_settings(settings: dict[str, str]) -> dict:
    """funds.csv column -> value, typed as the file's column (numbers, booleans)."""
    spec = landing.SPECS["funds"]
    typed = {}
    for column, value in settings.items():
        if column not in spec.all_columns or column == "fund_id":
            raise landing.StructuralError("funds.csv", f"{column!r} is not a funds.csv policy column "
                                          f"(one of {', '.join(c for c in spec.all_columns if c != 'fund_id')})")
        if column in (*spec.numeric, *spec.optional_numeric):
            try:
                typed[column] = float(value) if str(value).strip() != "" else float("nan")
            except ValueError:
                raise landing.StructuralError("funds.csv", f"{column}={value!r} is not a number") from None
        elif column in spec.boolean:
            typed[column] = is_true_word(value)
        elif column in dict(spec.choices):   # as a file's value: in its declared spelling, or checked
            typed[column] = landing.normalise_choice(pd.Series([value], dtype=object), dict(spec.choices)[column])[0]
        else:
            typed[column] = value
    return typed


# Money in the CSVs to the cent; ratios (turnover, returns) to 1e-8.
MONEY_COLUMNS = ("nav", "target_nav", "cost", "est_cost", "realized_gain", "harvested_loss")
RATIO_COLUMNS = ("turnover", "return", "target_return", "tracking_difference")


def _with_fund_columns(summary: pd.DataFrame, funds: pd.DataFrame, dates: list[dt.date]) -> pd.DataFrame:
    """The summary with each fund's policy (as at the first date) and base currency, and the
    range really replayed (``first_date``, ``last_date``)."""
    ref = funds.drop_duplicates("fund_id").set_index("fund_id")
    out = summary.copy()
    out.insert(1, "policy", out["fund_id"].map(ref["policy"]) if "policy" in ref else None)
    out.insert(2, "base_currency", out["fund_id"].map(ref["base_currency"]) if "base_currency" in ref else None)
    out.insert(3, "first_date", dates[0])
    out.insert(4, "last_date", dates[-1])
    return out


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in MONEY_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round(2)
    for column in RATIO_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").round(8)
    return frame


def _reference_before(landing_dir: Path, first: dt.date) -> dict[str, pd.DataFrame]:
    """The reference data in force on the first date: every folder's version up to it, merged
    by key in date order as the night merges them (a funds.csv of one row changes one fund)."""
    found: dict[str, pd.DataFrame] = {}
    for folder in _date_folders(landing_dir, first):
        day = _folder_date(folder)
        for stem in REFERENCE:
            path = landing.find_file(folder, stem)
            if path is not None:
                found[stem] = merge_reference(stem, found.get(stem),
                                              landing.read_file(path, landing.SPECS[stem], day))
    for stem in ("funds", "targets"):
        if stem not in found and not (stem == "targets" and _model_history(landing_dir, first).size):
            raise landing.StructuralError(f"{stem}.csv", f"no version on or before {first} in {landing_dir}")
    return found


def _date_folders(landing_dir: Path, upto: dt.date, before: bool = False) -> list[Path]:
    """The date folders of ``landing_dir`` up to ``upto`` (``before``: earlier only), oldest first."""
    return sorted(p for p in Path(landing_dir).iterdir() if p.is_dir() and _folder_date(p) is not None
                  and (p.name < upto.isoformat() if before else p.name <= upto.isoformat()))


def _price_history(landing_dir: Path, first: dt.date) -> pd.DataFrame | None:
    """Closes of the folders before the first date (the last COVARIANCE_RETURNS of them): the
    history the night reads from the warehouse, for the ex-ante tracking error."""
    from rebalance_core.tracking import COVARIANCE_RETURNS

    parts = []
    for folder in _date_folders(landing_dir, first, before=True)[-COVARIANCE_RETURNS:]:
        path = landing.find_file(folder, "prices")
        if path is not None:
            day = _folder_date(folder)
            parts.append(landing.read_file(path, landing.SPECS["prices"], day)[["security_id", "close_price"]]
                         .assign(as_of_date=pd.Timestamp(day)))
    return pd.concat(parts, ignore_index=True) if parts else None


def _model_history(landing_dir: Path, upto: dt.date) -> pd.DataFrame:
    """Every model_targets.csv of the folders up to ``upto``, each dated by its folder."""
    parts = []
    for folder in sorted(p for p in Path(landing_dir).iterdir() if p.is_dir() and p.name <= upto.isoformat()):
        path = landing.find_file(folder, "model_targets")
        day = _folder_date(folder)
        if path is not None and day is not None:
            parts.append(landing.read_file(path, landing.SPECS["model_targets"], day).assign(
                valid_from=pd.Timestamp(day)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _previous_state(landing_dir: Path, first: dt.date, model_history: pd.DataFrame) -> pd.DataFrame | None:
    """A fund state holding the targets in force on the trading day before ``first`` (from the
    folders up to it), as the nightly run compares them; None when no folder is that old."""
    from rebalance_core.fund_state import seed_state

    prev = previous_session(first)
    try:
        reference = _reference_before(landing_dir, prev)
    except (landing.StructuralError, FileNotFoundError):
        return None
    targets = reference.get("targets", pd.DataFrame(columns=["fund_id", "security_id", "target_weight"]))
    return seed_state(prev, night_targets(prev, reference["funds"], targets, model_history)[0])


def _folder_date(folder: Path) -> dt.date | None:
    try:
        return dt.date.fromisoformat(folder.name)
    except ValueError:
        return None


def _charts(result: SimulationResult, funds: set[str], out_dir: Path) -> None:
    if not funds:
        return   # --charts 0: matplotlib (about half a CPU second to import) is not needed
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rebalance_pipeline import formatting as fmt

    daily = result.daily[result.daily["fund_id"].isin(funds)]
    summary = result.summary.set_index("fund_id")
    for fund_id, rows in daily.groupby("fund_id"):
        s = summary.loc[fund_id]
        fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
        # Trading days side by side (no weekend gaps), labelled as days.
        days = [pd.Timestamp(d).date() for d in rows["as_of_date"]]
        x = list(range(len(days)))
        nav = (rows["nav"] / rows["nav"].iloc[0] * 100).to_numpy()
        ax.plot(x, nav, label="fund (policy, after costs)", marker="." if len(x) < 30 else None)
        ax.plot(x, (rows["target_nav"] / rows["target_nav"].iloc[0] * 100).to_numpy(), label="always on target",
                ls="--")
        rebalanced = rows["rebalanced"].to_numpy()
        ax.scatter([i for i, r in zip(x, rebalanced, strict=True) if r], nav[rebalanced], marker="o",
                   color="tab:red", zorder=3, label="rebalance")
        ticks = list(range(0, len(days), max(1, -(-len(days) // 8))))
        ax.set_xticks(ticks, [days[i].isoformat() for i in ticks])
        ax.set_xlim(-0.5, len(days) - 0.5)
        currency = s.get("base_currency") if isinstance(s.get("base_currency"), str) else None
        ax.set_title(f"{fund_id} ({s.get('policy') or '?'} policy), {days[0]} to {days[-1]} ({len(days)} trading days)"
                     f"\n{int(s['rebalances'])} rebalances, turnover {fmt.percent(s['turnover'])}, "
                     f"costs {fmt.money(s['est_cost'], currency)}, "
                     f"tracking difference {s['tracking_difference'] * 1e4:+.1f} bp", fontsize=9)
        ax.set_ylabel("value (start = 100)")
        ax.set_xlabel("trading day")
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(out_dir / f"{fund_id}.png")
        plt.close(fig)
