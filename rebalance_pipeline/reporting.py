"""The drift report: one self-contained HTML page per business date, for people and mail.

``build_drift_report(engine, as_of, out_dir)`` writes ``out_dir/drift_report_<as_of>.html``:

- headline numbers of the night: funds, NAV (per base currency: NAVs in different
  currencies are never added up), funds proposed / breached but waiting for their calendar
  date / in band / blocked, and the night's proposals still to review;
- the decisions on the night's own proposals, whenever taken (so a report of any date agrees
  with its status chart), and the night's proposals whose same trades were rejected before;
- the review work of the date: decisions *taken on* the business date (``decided_at`` in
  America/New_York; the night's own proposals are only reviewed the next morning) and over
  the trailing window of ``history_days`` business dates: approved, rejected, median and
  90th percentile hours from a proposal's publication to its decision, and the backlog
  (proposals of earlier dates still undecided at the end of the date);
- charts (matplotlib, Agg, no pyplot state), embedded as base64 PNGs: funds by drift (the
  20 largest max absolute drifts; each bar is the holding furthest out of its band, with
  that holding's band as a tick), the night's proposals by status, and the traded value
  and estimated cost of the last ``history_days`` business dates in the warehouse;
- tables: top drifting funds, blocked funds with their reason (and a link to the night's
  Great Expectations Data Docs, ``data-docs/<date>/index.html`` beside the page, when they
  were built there: ``rebalance_pipeline.data_docs``), failed validation checks.

It reads through the read model (``rebalance_pipeline.read_model.report``: the reporting
views of V005 and a few tables) and only formats and draws. Figures are formatted by ``formatting``, fund states
defined by ``fund_states``, as in the CLI and the review view. The page needs
nothing but itself: no scripts, no external URLs, a Content-Security-Policy that forbids
both, and every value rendered by Jinja2 with autoescaping (a fund id is data, never markup).

``resolve_report_dates`` is the business date rule of the ``rebalance_reporting`` DAG.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_core.schema import PROPOSAL_STATUSES
from rebalance_pipeline import formatting
from rebalance_pipeline.fund_states import FUND_STATES, STATE_LABELS
from rebalance_pipeline.read_model.report import DECISION_TIMEZONE, TOP_FUNDS, ReportData, load_report_data

# The report's Jinja template (HTML lives in its own file, not in this module).
TEMPLATE_DIR = Path(__file__).with_name("templates")

VIEWS_VERSION = 5  # sql/migrations/V005__reporting_views_roles.sql: the views read here
STATUS_COLOURS = {"pending_review": "#ff7f0e", "pending_second_approval": "#ffbb78", "approved": "#2ca02c",
                  "rejected": "#d62728", "superseded": "#bcbcbc"}
# A fund's state on the page: its status, with the in-band funds that breach told apart
# (rebalance_pipeline.fund_states: the same definition as the CLI's and the review view's).
STATE_COLOURS = {"proposed": "#d62728", "waiting": "#ff7f0e", "breached": "#bcbd22", "in_band": "#2ca02c",
                 "blocked": "#7f7f7f"}


def require_views(engine: Engine, migrate: bool = False) -> None:
    """Make sure the warehouse has the reporting views: migrate (needs the schema owner) or fail.

    Checks first, so an up-to-date warehouse is read with no DDL at all, as a
    ``rebalance_reader`` login can.
    """
    from rebalance_pipeline import warehouse

    version = warehouse.current_version(engine)
    if version >= VIEWS_VERSION:
        return
    if not migrate:
        raise RuntimeError(f"the warehouse is at schema version {version}; the report needs V{VIEWS_VERSION:03d}: "
                           "run `rebalance warehouse migrate` (or the nightly DAG)")
    warehouse.migrate(engine)


# ------------------------------------------------------------------ dates
def resolve_report_dates(engine: Engine, param: str | None, event_extras: Iterable[Mapping | None] = (),
                         logical_date: dt.datetime | None = None,
                         run_after: dt.datetime | None = None) -> list[dt.date]:
    """The business dates a reporting run reports on (one report each), decided once.

    1. the ``as_of_date`` param, when a person gave one: just that date;
    2. else every distinct ``as_of_date`` of the triggering asset events' extras (the
       nightly DAG's publish puts it there), sorted: a run that consumed several events
       (catch-up, a backfill of the nightly, events queued while ``max_active_runs=1``
       held the previous run) reports on each night, a night published twice only once;
    3. else the latest date in the warehouse on or before the run's logical date (or
       run_after), taken as ``rebalance_pipeline.dates`` takes the nightly's.
    """
    from rebalance_pipeline.dates import resolve_as_of_date
    from rebalance_pipeline.read_model.nights import latest_date

    if param:
        return [dt.date.fromisoformat(str(param))]
    published = {dt.date.fromisoformat(str(extra["as_of_date"])) for extra in event_extras
                 if extra and extra.get("as_of_date")}
    if published:
        return sorted(published)
    day = resolve_as_of_date(None, logical_date, run_after)
    latest = latest_date(engine, day)
    if latest is None:
        raise LookupError(f"no business date published on or before {day}")
    return [latest]


def harvest_totals(harvests: pd.DataFrame) -> list[dict]:
    """Harvested losses per night and currency (all proposals; approved ones apart)."""
    if harvests.empty:
        return []
    frame = harvests.assign(loss=_float(harvests["est_harvested_loss"]),
                            approved=_float(harvests["est_harvested_loss"]).where(harvests["status"] == "approved", 0.0))
    totals = frame.groupby(["as_of_date", "base_currency"], dropna=False).agg(
        funds=("fund_id", "nunique"), loss=("loss", "sum"), approved=("approved", "sum")).reset_index()
    return _records(totals.sort_values("as_of_date", ascending=False))


# ------------------------------------------------------------------ the page
def build_drift_report(engine: Engine, as_of: dt.date, out_dir: Path, history_days: int = 60) -> Path:
    """Write ``out_dir/drift_report_<as_of>.html`` (atomically) and return its path."""
    from rebalance_pipeline.data_docs import SITE_FOLDER, site_index

    data = load_report_data(engine, as_of, history_days)
    out_dir = Path(out_dir)
    # The night's GX Data Docs, when built into the same folder (the reporting DAG and
    # `rebalance run` build them first): linked from each blocked fund, relative to the page.
    docs = (f"{SITE_FOLDER}/{as_of.isoformat()}/index.html" if site_index(out_dir, as_of).is_file() else None)
    html = render_report(data, data_docs=docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"drift_report_{as_of.isoformat()}.html"
    temporary = out_dir / f".{path.name}.{os.getpid()}.tmp"
    try:
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _decision_numbers(row: pd.Series) -> dict:
    def hours(value):
        return None if _blank(value) else float(value)

    return {"decided": int(row["decided"]), "approved": int(row["approved"]), "rejected": int(row["rejected"]),
            "auto_approved": int(row["auto_approved"]),
            "median_hours": hours(row["median_hours"]), "p90_hours": hours(row["p90_hours"])}


def render_report(data: ReportData, data_docs: str | None = None) -> str:
    import jinja2

    funds = data.funds
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(formatting.jinja_filters(blank=""))
    env.filters.update(num=_num, pct=_pct, text=_text)
    states = funds["state"].value_counts()
    proposal_status = data.proposals["status"].value_counts()
    nav = (funds.assign(nav=_float(funds["nav"])).groupby("base_currency", dropna=False)["nav"].sum()
           .sort_values(ascending=False))
    backlog_oldest = data.backlog["oldest"]
    headline = {
        "funds": len(funds),
        "nav": [(_text(currency) or "?", value) for currency, value in nav.items()],
        # "breached, no proposal" is rare: a card only when it happens.
        "fund_state": {s: int(states.get(s, 0)) for s in FUND_STATES if s != "breached" or states.get(s, 0)},
        "proposal_status": {s: int(proposal_status.get(s, 0)) for s in PROPOSAL_STATUSES},
        "night": _decision_numbers(data.decisions.loc["night"]),
        "day": _decision_numbers(data.decisions.loc["day"]),
        "window": _decision_numbers(data.decisions.loc["window"]),
        "backlog": int(data.backlog["pending"]),
        "backlog_oldest": None if _blank(backlog_oldest) else pd.Timestamp(backlog_oldest).date().isoformat(),
    }
    top = funds.head(TOP_FUNDS)
    blocked = funds[funds["status"] == "blocked"].sort_values("fund_id")
    charts = {
        "drift": _chart_drift(top, data.bands),
        "proposals": _chart_proposals(headline["proposal_status"], data.as_of),
        "trend": _chart_trend(data.trend, data.history_days),
    }
    if len(data.tracking):
        charts["tracking"] = _chart_tracking(data.tracking)
    return env.get_template("drift_report.html").render(
        as_of=data.as_of.isoformat(), generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        headline=headline, charts=charts, top=_records(top), blocked=_records(blocked),
        failures=_records(data.failures), history_days=data.history_days, window_start=data.window_start.isoformat(),
        trend_dates=data.trend["as_of_date"].nunique(), state_labels=STATE_LABELS, state_colours=STATE_COLOURS,
        timezone=DECISION_TIMEZONE, top_funds=TOP_FUNDS, came_back=_came_back(data.came_back), data_docs=data_docs,
        tracking=_records(data.tracking),
        compliance=_records(data.compliance[data.compliance["proposal_id"].notna()] if len(data.compliance)
                            else data.compliance),
        compliance_exceptions=_records(data.compliance_exceptions),
        harvest_totals=harvest_totals(data.harvests), harvests=_records(data.harvests.head(TOP_FUNDS)),
        harvest_count=len(data.harvests))


def _came_back(frame: pd.DataFrame) -> list[dict]:
    from rebalance_pipeline.formatting import rejection_text

    return [{"proposal_id": r["proposal_id"], "text": rejection_text(r)} for r in frame.to_dict("records")]


# ------------------------------------------------------------------ charts
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(value, width: int = 32) -> str:
    """A chart label from data: shortened, and never read as mathtext ($...$)."""
    text = _text(value)
    text = text if len(text) <= width else text[: width - 1] + "…"
    return text.replace("$", r"\$")


def _no_data(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_axis_off()


def drift_bars(top: pd.DataFrame, bands: pd.DataFrame) -> pd.DataFrame:
    """What the drift chart draws per fund, in ``top``'s order (fractions of NAV): ``bar``,
    the |drift| of the holding furthest out of its band (``security_id``); ``band``, that
    same holding's band; ``max_drift``, the fund's max |drift| (another holding's where it
    is larger); ``state``. A fund with no per-holding rows gets its max drift as its bar."""
    rows = top[["fund_id", "state", "max_abs_drift"]].merge(
        bands[["fund_id", "security_id", "drift", "band"]], on="fund_id", how="left")
    max_drift = _float(rows["max_abs_drift"])
    return pd.DataFrame({"fund_id": rows["fund_id"], "security_id": rows["security_id"], "state": rows["state"],
                         "bar": _float(rows["drift"]).abs().fillna(max_drift), "band": _float(rows["band"]),
                         "max_drift": max_drift})


def _chart_drift(top: pd.DataFrame, bands: pd.DataFrame) -> str:
    """Top funds (largest max drift at the top). Bar: the drift of the fund's holding furthest
    out of its band; tick: that same holding's band, so a bar past its tick is a breach; a
    hollow diamond: the fund's max drift where another holding drifts more. Colour: the
    fund's state."""
    fig = _figure(8, max(2.5, 0.32 * len(top) + 1.2))
    ax = fig.add_subplot()
    if top.empty or _float(top["max_abs_drift"]).isna().all():
        _no_data(ax, "no fund with a drift on this date")
        return _png(fig)
    rows = drift_bars(top, bands).iloc[::-1]  # largest at the top
    drift = rows["bar"].fillna(0.0).to_numpy() * 100
    max_drift = rows["max_drift"].fillna(0.0).to_numpy() * 100
    y = np.arange(len(rows))
    ax.barh(y, drift, color=[STATE_COLOURS.get(s, "#1f77b4") for s in rows["state"]])
    labels = [_label(f, 24) + (f" · {_label(s, 12)}" if not _blank(s) else "")
              for f, s in zip(rows["fund_id"], rows["security_id"], strict=True)]
    ax.set_yticks(y, labels, fontsize=8)
    band_pct = _float(rows["band"]).to_numpy() * 100
    known = band_pct[~np.isnan(band_pct)]
    handles = []
    if len(known) and (known.max() - known.min()) < 1e-9:
        handles.append(ax.axvline(known[0], color="black", linestyle="--", linewidth=1,
                                  label=f"band ±{known[0]:.2f}% (the same for every bar)"))
    elif len(known):
        handles.append(ax.scatter(band_pct, y, marker="|", s=200, color="black", zorder=3,
                                  label="band of the holding in the bar"))
    other = max_drift - drift > 1e-9
    if other.any():
        handles.append(ax.scatter(max_drift[other], y[other], marker="D", s=22, facecolors="none",
                                  edgecolors="black", linewidths=0.8, zorder=3,
                                  label="max drift (of another holding)"))
    from matplotlib.patches import Patch

    present = set(rows["state"])
    handles += [Patch(color=STATE_COLOURS[s], label=STATE_LABELS[s]) for s in FUND_STATES if s in present]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlabel("drift of the holding furthest out of its band (percentage points of NAV)")
    ax.set_title(f"Funds by drift (top {len(rows)} by max drift)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(left=0)
    return _png(fig)


def _chart_proposals(counts: Mapping[str, int], as_of: dt.date) -> str:
    fig = _figure(6, 2.8)
    ax = fig.add_subplot()
    labels = list(counts)
    values = [counts[s] for s in labels]
    bars = ax.bar([formatting.status_label(s).replace("awaiting ", "") for s in labels], values,
                  color=[STATUS_COLOURS[s] for s in labels])
    ax.bar_label(bars, fontsize=8)
    ax.set_ylabel("proposals")
    ax.set_title(f"Proposals of {as_of.isoformat()} by status", fontsize=10)
    ax.set_ylim(0, max([*values, 1]) * 1.15)
    return _png(fig)


def _chart_trend(trend: pd.DataFrame, history_days: int) -> str:
    fig = _figure(8, 4.2)
    top, bottom = fig.subplots(2, 1, sharex=True)
    if trend.empty:
        _no_data(top, "no history")
        bottom.set_axis_off()
        return _png(fig)
    # Business dates side by side (no gaps for weekends and holidays), as ops reads a trend.
    dates = sorted(pd.to_datetime(trend["as_of_date"]).dt.date.unique())
    position = {d: i for i, d in enumerate(dates)}
    frame = trend.assign(x=pd.to_datetime(trend["as_of_date"]).dt.date.map(position),
                         turnover_value=_float(trend["turnover_value"]), est_cost=_float(trend["est_cost"]))
    for currency, rows in frame.groupby(frame["base_currency"].fillna("?")):
        label = _label(currency, 8)
        top.plot(rows["x"], rows["turnover_value"], marker="o", markersize=3, label=label)
        bottom.plot(rows["x"], rows["est_cost"], marker="o", markersize=3, label=label)
    ticks = list(range(0, len(dates), max(1, -(-len(dates) // 10))))
    bottom.set_xticks(ticks, [dates[i].isoformat() for i in ticks])
    bottom.set_xlim(-0.5, len(dates) - 0.5)
    top.set_ylabel("traded value\n(one-way, base ccy)", fontsize=8)
    bottom.set_ylabel("estimated cost\n(base ccy)", fontsize=8)
    from matplotlib.ticker import FuncFormatter

    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _money(value)))
        ax.legend(fontsize=7, title="base currency", title_fontsize=7)
    top.set_title(f"Traded value and estimated cost per business date (last {history_days} in the warehouse)",
                  fontsize=10)
    fig.autofmt_xdate()
    return _png(fig)


def _chart_tracking(tracking: pd.DataFrame) -> str:
    """Tonight's tracking difference per fund (the 20 largest, by size), with its 20-day
    tracking error as a tick on each side where known."""
    rows = tracking.assign(td=_float(tracking["tracking_difference"]), te=_float(tracking["tracking_error_20d"]))
    rows = rows[rows["td"].notna()]
    fig = _figure(8, max(2.2, 0.32 * min(len(rows), TOP_FUNDS) + 1.2))
    ax = fig.add_subplot()
    if rows.empty:
        _no_data(ax, "no tracking difference yet (NAV per share and index level on two nights)")
        return _png(fig)
    rows = rows.reindex(rows["td"].abs().sort_values(ascending=False).index).head(TOP_FUNDS).iloc[::-1]
    y = np.arange(len(rows))
    td = rows["td"].to_numpy() * 1e4
    ax.barh(y, td, color=np.where(td < 0, "#d62728", "#2ca02c"))
    ax.set_yticks(y, [_label(f, 24) for f in rows["fund_id"]], fontsize=8)
    te = rows["te"].to_numpy() * 1e4 / np.sqrt(252)   # the daily spread the 20-day figure annualizes
    known = ~np.isnan(te)
    if known.any():
        ax.scatter(np.concatenate([te[known], -te[known]]), np.concatenate([y[known], y[known]]), marker="|", s=160,
                   color="black", label="± daily sd of the last 20 differences (TE 20d / √252)")
        ax.legend(fontsize=8, loc="lower right")
    ax.axvline(0, color="#555", linewidth=0.8)
    ax.set_xlabel("tracking difference tonight: fund return - index return (basis points)")
    ax.set_title(f"Tracking difference per fund ({len(rows)} largest)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _money(value: float) -> str:
    """An axis amount, short: 12.5M, 830k, 950."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.3g}{suffix}"
    return f"{value:,.0f}"


# ------------------------------------------------------------------ formatting
def _float(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype(float)


_blank = formatting.is_blank   # one definition of "no value" (rebalance_pipeline.formatting)


def _text(value) -> str:
    return "" if _blank(value) else str(value)


def _num(value, digits: int = 0) -> str:
    """Counts and headline totals: whole numbers unless asked (rebalance_pipeline.formatting)."""
    return formatting.number(value, digits) if isinstance(value, numbers.Number) else _text(value)


def _pct(value, digits: int = 2) -> str:
    return formatting.percent(value, digits) if isinstance(value, numbers.Number) else _text(value)


_records = formatting.records

