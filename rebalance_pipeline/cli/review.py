"""The review commands: ``proposals``, ``show``, ``approve``, ``reject``, ``executed``, ``export``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from rebalance_pipeline.cli.common import (
    DATE_FORMATS,
    EXIT_REFUSED,
    ProposalId,
    ProposalStatus,
    chosen_night,
    console,
    err,
    open_engine,
    plural,
)

By = Annotated[str, typer.Option("--by", help="who decides (kept in the audit trail)")]
Note = Annotated[str | None, typer.Option(help="why (kept in the audit trail)")]


def _decide(proposal_id: str, decision: str, by: str, note: str | None) -> None:
    from rebalance_pipeline import formatting as fmt
    from rebalance_pipeline.warehouse import ReviewError, decide

    try:
        state = decide(open_engine(), proposal_id, decision, by, note)   # the view's decision function too
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


def approve(proposal_id: ProposalId, by: By, note: Note = None) -> None:
    """Approve a pending proposal (kept with who and when). Above its fund's second_approval_notional
    this is the first of two approvals, and the second must come from someone else. Exits 1 when
    it cannot be approved."""
    _decide(proposal_id, "approved", by, note)


def reject(proposal_id: ProposalId, by: By, note: Note = None) -> None:
    """Reject a pending proposal (kept with who and when). Exits 1 when it cannot be rejected."""
    _decide(proposal_id, "rejected", by, note)


def executed(proposal_id: ProposalId, by: By, note: Note = None,
             cancelled: Annotated[bool, typer.Option("--cancelled", help="its orders were cancelled, not filled")]
             = False) -> None:
    """Say an approved proposal's orders were all executed (or, with --cancelled, all
    cancelled), when the order desk's executions.csv will not: kept with who and when, read
    by the next night, which then stops holding the fund back. Exits 1 when the proposal is
    not approved."""
    from rebalance_pipeline import formatting as fmt
    from rebalance_pipeline.executions import record_operator_word
    from rebalance_pipeline.warehouse import ReviewError

    try:
        done = record_operator_word(open_engine(), proposal_id, by, note, cancelled=cancelled)
    except ReviewError as exc:
        err.print(f"[bold red]not recorded:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_REFUSED) from None
    console.print(f"{done['proposal_id']} ({done['fund_id']}, {done['as_of_date']}): {plural(done['orders'], 'order')} "
                  f"{done['status']} by {done['recorded_by']} at {fmt.timestamp(done['recorded_at'])}; the night after "
                  f"{done['night']} reads it", soft_wrap=True, markup=False, highlight=False)


def proposals(
    date: Annotated[dt.datetime | None, typer.Option(
        "--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD", help="only this business date (default: all)")] = None,
    status: Annotated[ProposalStatus | None, typer.Option(help="only proposals in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many rows (newest date, largest turnover first)")]
    = 100,
) -> None:
    """List proposals, newest night first."""
    from rebalance_pipeline.cli.output import print_more, print_table
    from rebalance_pipeline.read_model import proposals as read

    engine = open_engine()
    as_of = chosen_night(engine, date) if date else None
    status_value = status.value if status else None
    frame = read.proposals(engine, as_of, status_value, limit=limit)
    total = read.proposal_count(engine, as_of, status_value)
    if frame.empty:
        console.print("no proposals" + (f" in status {status_value}" if status_value else "")
                      + (f" on {as_of}" if as_of else ""))
        return
    # The id names the fund and the date: they go first on a narrow terminal.
    print_table("Proposals", frame, drop=("wash_sale_trades", "flow", "est_realized_gain", "trigger", "est_cost",
                                          "trade_count", "fund_id", "as_of_date", "reviewed_by"))
    again = ["rebalance proposals", f"--date {as_of}" if as_of else "",
             f"--status {status_value}" if status_value else "", f"--limit {total}"]
    print_more(len(frame), total, " ".join(part for part in again if part))


def show(proposal_id: ProposalId) -> None:
    """A proposal: where it stands, its trades with weights before and after and the band each
    holding was judged against, what became of the fund since, its audit trail."""
    from rebalance_pipeline import formatting as fmt
    from rebalance_pipeline.cli.output import print_table
    from rebalance_pipeline.read_model.proposals import proposal_detail

    detail = proposal_detail(open_engine(), proposal_id)
    if detail is None:
        err.print(f"no proposal {proposal_id} (ids: rebalance proposals)")
        raise typer.Exit(EXIT_REFUSED)
    p = detail.proposal
    ccy = p.get("base_currency")
    lines = _proposal_lines(proposal_id, p)
    styles = {0: "bold"}
    rejected = fmt.rejection_text(detail.rejected_before)
    if rejected:
        styles[len(lines)] = "bold yellow"
        lines.append(rejected)
    later = fmt.later_night_text(p["fund_id"], detail.later)
    if later:
        styles[len(lines)] = "bold" if p["status"] in ("superseded", "pending_review", "pending_second_approval") else ""
        lines.append(f"since then: {later}")
    for i, line in enumerate(lines):   # data as it is (markup=False): a note or a name may hold brackets
        console.print(line, soft_wrap=True, highlight=False, markup=False, style=styles.get(i) or None)
    _print_trades(detail.trades, ccy)
    if not detail.reviews.empty:
        print_table("Audit trail", detail.reviews, drop=("channel",))


def _proposal_lines(proposal_id: str, p: dict) -> list[str]:
    """Where a proposal stands, in lines: fund and night, sizes, gains, harvests, notes, reviews."""
    from rebalance_pipeline import formatting as fmt

    ccy = p.get("base_currency")
    lines = [f"{proposal_id}  {p['status']}",
             f"fund {p['fund_id']}" + (f" ({p['fund_name']})" if p.get("fund_name") else "")
             + f", night of {p['as_of_date']}, policy {p.get('policy') or '?'}, trigger {p['trigger'] or '-'}",
             f"NAV {fmt.money(p['nav'], ccy)}, turnover {fmt.percent(p['turnover'])}, "
             f"{plural(int(p['trade_count'] or 0), 'trade')}, est. cost {fmt.money(p['est_cost'], ccy)}",
             f"cash {fmt.money(p['cash_before'], ccy)} -> {fmt.money(p['cash_after'], ccy)}"
             + (f", flow {fmt.money(p['flow'], ccy)}" if not fmt.is_blank(p.get("flow")) and p.get("flow") else "")]
    gain = p.get("est_realized_gain")
    if not fmt.is_blank(gain) and float(gain):
        lines.append(f"realized gain {fmt.money(gain, ccy)} (short term {fmt.money(p['est_realized_gain_short'], ccy)},"
                     f" long term {fmt.money(p['est_realized_gain_long'], ccy)})"
                     + (f", {plural(int(p['wash_sale_trades']), 'wash sale')}" if p.get("wash_sale_trades") else ""))
    harvested = p.get("est_harvested_loss")
    if not fmt.is_blank(harvested) and float(harvested):
        lines.append(f"tax-loss harvest: {fmt.money(harvested, ccy)} of losses realized "
                     f"({plural(int(p.get('tax_trade_count') or 0), 'tax trade')})")
    elif p.get("tax_trade_count"):
        lines.append(f"swap back after a harvest ({plural(int(p['tax_trade_count']), 'tax trade')})")
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
    return lines


def _print_trades(trades, ccy: str | None) -> None:
    """A proposal's trades, each with the band its holding was judged against that night."""
    import numpy as np

    from rebalance_pipeline import formatting as fmt
    from rebalance_pipeline.cli.output import print_table

    if trades.empty:
        console.print("no trades")
    else:
        trades = trades.assign(band=[fmt.band(lo, hi) for lo, hi in zip(
            trades["band_lower"], trades["band_upper"], strict=True)])
        # A harvest's substitute (or a swap back's sale) names the security it stands in for.
        trades["reason"] = np.where(trades["harvest_of"].notna(), trades["reason"] + " (for " +
                                    trades["harvest_of"].astype(str) + ")", trades["reason"])
        trades = trades[["security_id", "side", "quantity", "price", "notional", "weight_before", "weight_after",
                         "target_weight", "band", "est_cost", "est_realized_gain", "wash_sale", "reason"]]
        print_table(f"Trades ({ccy or 'base currency'}; weights in % of NAV, band: the holding's that night)", trades,
                    drop=("est_realized_gain", "wash_sale", "price", "est_cost", "target_weight", "notional"))


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
    import pandas as pd

    from rebalance_pipeline import settings
    from rebalance_pipeline.cli.output import print_table
    from rebalance_pipeline.export import export_approved_orders

    run_id = f"cli-export-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    report = export_approved_orders(open_engine(), outbox or settings.outbox_dir(), date.date() if date else None,
                                    run_id=run_id, blocks=blocks)
    if report.files:
        print_table("Order files written", pd.DataFrame({"file": [str(f) for f in report.files]}))
    console.print(report.summary(), soft_wrap=True)
    if report.refused:
        print_table("Approved proposals refused (not exported)",
                    pd.DataFrame(report.refused, columns=["proposal_id", "reason"]))
        err.print(f"[bold red]{len(report.refused)} approved proposals were not exported[/bold red] "
                  "(fix them and export again)")
        raise typer.Exit(EXIT_REFUSED)
