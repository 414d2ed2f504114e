"""The ``rebalance`` command: the nightly run, reviews and reports without the scheduler.

Built on Typer (type-hinted commands, generated --help) with Rich tables for output.
Exit codes: 0 done; 1 a decision that cannot be taken, an unknown proposal, or an export that
refused a proposal (listed; the others went out); 2 the night cannot run (a structural fault
in the landing folder: the message names file, row and column).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Rebalance: nightly drift and rebalancing proposals for funds.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
warehouse_app = typer.Typer(help="The warehouse: migrations and the embedded server.", no_args_is_help=True)
app.add_typer(warehouse_app, name="warehouse")
console = Console(width=160)
err = Console(stderr=True, soft_wrap=True)

DateOption = Annotated[dt.datetime, typer.Option("--date", formats=["%Y-%m-%d"], help="business date YYYY-MM-DD")]


def _engine(migrate: bool = True):
    from rebalance_pipeline import warehouse

    engine = warehouse.get_engine()
    if migrate:
        warehouse.migrate(engine)
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
    """The whole nightly run for one date: ingest, validate, drift, proposals, write."""
    from rebalance_pipeline import steps
    from rebalance_pipeline.landing import StructuralError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    as_of = date.date()
    engine = _engine()

    def progress(step: str, result) -> None:
        if not quiet:
            err.print(f"[dim]{step:>9}[/dim] {result}")

    try:
        report = steps.run_nightly(as_of, landing, engine, run_id=run_id, on_step=progress, shards=shards,
                                   workers=workers)
    except StructuralError as exc:
        err.print(f"[bold red]run for {as_of} failed, nothing written:[/bold red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{as_of}: {report.funds} funds, {report.proposed} proposed, {report.blocked} blocked, "
                  f"{report.trades} trades (run {report.run_id})")
    if not quiet:
        _print_report(engine, as_of)


def _decide(proposal_id: str, decision: str, by: str, note: str | None) -> None:
    from rebalance_pipeline.warehouse import ReviewError, decide

    try:
        state = decide(_engine(), proposal_id, decision, by, note)
    except ReviewError as exc:
        err.print(f"[bold red]not {decision}:[/bold red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{state['proposal_id']} ({state['fund_id']}, {state['as_of_date']}) {state['status']} by "
                  f"{state['reviewed_by']} at {state['reviewed_at']:%Y-%m-%d %H:%M:%S %Z}")


@app.command()
def approve(
    proposal_id: str,
    by: Annotated[str, typer.Option("--by", help="who decides")],
    note: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Approve a pending proposal (kept with who and when)."""
    _decide(proposal_id, "approved", by, note)


