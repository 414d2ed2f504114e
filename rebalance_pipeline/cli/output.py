"""Tables on the terminal: a Rich table that fits its width, and "... and N more" under a cut list.

Columns are labelled and every value formatted by ``rebalance_pipeline.formatting`` (as in the
review view and the HTML report). Imported by the commands inside their functions (it brings
pandas with ``formatting``), so ``rebalance --help`` does not load it.
"""

from __future__ import annotations

import pandas as pd
from rich.markup import escape
from rich.table import Table

from rebalance_pipeline import formatting as fmt
from rebalance_pipeline.cli.common import console

# Wrapping free text (at spaces); every other column stays on one line.
TEXT_COLUMNS = {"blocked_reason", "detail", "note", "notes", "file", "review_note", "came_back"}
LABELS = {"as_of_date": "date", "max_abs_drift": "max drift", "breach_count": "breaches",
          "proposal_status": "proposal", "trade_count": "trades", "est_cost": "est. cost",
          "est_realized_gain": "realized gain", "wash_sale_trades": "wash sales", "wash_sale": "wash sale",
          "weight_before": "before", "weight_after": "after", "target_weight": "target",
          "reviewed_by": "reviewed by", "blocked_reason": "reason", "security_id": "security",
          "failed_rows": "failed rows", "decided_by": "by", "decided_at": "at", "tracking_difference": "tracking diff",
          "decision": "decision", "fund_id": "fund", "proposal_id": "proposal id"}


def print_more(shown: int, total: int, where: str) -> None:
    """Under a cut list: how many more there are and where to see them."""
    if total > shown:
        console.print(f"[dim]… and {total - shown:,} more (of {total:,}): {where}[/dim]", soft_wrap=True,
                      highlight=False)


def print_table(title: str, frame: pd.DataFrame, drop: tuple[str, ...] = (), currency: str | None = None) -> None:
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
