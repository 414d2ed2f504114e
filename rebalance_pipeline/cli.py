"""The ``rebalance`` command: the nightly run, reviews and reports without the scheduler.

Built on Typer (type-hinted commands, generated --help) with Rich tables for output. Tables
fit the terminal: lower-priority columns are left out on a narrow one, ids are never wrapped
or cut. Every figure is formatted by ``rebalance_pipeline.formatting`` (as in the review view
and the HTML report).

Exit codes:
  0  done;
  1  refused or not found: a decision that cannot be taken, an unknown proposal, a date with
     no published night, an export that refused a proposal (listed; the others went out);
  2  usage error: an unknown option or choice, a malformed date (the message says which);
  3  the night cannot run: a structural fault in the landing folder (the message names file,
     row and column), a missing landing root or date folder, a date that is not a trading
     day on the funds' calendars, no warehouse configured where Airflow runs a distributed
     executor, no migration in the installed package.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rebalance_pipeline import formatting as fmt

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3

# Typer's help shows a value type after every option, "<bool>" for flags (--help, --quiet)
# too, and a required argument as {PROPOSAL_ID} in the usage line. Our command and group
# classes (Typer's documented ``cls`` extension point) show a flag with no value type (it
# takes none) and an argument as every usage line spells it: PROPOSAL_ID, [OPTIONAL].
class _NoTypeAfterFlags:
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""   # the help's type column shows the metavar where there is one
        return params


class _Command(_NoTypeAfterFlags, typer.core.TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar if param.metavar is not None else param.name
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class _Group(_NoTypeAfterFlags, typer.core.TyperGroup):
    pass


class _Typer(typer.Typer):
    """``typer.Typer`` whose commands and groups are the classes above."""

    def __init__(self, **kwargs):
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


# Markdown help: paragraphs are re-wrapped to the terminal, `code` stands out.
app = _Typer(help="Rebalance: nightly drift and rebalancing proposals for funds.", no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode="markdown",
                  epilog="Exit codes: 0 done; 1 refused or not found (a decision, a proposal, a night); "
                         "2 usage error; 3 the night cannot run.")
warehouse_app = _Typer(help="The warehouse: migrations and the embedded server.", no_args_is_help=True,
                            rich_markup_mode="markdown")
app.add_typer(warehouse_app, name="warehouse")
console = Console()
err = Console(stderr=True, soft_wrap=True)

DATE_FORMATS = ["%Y-%m-%d"]
DateOption = Annotated[dt.datetime, typer.Option("--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                 help="business date")]
ProposalId = Annotated[str, typer.Argument(metavar="PROPOSAL_ID",
                                           help="e.g. FUND00010-20140106-036adb72683f (rebalance proposals)")]


class ProposalStatus(enum.StrEnum):
    pending_review = "pending_review"
    pending_second_approval = "pending_second_approval"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"


def _engine(migrate: bool = True):
    from rebalance_pipeline import settings, warehouse

    try:
        engine = warehouse.get_engine()
    except settings.WarehouseNotConfigured as exc:   # a Celery/Kubernetes worker without a warehouse URL
        err.print(f"[bold red]no warehouse:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    if migrate:
        try:
            warehouse.migrate(engine)
        except warehouse.MigrationsNotFound as exc:   # an install without its SQL
            err.print(f"[bold red]cannot migrate:[/bold red] {escape(str(exc))}")
            raise typer.Exit(EXIT_CANNOT_RUN) from None
    return engine


@app.command()
def run(
    date: DateOption,
    landing: Annotated[Path, typer.Option(help="landing folder (holds one sub-folder per date)")],
    run_id: Annotated[str | None, typer.Option(help="id of this run (default: generated)")] = None,
    quiet: Annotated[bool, typer.Option(help="print only the one-line result")] = False,
    shards: Annotated[int | None, typer.Option(
        min=1, help="split the funds into this many shards (default: $REBALANCE_SHARDS, else by the night's size)")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="processes that run shards at once (default: one per core)")] = None,
) -> None:
    """The whole nightly run for one date: ingest, validate, drift, proposals, write.

    Exits 3 when the night cannot run (nothing is written): a structural fault in the
    landing folder, a missing folder, a date that is not a trading day.
    """
    from rebalance_pipeline import steps
    from rebalance_pipeline.landing import StructuralError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    as_of = date.date()
    engine = _engine()
    _check_runnable(engine, landing, as_of)
    pending_before = _pending_ids(engine, as_of)
    published: list[str] = []

    def progress(step: str, result) -> None:
        line = _step_text(engine, step, result, pending_before)
        if step == "publish":
            published.append(line)
        if not quiet:
            err.print(f"[dim]{step:>9}[/dim] {line}")

    try:
        report = steps.run_nightly(as_of, landing, engine, run_id=run_id, on_step=progress, shards=shards,
                                   workers=workers)
    except StructuralError as exc:
        err.print(f"[bold red]run for {as_of} failed, nothing written:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    console.print(f"{as_of}: {report.funds} funds, {report.proposed} proposed, {report.blocked} blocked, "
                  f"{report.trades} trades; {published[-1] if published else ''} (run {report.run_id})",
                  soft_wrap=True)
    _night_data_docs(engine, as_of, quiet)
    if not quiet:
        _print_report(engine, as_of)


def _night_data_docs(engine, as_of: dt.date, quiet: bool) -> None:
    """The night's GX Data Docs under the reports folder. The night is published whatever
    happens here: a failure is reported, and `rebalance data-docs` builds them again."""
    from rebalance_pipeline import data_docs, settings

    try:
        index = data_docs.build_data_docs(engine, as_of, settings.reports_dir())
    except Exception as exc:  # a report: never undoes or fails a published night
        err.print(f"[bold yellow]Data Docs of {as_of} not built:[/bold yellow] {escape(str(exc))} "
                  f"(rebalance data-docs --date {as_of})")
        return
    if not quiet:
        err.print(f"[dim]data docs[/dim] {index}")


def _check_runnable(engine, landing: Path, as_of: dt.date) -> None:
    """Say why a night cannot start before trying: no landing root, not a trading day."""
    from rebalance_core.calendar import DEFAULT_CALENDAR, is_trading_day, sessions_between

    def cannot(message: str) -> None:
        err.print(f"[bold red]run for {as_of} cannot start, nothing written:[/bold red] {escape(message)}")
        raise typer.Exit(EXIT_CANNOT_RUN)

    if not landing.is_dir():
        cannot(f"the landing root {landing} does not exist" if not landing.exists()
               else f"the landing root {landing} is not a folder")
    if (landing / as_of.isoformat()).is_dir():
        return
    calendars = _fund_calendars(engine) or [DEFAULT_CALENDAR]
    if not any(is_trading_day(as_of, c) for c in calendars):
        before = sessions_between(as_of - dt.timedelta(days=10), as_of, calendars[0])
        after = sessions_between(as_of, as_of + dt.timedelta(days=10), calendars[0])
        cannot(f"{as_of} ({as_of:%A}) is not a trading day on the funds' calendars ({', '.join(calendars)}); "
               f"the trading days around it are {before[-1] if before else '?'} and {after[0] if after else '?'}")
    dates = sorted(p.name for p in landing.iterdir() if p.is_dir() and _is_iso_date(p.name))
    cannot(f"no folder {landing / as_of.isoformat()} in the landing root"
           + (f" (its dates run from {dates[0]} to {dates[-1]})" if dates else " (it holds no date folders)"))


def _is_iso_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _fund_calendars(engine) -> list[str]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT DISTINCT coalesce(nullif(calendar, ''), 'XNYS') FROM rebalance.fund_ref "
                                    "ORDER BY 1")).scalars().all()
    return list(rows)


def _pending_ids(engine, as_of: dt.date) -> set[str]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE as_of_date = :d "
                                        "AND status = 'pending_review'"), {"d": as_of}).scalars())


def _step_text(engine, step: str, result, pending_before: set[str]) -> str:
    """A step's result in words (the steps return counts for machines)."""
    if step == "publish":
        return _publish_text(engine, result, pending_before)
    if hasattr(result, "describe"):
        result = result.describe()
    if not isinstance(result, dict):
        return str(result)
    n = {k: fmt.count(v) if isinstance(v, (int, float)) else str(v) for k, v in result.items()}
    if step == "ingest" and "shards" in result:
        return (f"{n.get('funds', '?')} funds, {n.get('positions', '?')} positions, "
                f"{_n(int(result['shards']), 'shard')}")
    if step == "shards":
        return (f"{_n(int(result.get('shards', 0)), 'shard')} done: {n.get('funds', '?')} funds, "
                f"{n.get('proposed', '?')} proposed, {n.get('blocked', '?')} blocked, {n.get('trades', '?')} trades, "
                f"{n.get('failed_checks', '?')} failed checks")
    if step == "ingest":
        return "read " + ", ".join(f"{stem}.csv {rows} rows" for stem, rows in n.items())
    if step == "validate":
        return (f"{n.get('checks', '?')} checks, {n.get('failed_checks', '?')} failed, "
                f"{n.get('blocked_funds', '?')} funds blocked")
    if step == "drift":
        return (f"{n.get('funds', '?')} funds, {n.get('rows', '?')} holdings (and cash rows), "
                f"{n.get('breached_funds', '?')} funds with a breach")
    if step == "propose":
        return f"{n.get('proposals', '?')} proposals, {n.get('trades', '?')} trades"
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in n.items())


