"""The read commands of a night: ``report`` (the morning report on the terminal),
``report-html``, ``data-docs`` and ``pcf`` (files written under the reports or PCF folder)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rebalance_pipeline.cli.common import (
    EXIT_REFUSED,
    OptionalDate,
    chosen_night,
    console,
    err,
    open_engine,
    plural,
)

# The morning report lists the top ones of each kind (``--all``: every one).
REPORT_LIMIT = 15


def report(
    date: OptionalDate = None,
    all_rows: Annotated[bool, typer.Option("--all", help="list every proposed and blocked fund, not the top ones")]
    = False,
) -> None:
    """What ops look at in the morning: funds by state, proposals, top trades, blocked funds."""
    engine = open_engine()
    as_of = chosen_night(engine, date)
    print_report(engine, as_of, all_rows=all_rows)


def report_html(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(help="folder for the HTML (default: $REBALANCE_REPORTS_DIR)")] = None,
    history_days: Annotated[int, typer.Option(min=1, help="business dates in the turnover and cost trend")] = 60,
) -> None:
    """Write the drift report of a date as one self-contained HTML page; print its path."""
    from rebalance_pipeline import reporting, settings

    engine = open_engine(migrate=False)
    reporting.require_views(engine, migrate=True)  # no DDL when up to date: a rebalance_reader login will do
    as_of = chosen_night(engine, date)
    try:
        path = reporting.build_drift_report(engine, as_of, out or settings.reports_dir(), history_days)
    except LookupError as exc:
        err.print(f"[bold red]no report:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(str(path), soft_wrap=True)


def data_docs_command(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(
        help="reports folder; the site goes to <out>/data-docs/<date>/ (default: $REBALANCE_REPORTS_DIR)")] = None,
) -> None:
    """Write a night's validation results as Great Expectations Data Docs; print the index's path."""
    from rebalance_pipeline import data_docs, settings

    engine = open_engine()
    as_of = chosen_night(engine, date)
    try:
        index = data_docs.build_data_docs(engine, as_of, out or settings.reports_dir())
    except LookupError as exc:
        err.print(f"[bold red]no Data Docs:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(str(index), soft_wrap=True)


def pcf(
    date: OptionalDate = None,
    out: Annotated[Path | None, typer.Option(
        help="root folder of the PCF files (default: $REBALANCE_PCF_DIR, else $REBALANCE_HOME/pcf)")] = None,
) -> None:
    """Write the night's ETF baskets as PCF files, <out>/<YYYY-MM-DD>/<fund_id>.csv, one per fund.

    Each file holds the creation and redemption baskets of one creation unit (securities in
    whole lots, a CASH row for the cash component). Default: the latest night.
    """
    import pandas as pd

    from rebalance_pipeline import settings
    from rebalance_pipeline.cli.output import print_table
    from rebalance_pipeline.pcf import write_pcf

    engine = open_engine()
    as_of = chosen_night(engine, date)
    report = write_pcf(engine, as_of, out or settings.pcf_dir())
    if report.files:
        print_table("PCF files written", pd.DataFrame({"file": [str(f) for f in report.files]}))
    console.print(report.summary(), soft_wrap=True)
    if report.refused:
        err.print(f"[bold red]{len(report.refused)} funds' baskets were not written[/bold red] "
                  "(their ids cannot be file names)")
        raise typer.Exit(EXIT_REFUSED)


def print_report(engine, as_of: dt.date, all_rows: bool = False) -> None:
    from rebalance_pipeline import formatting as fmt
    from rebalance_pipeline.cli.output import print_more, print_table
    from rebalance_pipeline.fund_states import STATE_LABELS
    from rebalance_pipeline.read_model import nights
    from rebalance_pipeline.read_model.proposals import prior_rejections

    limit = None if all_rows else REPORT_LIMIT
    night = nights.night_run(engine, as_of)
    if night is not None:
        console.print(f"Night of {as_of}: {night['funds']:,} funds, {night['funds_proposed']:,} proposed, "
                      f"{night['funds_blocked']:,} blocked, {night['trades']:,} trades; published "
                      f"{fmt.timestamp(night['published_at'])} by run {night['run_id']}", soft_wrap=True,
                      highlight=False)
    states = nights.state_counts(engine, as_of)
    states = states.assign(state=states["state"].map(STATE_LABELS),   # NAV per base currency, never added up
                           nav=["; ".join(fmt.money(v, c) for c, v in nav.items()) for nav in states["nav"]])
    print_table(f"Funds on {as_of}", states, drop=("nav",))
    pending = nights.pending_count(engine, as_of)
    console.print(f"{plural(pending, 'proposal')} of the night pending review"
                  + (f": rebalance proposals --date {as_of} --status pending_review" if pending else ""),
                  soft_wrap=True)
    approved = nights.approval_counts(engine, as_of)
    if approved["by_rule"] or approved["by_people"]:
        console.print(f"{plural(approved['by_rule'] + approved['by_people'], 'proposal')} of the night approved: "
                      f"{approved['by_rule']:,} approved by rule (rule:auto), {approved['by_people']:,} by people",
                      soft_wrap=True, highlight=False)
    proposed = nights.night_funds(engine, as_of, "proposed", limit=limit)
    total_proposed = nights.fund_count(engine, as_of, "proposed")
    if len(proposed):
        print_table("Proposed funds (largest drift first)",
                    proposed[["fund_id", "policy", "nav", "max_abs_drift", "breach_count", "trigger", "proposal_id",
                              "proposal_status", "turnover"]],
                    drop=("breach_count", "policy", "trigger", "nav", "turnover", "proposal_status", "fund_id"))
        print_more(len(proposed), total_proposed, f"rebalance report --date {as_of} --all, or "
                                                  f"rebalance proposals --date {as_of}")
        came_back = prior_rejections(engine, proposed["proposal_id"].dropna().tolist())
        if len(came_back):
            console.print("[bold yellow]Proposed again after a rejection of the same fund and trigger:[/bold yellow]")
            for row in came_back.to_dict("records"):
                console.print(f"  {row['proposal_id']}: {fmt.rejection_text(row)}", soft_wrap=True,
                              highlight=False, markup=False)
    trades = nights.top_trades(engine, as_of)
    if len(trades):
        print_table(f"Top {len(trades)} trades by notional", trades,
                    drop=("target_weight", "reason", "weight_before", "weight_after", "quantity", "fund_id"))
        print_more(len(trades), nights.trade_count(engine, as_of), "rebalance show <proposal id> (a proposal's trades)")
    blocked = nights.night_funds(engine, as_of, "blocked", limit=limit)
    if len(blocked):
        print_table("Blocked funds", blocked[["fund_id", "blocked_reason"]])
        print_more(len(blocked), nights.fund_count(engine, as_of, "blocked"), f"rebalance report --date {as_of} --all")
    exceptions = nights.compliance_exceptions(engine, as_of)
    if len(exceptions):
        funds = plural(exceptions["fund_id"].nunique(), "fund")
        print_table(f"Compliance exceptions: {funds} whose holdings fail a rule",
                    exceptions.rename(columns={"limit_value": "limit"}), drop=("detail",))
    expired = nights.expired_approvals(engine, as_of)
    if len(expired):
        console.print("[bold yellow]Approvals that expired unexecuted (the funds propose again):[/bold yellow]")
        for row in expired.to_dict("records"):
            console.print(f"  {row['fund_id']}: {row['note']}", soft_wrap=True, highlight=False, markup=False)
    failures = nights.validation_failures(engine, as_of)
    if len(failures):
        print_table("Failed checks", failures)
