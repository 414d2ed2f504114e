"""`rebalance simulate`: replay a landing folder's history under each fund's policy.

Reads the dates' files (prices, fx rates and flows every day, reference files when they
change, the book at the first date), runs the nightly Great Expectations checks on each
day (so a fund the night would block is blocked in the replay too), hands them to
``rebalance_core.simulation`` (which calls the nightly decision) and writes the per-fund
summary (CSV) and one chart per fund (PNG, matplotlib): NAV against the always-on-target
fund, with the rebalance days marked. Nothing is written to the warehouse.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from rebalance_core.calendar import sessions_between
from rebalance_core.faults import blocked_funds
from rebalance_core.night import NightInputs
from rebalance_core.simulation import SimulationResult, simulate
from rebalance_pipeline import landing

REFERENCE = ("funds", "targets", "securities", "asset_classes")
DAILY = ("prices", "fx_rates", "flows")


def run_simulation(landing_dir: Path, start: dt.date, end: dt.date, out_dir: Path,
                   max_charts: int = 50, validate: bool = True) -> tuple[SimulationResult, Path]:
    dates = [d for d in sessions_between(start, end) if landing.date_folder(landing_dir, d).is_dir()]
    if not dates:
        raise landing.StructuralError(str(landing_dir), f"no date folders between {start} and {end}")
    first = dates[0]
    book, _ = landing.read_landing(landing_dir, first)
    initial = _reference_before(landing_dir, first)
    day_files: dict[dt.date, dict[str, pd.DataFrame]] = {}

    def load_day(as_of: dt.date) -> dict[str, pd.DataFrame]:
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
        for stem in REFERENCE:
            path = landing.find_file(folder, stem)
            if path is not None:
                frames[stem] = landing.read_file(path, landing.SPECS[stem], as_of)
        day_files.clear()
        day_files[as_of] = frames
        return frames

    def check_day(as_of: dt.date, inputs: NightInputs) -> pd.DataFrame:
        """The nightly checks on the day's files and the simulated book: the funds they block."""
        from rebalance_pipeline import validation

        files = day_files[as_of]
        frames = {"prices": files["prices"], "funds": inputs.funds, "targets": inputs.targets,
                  "positions": inputs.positions, "cash": inputs.cash}
        for stem, frame in (("fx_rates", inputs.fx_rates), ("flows", inputs.flows),
                            ("securities", inputs.securities)):
            if frame is not None and len(frame):
                frames[stem] = frame
        outcome = validation.validate(frames)
        return blocked_funds(outcome.faults, inputs.positions, inputs.targets)

    result = simulate(dates, load_day, book["positions"], book["cash"], book.get("tax_lots"),
                      check_day=check_day if validate else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    result.summary.to_csv(out_dir / "simulation_summary.csv", index=False)
    result.daily.to_csv(out_dir / "simulation_daily.csv", index=False)
    charted = result.summary.reindex(result.summary["tracking_difference"].abs().sort_values(
        ascending=False).index).head(max_charts)["fund_id"]
    _charts(result, set(charted), out_dir)
    return result, out_dir


def _reference_before(landing_dir: Path, first: dt.date) -> dict[str, pd.DataFrame]:
    """The latest version of each reference file on or before the first date."""
    found: dict[str, pd.DataFrame] = {}
    folders = sorted(p for p in Path(landing_dir).iterdir() if p.is_dir() and p.name <= first.isoformat())
    for folder in reversed(folders):
        for stem in REFERENCE:
            path = landing.find_file(folder, stem)
            if stem not in found and path is not None:
                found[stem] = landing.read_file(path, landing.SPECS[stem], first)
    for stem in ("funds", "targets"):
        if stem not in found:
            raise landing.StructuralError(f"{stem}.csv", f"no version on or before {first} in {landing_dir}")
    return found


def _charts(result: SimulationResult, funds: set[str], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    daily = result.daily[result.daily["fund_id"].isin(funds)]
    summary = result.summary.set_index("fund_id")
    for fund_id, rows in daily.groupby("fund_id"):
        s = summary.loc[fund_id]
        fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
        dates = pd.to_datetime(rows["as_of_date"])
        ax.plot(dates, rows["nav"] / rows["nav"].iloc[0] * 100, label="fund (policy, after costs)")
        ax.plot(dates, rows["target_nav"] / rows["target_nav"].iloc[0] * 100, label="always on target", ls="--")
        rebalanced = rows["rebalanced"].to_numpy()
        ax.scatter(dates[rebalanced], (rows["nav"] / rows["nav"].iloc[0] * 100)[rebalanced], marker="o",
                   color="tab:red", zorder=3, label="rebalance")
        ax.set_title(f"{fund_id}: {int(s['rebalances'])} rebalances, turnover {s['turnover']:.1%}, "
                     f"costs {s['est_cost']:,.0f}, tracking diff {s['tracking_difference'] * 1e4:+.1f} bp",
                     fontsize=9)
        ax.set_ylabel("value (start = 100)")
        ax.legend(fontsize=8)
        fig.autofmt_xdate()
        fig.tight_layout()
        fig.savefig(out_dir / f"{fund_id}.png")
        plt.close(fig)