def _publish_text(engine, report, pending_before: set[str]) -> str:
    """What publishing did to the proposals, told apart: new, found again unchanged (a rerun
    re-publishes a pending proposal with the same trades under the same id), kept as reviewed."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        written = set(conn.execute(sa.text("SELECT proposal_id FROM rebalance.proposal WHERE run_id = :r"),
                                   {"r": report.run_id}).scalars())
    unchanged = len(written & pending_before)
    fresh = len(written - pending_before)
    dropped = len(pending_before - written)
    parts = [_n(fresh, "new proposal")] if fresh or not (unchanged or report.kept_existing) else []
    if unchanged:
        parts.append(f"{_n(unchanged, 'proposal')} re-published unchanged")
    if dropped:
        parts.append(f"{dropped} pending {'one' if dropped == 1 else 'ones'} of this date replaced")
    if getattr(report, "auto_approved", 0):
        parts.append(f"{report.auto_approved:,} auto-approved by rule")
    if report.kept_existing:
        parts.append(f"{report.kept_existing} already reviewed, kept as decided")
    if report.superseded:
        parts.append(f"{_n(report.superseded, 'pending proposal')} of earlier nights superseded")
    return ", ".join(parts)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _decide(proposal_id: str, decision: str, by: str, note: str | None) -> None:
    from rebalance_pipeline.warehouse import ReviewError, decide

    try:
        state = decide(_engine(), proposal_id, decision, by, note)   # the view's decision function too
    except ReviewError as exc:
        err.print(f"[bold red]not {decision}:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    where = f"{state['proposal_id']} ({state['fund_id']}, {state['as_of_date']})"
    if state["status"] == "pending_second_approval":
        console.print(f"{where} first approval by {state['first_approved_by']} at "
                      f"{fmt.timestamp(state['first_approved_at'])}: its gross notional "
                      f"{fmt.money(state.get('gross_notional'), state.get('base_currency'))} is above the fund's second-approval notional "
                      f"{fmt.money(state.get('second_approval_notional'), state.get('base_currency'))}, so someone else must approve it too "
                      "(status pending_second_approval)", soft_wrap=True, markup=False, highlight=False)
        return
    console.print(f"{where} {state['status']} by {state['reviewed_by']} at {fmt.timestamp(state['reviewed_at'])}"
                  + (f" (first approval by {state['first_approved_by']})" if state.get("first_approved_by") else ""),
                  soft_wrap=True, markup=False, highlight=False)


By = Annotated[str, typer.Option("--by", help="who decides (kept in the audit trail)")]
Note = Annotated[str | None, typer.Option(help="why (kept in the audit trail)")]


@app.command()
def approve(proposal_id: ProposalId, by: By, note: Note = None) -> None:
    """Approve a pending proposal (kept with who and when). Above its fund's second_approval_notional
    this is the first of two approvals, and the second must come from someone else. Exits 1 when
    it cannot be approved."""
    _decide(proposal_id, "approved", by, note)


@app.command()
def reject(proposal_id: ProposalId, by: By, note: Note = None) -> None:
    """Reject a pending proposal (kept with who and when). Exits 1 when it cannot be rejected."""
    _decide(proposal_id, "rejected", by, note)


@app.command()
def executed(proposal_id: ProposalId, by: By, note: Note = None,
             cancelled: Annotated[bool, typer.Option("--cancelled", help="its orders were cancelled, not filled")]
             = False) -> None:
    """Say an approved proposal's orders were all executed (or, with --cancelled, all
    cancelled), when the order desk's executions.csv will not: kept with who and when, read
    by the next night, which then stops holding the fund back. Exits 1 when the proposal is
    not approved."""
    from rebalance_pipeline.executions import record_operator_word
    from rebalance_pipeline.warehouse import ReviewError

    try:
        done = record_operator_word(_engine(), proposal_id, by, note, cancelled=cancelled)
    except ReviewError as exc:
        err.print(f"[bold red]not recorded:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(f"{done['proposal_id']} ({done['fund_id']}, {done['as_of_date']}): {_n(done['orders'], 'order')} "
                  f"{done['status']} by {done['recorded_by']} at {fmt.timestamp(done['recorded_at'])}; the night after "
                  f"{done['night']} reads it", soft_wrap=True, markup=False, highlight=False)


OptionalDate = Annotated[dt.datetime | None, typer.Option(
    "--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD", help="business date (default: the latest night)")]


@app.command()
def report(
    date: OptionalDate = None,
    all_rows: Annotated[bool, typer.Option("--all", help="list every proposed and blocked fund, not the top ones")]
    = False,
) -> None:
    """What ops look at in the morning: funds by state, proposals, top trades, blocked funds."""
    engine = _engine()
    as_of = _night(engine, date)
    _print_report(engine, as_of, all_rows=all_rows)


def _night(engine, date: dt.datetime | None) -> dt.date:
    """The night asked for (or the latest); exits 1 naming the latest night when there is none."""
    from rebalance_pipeline import reports

    latest = reports.latest_date(engine)
    if latest is None:
        err.print("nothing published yet: run `rebalance run` first")
        raise typer.Exit(EXIT_REFUSED)
    if date is None:
        return latest
    as_of = date.date()
    if not reports.night_exists(engine, as_of):
        earlier = reports.latest_date(engine, as_of)
        err.print(f"[bold red]no night published for {as_of}[/bold red] ({as_of:%A}); the latest night is {latest}"
                  + (f", the nearest earlier one {earlier}" if earlier not in (None, latest) else ""))
        raise typer.Exit(EXIT_REFUSED)
    return as_of


@app.command("report-html")
def report_html(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(help="folder for the HTML (default: $REBALANCE_REPORTS_DIR)")] = None,
    history_days: Annotated[int, typer.Option(min=1, help="business dates in the turnover and cost trend")] = 60,
) -> None:
    """Write the drift report of a date as one self-contained HTML page; print its path."""
    from rebalance_pipeline import reporting, settings

    engine = _engine(migrate=False)
    reporting.require_views(engine, migrate=True)  # no DDL when up to date: a rebalance_reader login will do
    as_of = _night(engine, date)
    try:
        path = reporting.build_drift_report(engine, as_of, out or settings.reports_dir(), history_days)
    except LookupError as exc:
        err.print(f"[bold red]no report:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(str(path), soft_wrap=True)


@app.command("data-docs")
def data_docs_command(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(
        help="reports folder; the site goes to <out>/data-docs/<date>/ (default: $REBALANCE_REPORTS_DIR)")] = None,
) -> None:
    """Write a night's validation results as Great Expectations Data Docs; print the index's path."""
    from rebalance_pipeline import data_docs, settings

    engine = _engine()
    as_of = _night(engine, date)
    try:
        index = data_docs.build_data_docs(engine, as_of, out or settings.reports_dir())
    except LookupError as exc:
        err.print(f"[bold red]no Data Docs:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(str(index), soft_wrap=True)


@app.command()
def proposals(
    date: Annotated[dt.datetime | None, typer.Option(
        "--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD", help="only this business date (default: all)")] = None,
    status: Annotated[ProposalStatus | None, typer.Option(help="only proposals in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows (newest date, largest turnover first)")]
    = 100,
) -> None:
    """List proposals, newest night first."""
    from rebalance_pipeline import reports

    engine = _engine()
    as_of = _night(engine, date) if date else None
    status_value = status.value if status else None
    frame = reports.proposals(engine, as_of, status_value, limit=limit)
    total = reports.proposal_count(engine, as_of, status_value)
    if frame.empty:
        console.print("no proposals" + (f" in status {status_value}" if status_value else "")
                      + (f" on {as_of}" if as_of else ""))
        return
    # The id names the fund and the date: they go first on a narrow terminal.
    _table("Proposals", frame, drop=("wash_sale_trades", "flow", "est_realized_gain", "trigger", "est_cost",
                                     "trade_count", "fund_id", "as_of_date", "reviewed_by"))
    again = ["rebalance proposals", f"--date {as_of}" if as_of else "",
             f"--status {status_value}" if status_value else "", f"--limit {total}"]
    _more(len(frame), total, " ".join(part for part in again if part))


@app.command()
def show(proposal_id: ProposalId) -> None:
    """A proposal: where it stands, its trades with weights before and after and the band each
    holding was judged against, what became of the fund since, its audit trail."""
    from rebalance_pipeline.review import queries

    detail = queries.proposal_detail(_engine(), proposal_id)
    if detail is None:
        err.print(f"no proposal {proposal_id} (ids: rebalance proposals)")
        raise typer.Exit(EXIT_REFUSED)
    p = detail.proposal
    ccy = p.get("base_currency")
    # Data is printed as it is (markup=False): a note or a name may hold brackets.
    lines = [f"{proposal_id}  {p['status']}",
             f"fund {p['fund_id']}" + (f" ({p['fund_name']})" if p.get("fund_name") else "")
             + f", night of {p['as_of_date']}, policy {p.get('policy') or '?'}, trigger {p['trigger'] or '-'}",
             f"NAV {fmt.money(p['nav'], ccy)}, turnover {fmt.percent(p['turnover'])}, "
             f"{_n(int(p['trade_count'] or 0), 'trade')}, est. cost {fmt.money(p['est_cost'], ccy)}",
             f"cash {fmt.money(p['cash_before'], ccy)} -> {fmt.money(p['cash_after'], ccy)}"
             + (f", flow {fmt.money(p['flow'], ccy)}" if not fmt.is_blank(p.get("flow")) and p.get("flow") else "")]
    gain = p.get("est_realized_gain")
    if not fmt.is_blank(gain) and float(gain):
        lines.append(f"realized gain {fmt.money(gain, ccy)} (short term {fmt.money(p['est_realized_gain_short'], ccy)},"
                     f" long term {fmt.money(p['est_realized_gain_long'], ccy)})"
                     + (f", {_n(int(p['wash_sale_trades']), 'wash sale')}" if p.get("wash_sale_trades") else ""))
    harvested = p.get("est_harvested_loss")
    if not fmt.is_blank(harvested) and float(harvested):
        lines.append(f"tax-loss harvest: {fmt.money(harvested, ccy)} of losses realized "
                     f"({_n(int(p.get('tax_trade_count') or 0), 'tax trade')})")
    elif p.get("tax_trade_count"):
        lines.append(f"swap back after a harvest ({_n(int(p['tax_trade_count']), 'tax trade')})")
    left_in_kind = p.get("in_kind_unrealized_gain")
    if not fmt.is_blank(left_in_kind) and float(left_in_kind):
        lines.append(f"in-kind redemptions: {fmt.money(left_in_kind, ccy)} of unrealized gain left the fund "
                     "without being realized")
    if p.get("restriction_note"):
        lines.append(f"restrictions: {p['restriction_note']}")
    if p.get("compliance_note"):
        lines.append(f"compliance: {p['compliance_note']}")
    if p.get("notes"):
        lines.append(f"notes: {p['notes']}")
    if p.get("first_approved_by"):
        lines.append(f"first approval by {p['first_approved_by']} at {fmt.timestamp(p['first_approved_at'])}"
                     + ("; waiting for a second approval by someone else" if p["status"] == "pending_second_approval"
                        else ""))
    if p["reviewed_by"]:
        lines.append(f"{p['status']} by {p['reviewed_by']} at {fmt.timestamp(p['reviewed_at'])}"
                     + (f": {p['review_note']}" if p.get("review_note") else ""))
    styles = {0: "bold"}
    rejected = queries.rejection_text(detail.rejected_before)
    if rejected:
        styles[len(lines)] = "bold yellow"
        lines.append(rejected)
    later = queries.later_night_text(p["fund_id"], detail.later)
    if later:
        styles[len(lines)] = "bold" if p["status"] in ("superseded", "pending_review", "pending_second_approval") else ""
        lines.append(f"since then: {later}")
    for i, line in enumerate(lines):
        console.print(line, soft_wrap=True, highlight=False, markup=False, style=styles.get(i) or None)
    if detail.trades.empty:
        console.print("no trades")
    else:
        trades = detail.trades.assign(band=[fmt.band(lo, hi) for lo, hi in zip(
            detail.trades["band_lower"], detail.trades["band_upper"], strict=True)])
        # A harvest's substitute (or a swap back's sale) names the security it stands in for.
        trades["reason"] = np.where(trades["harvest_of"].notna(), trades["reason"] + " (for " +
                                    trades["harvest_of"].astype(str) + ")", trades["reason"])
        trades = trades[["security_id", "side", "quantity", "price", "notional", "weight_before", "weight_after",
                         "target_weight", "band", "est_cost", "est_realized_gain", "wash_sale", "reason"]]
        _table(f"Trades ({ccy or 'base currency'}; weights in % of NAV, band: the holding's that night)", trades,
               drop=("est_realized_gain", "wash_sale", "price", "est_cost", "target_weight", "notional"))
    if not detail.reviews.empty:
        _table("Audit trail", detail.reviews, drop=("channel",))


@app.command("export")
def export_orders(
    date: Annotated[dt.datetime | None, typer.Option(
        "--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
        help="export approvals of this business date and earlier (default: all)")] = None,
    outbox: Annotated[Path | None, typer.Option(
        help="folder for the order files (default: $REBALANCE_OUTBOX_DIR, else $REBALANCE_HOME/outbox)")] = None,
    blocks: Annotated[bool, typer.Option(
        "--blocks", help="one block order per security, side and currency across accounts, with an allocation "
                         "file, instead of one file per proposal")] = False,
) -> None:
    """Write the orders of approved proposals not yet exported, one CSV per proposal, exactly once.

    With --blocks: one batch of block orders (block_orders_<batch>.csv) and each account's
    allocation (block_allocations_<batch>.csv), exactly once in the same ledger.

    Exits 1 if an approved proposal was refused (e.g. an id that cannot be part of a file name):
    it is listed and not recorded, the others are exported; it goes out once it is fixed.
    """
    from rebalance_pipeline import settings
    from rebalance_pipeline.export import export_approved_orders

    run_id = f"cli-export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    report = export_approved_orders(_engine(), outbox or settings.outbox_dir(), date.date() if date else None,
                                    run_id=run_id, blocks=blocks)
    if report.files:
        _table("Order files written", pd.DataFrame({"file": [str(f) for f in report.files]}))
    console.print(report.summary(), soft_wrap=True)
    if report.refused:
        _table("Approved proposals refused (not exported)",
               pd.DataFrame(report.refused, columns=["proposal_id", "reason"]))
        err.print(f"[bold red]{len(report.refused)} approved proposals were not exported[/bold red] "
                  "(fix them and export again)")
        raise typer.Exit(EXIT_REFUSED)


@app.command("pcf")
def pcf(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(
        help="root folder of the PCF files (default: $REBALANCE_PCF_DIR, else $REBALANCE_HOME/pcf)")] = None,
) -> None:
    """Write the night's ETF baskets as PCF files, <out>/<YYYY-MM-DD>/<fund_id>.csv, one per fund.

    Each file holds the creation and redemption baskets of one creation unit (securities in
    whole lots, a CASH row for the cash component). Default: the latest night.
    """
    from rebalance_pipeline import settings
    from rebalance_pipeline.pcf import write_pcf

    engine = _engine()
    as_of = _night(engine, date)
    report = write_pcf(engine, as_of, out or settings.pcf_dir())
    if report.files:
        _table("PCF files written", pd.DataFrame({"file": [str(f) for f in report.files]}))
    console.print(report.summary(), soft_wrap=True)
    if report.refused:
        err.print(f"[bold red]{len(report.refused)} funds' baskets were not written[/bold red] "
                  "(their ids cannot be file names)")
        raise typer.Exit(EXIT_REFUSED)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="landing folder to write (one sub-folder per date)")],
    start: Annotated[dt.datetime, typer.Option(formats=DATE_FORMATS, metavar="YYYY-MM-DD", show_default=False,
                                               help="first trading day, or the next one after it "
                                                    "[default: 2014-01-02]")]
    = dt.datetime(2014, 1, 2),
    days: Annotated[int | None, typer.Option(min=1, show_default=False,
                                             help="trading days to write [default: 3; with --extend: 1]")] = None,
    funds: Annotated[int, typer.Option(min=1, help="number of funds")] = 36,
    holdings: Annotated[int, typer.Option(min=1, help="holdings per fund")] = 12,
    seed: Annotated[int, typer.Option(help="random seed: the same seed writes the same files")] = 7,
    models: Annotated[int, typer.Option(min=0, help="model portfolios (most funds follow one; the first is "
                                                    "reweighted on the last day)")] = 0,
    extend: Annotated[bool, typer.Option(
        "--extend", help="add --days trading days after the folder's latest date (same funds, prices moving on; "
                         "what the warehouse approved and exported is executed: executions.csv); "
                         "--start, --funds, --holdings and --seed are taken from the folder")] = False,
) -> None:
    """Write a realistic synthetic landing folder (trading days from --start), or extend one.

    `rebalance sample --out DIR --extend` adds the next trading day to a folder this
    command wrote (e.g. the demo's, .rebalance/demo-landing): run it, then
    `rebalance run --date <the new date> --landing DIR` for the second morning.
    """
    from rebalance_pipeline.sample import SampleError, extend_landing, generate

    try:
        if extend:
            dates = extend_landing(out, days=days or 1, engine=_desk_engine())
        else:
            dates = generate(out, start.date(), days=days or 3, funds=funds, holdings=holdings, seed=seed,
                             models=models)
    except SampleError as exc:
        err.print(f"[bold red]not written:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(" ".join(d.isoformat() for d in dates))


def _desk_engine():
    """The warehouse, when it holds the nights of a folder: `sample --extend` has the
    synthetic order desk execute what it approved and exported. Without one (or one whose
    schema was never created, which this command does not create), no executions.csv."""
    import sqlalchemy as sa

    from rebalance_pipeline import settings, warehouse

    try:
        engine = warehouse.get_engine()
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT to_regclass('rebalance.pipeline_run')")).scalar() is None:
                return None
    except (settings.WarehouseNotConfigured, sa.exc.OperationalError):
        return None
    warehouse.migrate(engine)   # a warehouse of an earlier version: up to this one (as `run` would)
    return engine


@app.command()
def simulate(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                   help="first date")],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                 help="last date")],
    landing: Annotated[Path, typer.Option(help="landing folder with the dates' sub-folders")],
    out: Annotated[Path | None, typer.Option(help="where the CSVs and charts go (default: $REBALANCE_HOME/simulation)")]
    = None,
    charts: Annotated[int, typer.Option(min=0, help="charts for at most this many funds (largest tracking first)")]
    = 50,
    rows: Annotated[int, typer.Option(min=1, help="funds listed in the terminal (all are in the CSV)")] = 20,
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate", help="run the nightly checks on each day (funds they block do not trade)")] = True,
    settings_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="COLUMN=VALUE",
        help="override a funds.csv column for every fund, e.g. --set harvest_loss_pct=0.05 (repeatable)")] = None,
) -> None:
    """Replay history under each fund's policy, as if every proposal were approved."""
    from rebalance_pipeline import settings
    from rebalance_pipeline.landing import StructuralError
    from rebalance_pipeline.simulate import run_simulation

    out = out or settings.home() / "simulation"
    if not landing.is_dir():
        err.print(f"[bold red]simulation failed:[/bold red] the landing root {landing} does not exist")
        raise typer.Exit(EXIT_CANNOT_RUN)
    fund_settings = {}
    for item in settings_ or []:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            err.print(f"[bold red]--set {escape(item)}:[/bold red] expected COLUMN=VALUE")
            raise typer.Exit(EXIT_USAGE)
        fund_settings[column.strip()] = value.strip()
    try:
        result, folder = run_simulation(landing, date_from.date(), date_to.date(), out, charts, validate=validate,
                                        fund_settings=fund_settings)
    except StructuralError as exc:
        err.print(f"[bold red]simulation failed:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    dates = sorted(pd.to_datetime(result.daily["as_of_date"]).dt.date.unique()) if len(result.daily) else []
    first, last = (dates[0], dates[-1]) if dates else (date_from.date(), date_to.date())
    if dates and (first > date_from.date() or last < date_to.date()):
        err.print(f"[bold yellow]the landing folder holds {_n(len(dates), 'trading day')} of the range asked for:"
                  f"[/bold yellow] replayed {first} to {last}, not {date_from:%Y-%m-%d} to {date_to:%Y-%m-%d}")
    summary = result.summary.sort_values("tracking_difference", key=abs, ascending=False)
    _table(f"Policy replay {first} to {last} ({_n(len(summary), 'fund')}, largest tracking difference first)",
           summary.head(rows).drop(columns=["first_date", "last_date"], errors="ignore"),
           drop=("realized_gain", "target_return", "return", "est_cost", "base_currency", "turnover", "policy", "days"))
    _more(min(rows, len(summary)), len(summary), f"{folder / 'simulation_summary.csv'} (or --rows {len(summary)})")
    console.print(f"summary, daily series and charts in {folder}", soft_wrap=True)


@warehouse_app.command("migrate")
def warehouse_migrate() -> None:
    """Create or upgrade the schema to the latest version (views and functions re-declared).

    Exits 3 when the package holds no migration (an incomplete install): nothing migrated.
    """
    from rebalance_pipeline import warehouse

    engine = warehouse.get_engine()
    try:
        applied = warehouse.apply_migrations(engine)
    except warehouse.MigrationsNotFound as exc:
        err.print(f"[bold red]cannot migrate:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    done = [f"V{v:03d}" for v in applied.versions] + [f"R__{name}" for name in applied.repeatables]
    console.print(f"schema at version {warehouse.current_version(engine)}"
                  + (f" (applied {', '.join(done)})" if done else " (up to date)"), soft_wrap=True)


@warehouse_app.command("url")
def warehouse_url() -> None:
    """Print the warehouse's SQLAlchemy URL (starting the embedded server if it is the default)."""
    from rebalance_pipeline import warehouse

    console.print(warehouse.get_engine().url.render_as_string(hide_password=True), soft_wrap=True)


@warehouse_app.command("stop")
def warehouse_stop() -> None:
    """Stop the embedded server (no effect on an external warehouse)."""
    from rebalance_pipeline import embedded

    console.print("stopped" if embedded.stop() else "not running")


# ------------------------------------------------------------------ output
REPORT_LIMIT = 15
# Wrapping free text (at spaces); every other column stays on one line.
TEXT_COLUMNS = {"blocked_reason", "detail", "note", "notes", "file", "review_note", "came_back"}
LABELS = {"as_of_date": "date", "max_abs_drift": "max drift", "breach_count": "breaches",
          "proposal_status": "proposal", "trade_count": "trades", "est_cost": "est. cost",
          "est_realized_gain": "realized gain", "wash_sale_trades": "wash sales", "wash_sale": "wash sale",
          "weight_before": "before", "weight_after": "after", "target_weight": "target",
          "reviewed_by": "reviewed by", "blocked_reason": "reason", "security_id": "security",
          "failed_rows": "failed rows", "decided_by": "by", "decided_at": "at", "tracking_difference": "tracking diff",
          "decision": "decision", "fund_id": "fund", "proposal_id": "proposal id"}


def _print_report(engine, as_of: dt.date, all_rows: bool = False) -> None:
    from rebalance_pipeline import reports
    from rebalance_pipeline.fund_states import STATE_LABELS
    from rebalance_pipeline.review import queries

    limit = None if all_rows else REPORT_LIMIT
    night = reports.night_run(engine, as_of)
    if night is not None:
        console.print(f"Night of {as_of}: {night['funds']:,} funds, {night['funds_proposed']:,} proposed, "
                      f"{night['funds_blocked']:,} blocked, {night['trades']:,} trades; published "
                      f"{fmt.timestamp(night['published_at'])} by run {night['run_id']}", soft_wrap=True,
                      highlight=False)
    states = reports.state_counts(engine, as_of)
    states = states.assign(state=states["state"].map(STATE_LABELS))
    _table(f"Funds on {as_of}", states, drop=("nav",))
    pending = reports.pending_count(engine, as_of)
    console.print(f"{_n(pending, 'proposal')} of the night pending review"
                  + (f": rebalance proposals --date {as_of} --status pending_review" if pending else ""),
                  soft_wrap=True)
    approved = reports.approval_counts(engine, as_of)
    if approved["by_rule"] or approved["by_people"]:
        console.print(f"{_n(approved['by_rule'] + approved['by_people'], 'proposal')} of the night approved: "
                      f"{approved['by_rule']:,} approved by rule (rule:auto), {approved['by_people']:,} by people",
                      soft_wrap=True, highlight=False)
    proposed = reports.fund_summary(engine, as_of, "proposed", limit=limit)
    total_proposed = reports.fund_count(engine, as_of, "proposed")
    if len(proposed):
        _table("Proposed funds (largest drift first)",
               proposed[["fund_id", "policy", "nav", "max_abs_drift", "breach_count", "trigger", "proposal_id",
                         "proposal_status", "turnover"]],
               drop=("breach_count", "policy", "trigger", "nav", "turnover", "proposal_status", "fund_id"))
        _more(len(proposed), total_proposed, f"rebalance report --date {as_of} --all, or "
                                             f"rebalance proposals --date {as_of}")
        came_back = queries.prior_rejections(engine, proposed["proposal_id"].dropna().tolist())
        if len(came_back):
            console.print("[bold yellow]Proposed again after a rejection of the same fund and trigger:[/bold yellow]")
            for row in came_back.to_dict("records"):
                console.print(f"  {row['proposal_id']}: {queries.rejection_text(row)}", soft_wrap=True,
                              highlight=False, markup=False)
    trades = reports.top_trades(engine, as_of)
    if len(trades):
        _table(f"Top {len(trades)} trades by notional", trades,
               drop=("target_weight", "reason", "weight_before", "weight_after", "quantity", "fund_id"))
        _more(len(trades), reports.trade_count(engine, as_of), "rebalance show <proposal id> (a proposal's trades)")
    blocked = reports.fund_summary(engine, as_of, "blocked", limit=limit)
    if len(blocked):
        _table("Blocked funds", blocked[["fund_id", "blocked_reason"]])
        _more(len(blocked), reports.fund_count(engine, as_of, "blocked"), f"rebalance report --date {as_of} --all")
    exceptions = reports.compliance_exceptions(engine, as_of)
    if len(exceptions):
        _table(f"Compliance exceptions: {_n(exceptions['fund_id'].nunique(), 'fund')} whose holdings fail a rule",
               exceptions.rename(columns={"limit_value": "limit"}), drop=("detail",))
    expired = reports.expired_approvals(engine, as_of)
    if len(expired):
        console.print("[bold yellow]Approvals that expired unexecuted (the funds propose again):[/bold yellow]")
        for row in expired.to_dict("records"):
            console.print(f"  {row['fund_id']}: {row['note']}", soft_wrap=True, highlight=False, markup=False)
    failures = reports.validation_failures(engine, as_of)
    if len(failures):
        _table("Failed checks", failures)


def _more(shown: int, total: int, where: str) -> None:
    """Under a cut list: how many more there are and where to see them."""
    if total > shown:
        console.print(f"[dim]… and {total - shown:,} more (of {total:,}): {where}[/dim]", soft_wrap=True,
                      highlight=False)


def _table(title: str, frame: pd.DataFrame, drop: tuple[str, ...] = (), currency: str | None = None) -> None:
    """A Rich table that fits the terminal: the columns in ``drop`` are left out, in that order,
    until it does; ids and numbers are never wrapped or cut, free text wraps at spaces."""
    columns = list(frame.columns)
    for_dropping = [c for c in drop if c in columns]
    while True:
        table = _build_table(title, frame[columns], currency, strict=True)
        if _min_width(table) <= console.width or not for_dropping:
            break
        columns.remove(for_dropping.pop(0))
    if _min_width(table) > console.width:
        table = _build_table(title, frame[columns], currency, strict=False)
    left_out = [c for c in frame.columns if c not in columns]
    if left_out:
        table.caption = f"not shown on a terminal this narrow: {', '.join(_label(c) for c in left_out)}"
        table.caption_justify = "left"
    console.print(table)


def _min_width(table: Table) -> int:
    """The narrowest the table can be drawn without wrapping a one-line column: its columns'
    minimum widths plus padding and rules (Rich's own measure is capped at the terminal)."""
    return sum((c.min_width or 1) + 3 for c in table.columns) + 1


def _label(column) -> str:
    return LABELS.get(str(column), str(column).replace("_", " "))


def _build_table(title: str, frame: pd.DataFrame, currency: str | None, strict: bool) -> Table:
    table = Table(title=title, title_justify="left")
    cells = {c: [fmt.cell(c, v, currency) for v in frame[c]] for c in frame.columns}
    for column in frame.columns:
        name = str(column)
        label = _label(name)
        if name in TEXT_COLUMNS:
            table.add_column(label, overflow="fold", min_width=min(20, max((len(w) for w in label.split()), default=1)))
            continue
        # Ids are copied into other commands: never wrapped, never cut.
        is_id = name.endswith("_id")
        widest = max([len(v) for v in cells[name]] + [len(label)])  # the header stays on one line too
        table.add_column(label, no_wrap=True, overflow="ellipsis",
                         justify="right" if fmt.is_numeric_kind(name) else "left",
                         min_width=widest if (strict or is_id) else None)
    for i in range(len(frame)):
        table.add_row(*(escape(cells[c][i]) for c in frame.columns))
    return table


if __name__ == "__main__":
    app()
