"""The drift report: one self-contained HTML page per business date, for people and mail.

``build_drift_report(engine, as_of, out_dir)`` writes ``out_dir/drift_report_<as_of>.html``:

- headline numbers: funds, NAV (per base currency: NAVs in different currencies are never
  added up), funds proposed / in band / blocked, proposals pending / approved / rejected and
  the day's approval latency;
- charts (matplotlib, Agg, no pyplot state), embedded as base64 PNGs: funds by drift (the
  20 largest max absolute drifts, with the band of the holding that drifts most), proposals
  by status, and the turnover and estimated cost of the last ``history_days`` business
  dates in the warehouse;
- tables: top drifting funds, blocked funds with their reason, failed validation checks.

It reads through the reporting views of V005 (``fund_drift_history``, ``proposal_history``,
``approval_latency_daily``); only the per-holding bands (``fund_drift``) and the checks
(``validation_result``) come from tables, which no view summarises. The page needs nothing
but itself: no scripts, no external URLs, a Content-Security-Policy that forbids both, and
every value rendered by Jinja2 with autoescaping (a fund id is data, never markup).

``resolve_report_date`` is the business date rule of the ``rebalance_reporting`` DAG.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_pipeline.warehouse import read_frame

VIEWS_VERSION = 5  # sql/migrations/V005__reporting_views_roles.sql: the views read here
TOP_FUNDS = 20
FUND_STATUSES = ("proposed", "in_band", "blocked")
PROPOSAL_STATUSES = ("pending_review", "approved", "rejected", "superseded")
STATUS_COLOURS = {"proposed": "#d62728", "in_band": "#2ca02c", "blocked": "#7f7f7f",
                  "pending_review": "#ff7f0e", "approved": "#2ca02c", "rejected": "#d62728",
                  "superseded": "#bcbcbc"}


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
def latest_date_on_or_before(engine: Engine, day: dt.date | None = None) -> dt.date | None:
    """The latest business date published in the warehouse, on or before ``day`` if given."""
    with engine.connect() as conn:
        frame = read_frame(conn, "SELECT max(as_of_date) AS d FROM rebalance.fund_summary "
                                 "WHERE CAST(:day AS date) IS NULL OR as_of_date <= :day", {"day": day})
    value = frame["d"].iloc[0] if len(frame) else None
    return None if value is None or pd.isna(value) else value


def resolve_report_date(engine: Engine, param: str | None, event_extras: Iterable[Mapping] = (),
                        logical_date: dt.datetime | None = None, run_after: dt.datetime | None = None) -> dt.date:
    """The business date a reporting run reports on, decided once.

    1. the ``as_of_date`` param, when a person gave one;
    2. else the ``as_of_date`` of the triggering asset events' extra (the nightly DAG's
       publish puts it there), the last event that carries one (events oldest first);
    3. else the latest date in the warehouse on or before the run's logical date (or
       run_after), taken as ``rebalance_pipeline.dates`` takes the nightly's.
    """
    from rebalance_pipeline.dates import resolve_as_of_date

    if param:
        return dt.date.fromisoformat(str(param))
    published = [extra.get("as_of_date") for extra in event_extras if extra and extra.get("as_of_date")]
    if published:
        return dt.date.fromisoformat(str(published[-1]))
    day = resolve_as_of_date(None, logical_date, run_after)
    latest = latest_date_on_or_before(engine, day)
    if latest is None:
        raise LookupError(f"no business date published on or before {day}")
    return latest


# ------------------------------------------------------------------ data
@dataclass
class ReportData:
    as_of: dt.date
    funds: pd.DataFrame            # fund_drift_history rows of the date
    proposals: pd.DataFrame        # proposal_history rows of the date
    latency: pd.DataFrame          # approval_latency_daily row of the date (0 or 1 row)
    bands: pd.DataFrame            # fund_id, security_id, drift, band: the largest drift of each top fund
    trend: pd.DataFrame            # as_of_date, base_currency, turnover_value, est_cost, proposals
    failures: pd.DataFrame         # failed validation checks of the date
    history_days: int


def load_report_data(engine: Engine, as_of: dt.date, history_days: int = 60) -> ReportData:
    from rebalance_pipeline.reports import validation_failures

    if history_days < 1:
        raise ValueError("history_days must be at least 1")

    with engine.connect() as conn:
        funds = read_frame(conn, "SELECT * FROM rebalance.fund_drift_history WHERE as_of_date = :d "
                                 "ORDER BY max_abs_drift DESC NULLS LAST, fund_id", {"d": as_of})
        if funds.empty:
            raise LookupError(f"nothing published for {as_of}")
        proposals = read_frame(conn, "SELECT * FROM rebalance.proposal_history WHERE as_of_date = :d "
                                     "ORDER BY proposal_id", {"d": as_of})
        latency = read_frame(conn, "SELECT * FROM rebalance.approval_latency_daily WHERE as_of_date = :d",
                             {"d": as_of})
        top_ids = [str(f) for f in funds["fund_id"].head(TOP_FUNDS)]
        # The band a fund's largest drift was judged against (half-width on the side it drifted to).
        bands = read_frame(conn,
                           "SELECT DISTINCT ON (fund_id) fund_id, security_id, drift, "
                           " CASE WHEN drift >= 0 THEN band_upper - target_weight "
                           "      ELSE target_weight - band_lower END AS band "
                           "FROM rebalance.fund_drift WHERE as_of_date = :d AND fund_id = ANY(:ids) "
                           " AND security_id <> 'CASH' "
                           "ORDER BY fund_id, abs(drift) DESC NULLS LAST, security_id",
                           {"d": as_of, "ids": top_ids})
        # The night's own proposal per fund (fund_drift_history.proposal_id): a rerun's extra
        # proposals beside a reviewed one are not counted twice.
        trend = read_frame(conn,
                           "WITH dates AS (SELECT DISTINCT as_of_date FROM rebalance.fund_summary "
                           "               WHERE as_of_date <= :d ORDER BY as_of_date DESC LIMIT :n) "
                           "SELECT h.as_of_date, h.base_currency, "
                           " coalesce(sum(h.turnover * h.nav), 0) AS turnover_value, "
                           " coalesce(sum(h.est_cost), 0) AS est_cost, count(h.proposal_id) AS proposals "
                           "FROM rebalance.fund_drift_history h JOIN dates USING (as_of_date) "
                           "GROUP BY h.as_of_date, h.base_currency ORDER BY h.as_of_date, h.base_currency",
                           {"d": as_of, "n": history_days})
    return ReportData(as_of=as_of, funds=funds, proposals=proposals, latency=latency, bands=bands, trend=trend,
                      failures=validation_failures(engine, as_of), history_days=history_days)


# ------------------------------------------------------------------ the page
def build_drift_report(engine: Engine, as_of: dt.date, out_dir: Path, history_days: int = 60) -> Path:
    """Write ``out_dir/drift_report_<as_of>.html`` (atomically) and return its path."""
    data = load_report_data(engine, as_of, history_days)
    html = render_report(data)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"drift_report_{as_of.isoformat()}.html"
    temporary = out_dir / f".{path.name}.{os.getpid()}.tmp"
    try:
        temporary.write_text(html, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def render_report(data: ReportData) -> str:
    import jinja2

    funds = data.funds
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=_num, pct=_pct, text=_text)
    status = funds["status"].value_counts()
    proposal_status = data.proposals["status"].value_counts()
    nav = (funds.assign(nav=_float(funds["nav"])).groupby("base_currency", dropna=False)["nav"].sum()
           .sort_values(ascending=False))
    latency = data.latency.iloc[0] if len(data.latency) else None
    headline = {
        "funds": len(funds),
        "nav": [(_text(currency) or "?", value) for currency, value in nav.items()],
        "fund_status": {s: int(status.get(s, 0)) for s in FUND_STATUSES},
        "proposal_status": {s: int(proposal_status.get(s, 0)) for s in PROPOSAL_STATUSES},
        "decided": int(latency["decided"]) if latency is not None else 0,
        "median_hours": float(latency["median_hours"]) if latency is not None else None,
    }
    top = funds.head(TOP_FUNDS)
    blocked = funds[funds["status"] == "blocked"].sort_values("fund_id")
    charts = {
        "drift": _chart_drift(top, data.bands),
        "proposals": _chart_proposals(headline["proposal_status"]),
        "trend": _chart_trend(data.trend, data.history_days),
    }
    return env.from_string(TEMPLATE).render(
        as_of=data.as_of.isoformat(), generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        headline=headline, charts=charts, top=_records(top), blocked=_records(blocked),
        failures=_records(data.failures), history_days=data.history_days,
        trend_dates=data.trend["as_of_date"].nunique())


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


def _chart_drift(top: pd.DataFrame, bands: pd.DataFrame) -> str:
    fig = _figure(8, max(2.5, 0.32 * len(top) + 1.2))
    ax = fig.add_subplot()
    if top.empty or _float(top["max_abs_drift"]).isna().all():
        _no_data(ax, "no fund with a drift on this date")
        return _png(fig)
    rows = top.iloc[::-1]  # largest at the top
    drift = _float(rows["max_abs_drift"]).fillna(0.0).to_numpy() * 100
    y = range(len(rows))
    ax.barh(list(y), drift, color=[STATUS_COLOURS.get(s, "#1f77b4") for s in rows["status"]])
    ax.set_yticks(list(y), [_label(f) for f in rows["fund_id"]], fontsize=8)
    band = rows[["fund_id"]].merge(bands, on="fund_id", how="left")
    band_pct = _float(band["band"]).to_numpy() * 100
    known = band_pct[~pd.isna(band_pct)]
    if len(known) and (known.max() - known.min()) < 1e-9:
        ax.axvline(known[0], color="black", linestyle="--", linewidth=1, label=f"band ±{known[0]:.2f} %")
    elif len(known):
        ax.scatter(band_pct, list(y), marker="|", s=200, color="black", zorder=3,
                   label="band of the holding that drifts most")
    from matplotlib.patches import Patch

    handles = [Patch(color=STATUS_COLOURS[s], label=s.replace("_", " ")) for s in FUND_STATUSES
               if s in set(rows["status"])]
    ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=8, loc="lower right")
    ax.set_xlabel("max absolute drift of a holding (percentage points)")
    ax.set_title(f"Funds by drift (top {len(rows)})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _chart_proposals(counts: Mapping[str, int]) -> str:
    fig = _figure(6, 2.8)
    ax = fig.add_subplot()
    labels = list(counts)
    values = [counts[s] for s in labels]
    bars = ax.bar([s.replace("_", " ") for s in labels], values, color=[STATUS_COLOURS[s] for s in labels])
    ax.bar_label(bars, fontsize=8)
    ax.set_ylabel("proposals")
    ax.set_title("Proposals by status", fontsize=10)
    ax.set_ylim(0, max(values + [1]) * 1.15)
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
    top.set_ylabel("turnover\n(Σ turnover × NAV)", fontsize=8)
    bottom.set_ylabel("estimated cost", fontsize=8)
    from matplotlib.ticker import FuncFormatter

    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        ax.legend(fontsize=7, title="base currency", title_fontsize=7)
    top.set_title(f"Turnover and estimated cost per business date (last {history_days} in the warehouse)",
                  fontsize=10)
    fig.autofmt_xdate()
    return _png(fig)


# ------------------------------------------------------------------ formatting
def _float(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype(float)


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA or value is pd.NaT


def _text(value) -> str:
    return "" if _blank(value) else str(value)


def _num(value, digits: int = 0) -> str:
    if _blank(value):
        return ""
    return f"{float(value):,.{digits}f}" if isinstance(value, numbers.Number) else str(value)


def _pct(value, digits: int = 2) -> str:
    if _blank(value):
        return ""
    return f"{float(value) * 100:.{digits}f} %" if isinstance(value, numbers.Number) else str(value)


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if _blank(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Rebalance drift report {{ as_of }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 9em; }
.card .n { font-size: 1.5em; font-weight: 600; }
.card .l { color: #555; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.85em; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.empty { color: #666; font-style: italic; }
</style>
</head>
<body>
<h1>Rebalance drift report: {{ as_of }}</h1>
<p class="sub">Generated {{ generated }} from the warehouse (schema rebalance).</p>

<h2>Headline</h2>
<div class="cards">
  <div class="card"><div class="n" id="funds">{{ headline.funds | num }}</div><div class="l">funds</div></div>
  {% for currency, value in headline.nav %}
  <div class="card"><div class="n">{{ value | num }}</div><div class="l">NAV {{ currency }}</div></div>
  {% endfor %}
  {% for status, n in headline.fund_status.items() %}
  <div class="card"><div class="n" id="funds-{{ status }}">{{ n | num }}</div>
    <div class="l">{{ status | replace("_", " ") }}</div></div>
  {% endfor %}
  {% for status in ("pending_review", "approved", "rejected") %}
  <div class="card"><div class="n" id="proposals-{{ status }}">{{ headline.proposal_status[status] | num }}</div>
    <div class="l">proposals {{ status | replace("_", " ") }}</div></div>
  {% endfor %}
  <div class="card"><div class="n">{{ headline.median_hours | num(1) if headline.median_hours is not none else "–" }}</div>
    <div class="l">median hours to decision ({{ headline.decided }} decided)</div></div>
</div>

<h2>Charts</h2>
<div class="charts">
  <figure><img alt="Funds by drift" src="data:image/png;base64,{{ charts.drift }}"></figure>
  <figure><img alt="Proposals by status" src="data:image/png;base64,{{ charts.proposals }}"></figure>
  <figure><img alt="Turnover and cost trend" src="data:image/png;base64,{{ charts.trend }}">
    <figcaption class="sub">{{ trend_dates }} business date(s); turnover is one-way (half the traded notional),
      in each fund's base currency.</figcaption></figure>
</div>

<h2>Top drifting funds</h2>
{% if top %}
<table>
<thead><tr><th>fund</th><th>name</th><th>policy</th><th class="r">NAV</th><th>ccy</th><th class="r">max drift</th>
<th class="r">breaches</th><th>status</th><th>trigger</th><th>proposal</th><th>proposal status</th>
<th class="r">turnover</th><th class="r">est. cost</th></tr></thead>
<tbody>
{% for f in top %}
<tr><td>{{ f.fund_id }}</td><td>{{ f.name | text }}</td><td>{{ f.policy | text }}</td><td class="r">{{ f.nav | num }}</td>
<td>{{ f.base_currency | text }}</td><td class="r">{{ f.max_abs_drift | pct }}</td><td class="r">{{ f.breach_count | num }}</td>
<td>{{ f.status }}</td><td>{{ f.trigger | text }}</td><td>{{ f.proposal_id | text }}</td><td>{{ f.proposal_status | text }}</td>
<td class="r">{{ f.turnover | pct }}</td><td class="r">{{ f.est_cost | num(2) }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">No funds.</p>{% endif %}

<h2>Blocked funds</h2>
{% if blocked %}
<table>
<thead><tr><th>fund</th><th>name</th><th>reason</th></tr></thead>
<tbody>
{% for f in blocked %}
<tr><td>{{ f.fund_id }}</td><td>{{ f.name | text }}</td><td>{{ f.blocked_reason | text }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">No fund was blocked.</p>{% endif %}

<h2>Failed validation checks</h2>
{% if failures %}
<table>
<thead><tr><th>dataset</th><th>check</th><th class="r">failed rows</th><th>detail</th></tr></thead>
<tbody>
{% for c in failures %}
<tr><td>{{ c.dataset }}</td><td>{{ c.check }}</td><td class="r">{{ c.failed_rows | num }}</td><td>{{ c.detail | text }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p class="empty">Every check passed.</p>{% endif %}
</body>
</html>
"""