@app.command()
def reject(
    proposal_id: str,
    by: Annotated[str, typer.Option("--by", help="who decides")],
    note: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Reject a pending proposal (kept with who and when)."""
    _decide(proposal_id, "rejected", by, note)


@app.command()
def report(date: Annotated[dt.datetime | None, typer.Option("--date", formats=["%Y-%m-%d"])] = None) -> None:
    """What ops look at in the morning: funds by status, proposals, top trades, blocked funds."""
    from rebalance_pipeline import reports

    engine = _engine()
    as_of = date.date() if date else reports.latest_date(engine)
    if as_of is None:
        err.print("nothing published yet: run `rebalance run` first")
        raise typer.Exit(1)
    _print_report(engine, as_of)


@app.command("report-html")
def report_html(
    date: Annotated[dt.datetime | None, typer.Option("--date", formats=["%Y-%m-%d"],
                                                     help="business date (default: the latest in the warehouse)")]
    = None,
    out: Annotated[Path | None, typer.Option(help="folder for the HTML (default: $REBALANCE_REPORTS_DIR)")] = None,
    history_days: Annotated[int, typer.Option(min=1, help="business dates in the turnover and cost trend")] = 60,
) -> None:
    """Write the drift report of a date as one self-contained HTML page; print its path."""
    from rebalance_pipeline import reporting, settings

    engine = _engine(migrate=False)
    reporting.require_views(engine, migrate=True)  # no DDL when up to date: a rebalance_reader login will do
    as_of = date.date() if date else reporting.latest_date_on_or_before(engine)
    if as_of is None:
        err.print("nothing published yet: run `rebalance run` first")
        raise typer.Exit(1)
    try:
        path = reporting.build_drift_report(engine, as_of, out or settings.reports_dir(), history_days)
    except LookupError as exc:
        err.print(f"[bold red]no report:[/bold red] {exc}")
        raise typer.Exit(1) from None
    console.print(str(path), soft_wrap=True)


@app.command()
def proposals(
    date: Annotated[dt.datetime | None, typer.Option("--date", formats=["%Y-%m-%d"])] = None,
    status: Annotated[str | None, typer.Option(help="pending_review, approved, rejected, superseded")] = None,
) -> None:
    """List proposals."""
    from rebalance_pipeline import reports

    _table("Proposals", reports.proposals(_engine(), date.date() if date else None, status))


@app.command()
def show(proposal_id: str) -> None:
    """A proposal: where it stands, its trades with weights before and after, its audit trail."""
    from rebalance_pipeline.review import queries

    detail = queries.proposal_detail(_engine(), proposal_id)
    if detail is None:
        err.print(f"no proposal {proposal_id} (ids: rebalance proposals)")
        raise typer.Exit(1)
    p = detail.proposal
    console.print(f"[bold]{proposal_id}[/bold]  fund {p['fund_id']}  {p['as_of_date']}  [bold]{p['status']}[/bold]"
                  f"  trigger {p['trigger']}  turnover {float(p['turnover']):.2%}  est. cost {float(p['est_cost']):,.2f}"
                  f"  cash {float(p['cash_before'] or 0):,.2f} -> {float(p['cash_after'] or 0):,.2f}"
                  + (f"  {p['status']} by {p['reviewed_by']} at {p['reviewed_at']:%Y-%m-%d %H:%M %Z}"
                     if p["reviewed_by"] else ""))
    if detail.trades.empty:
        console.print("no trades")
    else:
        _table(f"Trades of {proposal_id}", detail.trades.drop(columns=["est_realized_gain_short",
                                                                        "est_realized_gain_long"]))
    if not detail.reviews.empty:
        _table("Audit trail", detail.reviews)


@app.command("export")
def export_orders(
    date: Annotated[dt.datetime | None, typer.Option(
        "--date", formats=["%Y-%m-%d"], help="export approvals of this business date and earlier (default: all)")
    ] = None,
    outbox: Annotated[Path | None, typer.Option(
        help="folder for the order files (default: $REBALANCE_OUTBOX_DIR, else $REBALANCE_HOME/outbox)")] = None,
) -> None:
    """Write the orders of approved proposals not yet exported, one CSV per proposal, exactly once.

    Exits 1 if an approved proposal was refused (e.g. an id that cannot be part of a file name):
    it is listed and not recorded, the others are exported; it goes out once it is fixed.
    """
    from rebalance_pipeline import settings
    from rebalance_pipeline.export import export_approved_orders

    run_id = f"cli-export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    report = export_approved_orders(_engine(), outbox or settings.outbox_dir(), date.date() if date else None,
                                    run_id=run_id)
    if report.files:
        _table("Order files written", pd.DataFrame({"file": [str(f) for f in report.files]}))
    console.print(report.summary(), soft_wrap=True)
    if report.refused:
        _table("Approved proposals refused (not exported)",
               pd.DataFrame(report.refused, columns=["proposal_id", "reason"]))
        err.print(f"[bold red]{len(report.refused)} approved proposals were not exported[/bold red] "
                  "(fix them and export again)")
        raise typer.Exit(1)


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="landing folder to write")],
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"])] = dt.datetime(2014, 1, 2),
    days: int = 3,
    funds: int = 36,
    holdings: int = 12,
    seed: int = 7,
) -> None:
    """Write a realistic synthetic landing folder (trading days from START)."""
    from rebalance_pipeline.sample import generate

    dates = generate(out, start.date(), days=days, funds=funds, holdings=holdings, seed=seed)
    console.print(" ".join(d.isoformat() for d in dates))


@app.command()
def simulate(
    date_from: Annotated[dt.datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="first date")],
    date_to: Annotated[dt.datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="last date")],
    landing: Annotated[Path, typer.Option(help="landing folder with the dates' sub-folders")],
    out: Annotated[Path | None, typer.Option(help="where the CSVs and charts go")] = None,
    charts: Annotated[int, typer.Option(help="charts for at most this many funds (largest tracking first)")] = 50,
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate", help="run the nightly checks on each day (funds they block do not trade)")] = True,
) -> None:
    """Replay history under each fund's policy, as if every proposal were approved."""
    from rebalance_pipeline import settings
    from rebalance_pipeline.landing import StructuralError
    from rebalance_pipeline.simulate import run_simulation

    out = out or settings.home() / "simulation"
    try:
        result, folder = run_simulation(landing, date_from.date(), date_to.date(), out, charts, validate=validate)
    except StructuralError as exc:
        err.print(f"[bold red]simulation failed:[/bold red] {exc}")
        raise typer.Exit(2) from None
    summary = result.summary.sort_values("tracking_difference", key=abs, ascending=False)
    _table(f"Policy replay {date_from:%Y-%m-%d} to {date_to:%Y-%m-%d} ({len(summary)} funds, largest tracking first)",
           summary.head(20))
    console.print(f"summary, daily series and charts in {folder}")


@warehouse_app.command("migrate")
def warehouse_migrate() -> None:
    """Create or upgrade the schema to the latest version."""
    from rebalance_pipeline import warehouse

    engine = warehouse.get_engine()
    applied = warehouse.migrate(engine)
    console.print(f"schema at version {warehouse.current_version(engine)}"
                  + (f" (applied {', '.join(f'V{v:03d}' for v in applied)})" if applied else " (up to date)"))


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
def _print_report(engine, as_of: dt.date) -> None:
    from rebalance_pipeline import reports

    _table(f"Funds on {as_of}", reports.status_counts(engine, as_of))
    proposed = reports.fund_summary(engine, as_of, "proposed", limit=15)
    _table("Proposed funds (largest drift first)",
           proposed[["fund_id", "policy", "nav", "max_abs_drift", "breach_count", "trigger", "proposal_id",
                     "proposal_status", "turnover"]])
    _table("Top trades", reports.top_trades(engine, as_of))
    blocked = reports.fund_summary(engine, as_of, "blocked", limit=20)
    if len(blocked):
        _table("Blocked funds", blocked[["fund_id", "blocked_reason"]])
    failures = reports.validation_failures(engine, as_of)
    if len(failures):
        _table("Failed checks", failures)


def _table(title: str, frame: pd.DataFrame) -> None:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        # Ids are copied into other commands: never wrapped.
        is_id = str(column).endswith("_id")
        table.add_column(str(column), overflow="ellipsis" if is_id else "fold", no_wrap=is_id,
                         min_width=max((len(str(v)) for v in frame[column]), default=0) if is_id else None)
    for row in frame.itertuples(index=False):
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    try:
        from decimal import Decimal

        if isinstance(value, Decimal):
            return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
    except Exception:  # pragma: no cover
        pass
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


if __name__ == "__main__":
    app()
