"""One formatting policy for everything a person reads: the CLI, the review view, the HTML report.

- quantities: whole numbers without decimals (``24,298``); a fractional quantity keeps up to
  four decimals (``12.5``, ``0.3333``);
- money: two decimals with thousands separators (``1,234.50``, a zero cost ``0.00``), followed
  by its currency where one is known (``1,234.50 USD``);
- prices: two to four decimals (``101.25``, ``12.3456``);
- weights, drift, bands and turnover: percent of NAV with two decimals (``5.99%``), never a
  fraction;
- yes/no flags: ``yes`` or blank in tables (a mark, where a blank cell reads as "no"),
  ``yes``/``no`` when asked for;
- counts: whole numbers with thousands separators; hours with one decimal;
- dates ISO (``2014-01-06``), times to the minute with their zone.

Missing values render as ``BLANK`` in terminals and as "–" in HTML (``blank=``).
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from decimal import Decimal

import pandas as pd

from rebalance_core.schema import is_true_word

BLANK = ""

# Column name -> kind, for tables built from warehouse frames (the CLI's, the report's).
MONEY_COLUMNS = {"nav", "notional", "est_cost", "cash", "cash_before", "cash_after", "market_value",
                 "est_realized_gain", "est_realized_gain_short", "est_realized_gain_long", "flow", "amount",
                 "turnover_value", "unit_cost", "realized_gain", "costs", "traded_value", "start_nav", "end_nav",
                 "target_end_nav"}
PERCENT_COLUMNS = {"weight_before", "weight_after", "target_weight", "current_weight", "drift", "max_abs_drift",
                   "turnover", "cash_weight", "band_lower", "band_upper", "tracking_difference", "max_drift",
                   "return", "target_return"}
QUANTITY_COLUMNS = {"quantity"}
PRICE_COLUMNS = {"price", "close_price"}
BOOLEAN_COLUMNS = {"wash_sale", "breached", "success", "rebalanced", "tradable"}
COUNT_COLUMNS = {"trade_count", "breach_count", "funds", "failed_rows", "wash_sale_trades", "rebalances", "days",
                 "proposals", "orders", "order_count"}


def is_blank(value) -> bool:
    """No value: None, pandas' NA/NaT, or a NaN (float, numpy float, Decimal). The one test of
    the CLI, the review view and the HTML report."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value)


def records(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as dicts, each blank (``is_blank``) as None: what templates and JSON get."""
    return [{k: (None if is_blank(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]


def _number(value) -> float | None:
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (numbers.Number, Decimal)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def number(value, digits: int = 2, blank: str = BLANK) -> str:
    """A plain number with thousands separators and ``digits`` decimals."""
    x = _number(value)
    if x is None:
        return blank if is_blank(value) else str(value)
    return f"{x:,.{digits}f}"


def count(value, blank: str = BLANK) -> str:
    return number(value, 0, blank)


def quantity(value, blank: str = BLANK) -> str:
    """Shares: whole numbers without decimals; fractional ones with up to four."""
    x = _number(value)
    if x is None:
        return blank if is_blank(value) else str(value)
    if abs(x - round(x)) < 1e-9:
        return f"{round(x):,.0f}"
    return f"{x:,.4f}".rstrip("0").rstrip(".")


def money(value, currency: str | None = None, digits: int = 2, blank: str = BLANK) -> str:
    """An amount: two decimals (``0.00`` for nothing), then its currency when known."""
    x = _number(value)
    if x is None:
        return blank if is_blank(value) else str(value)
    if abs(x) < 0.5 * 10 ** -digits:
        x = 0.0  # no "-0.00"
    text = f"{x:,.{digits}f}"
    return f"{text} {currency}" if currency and not is_blank(currency) else text


def price(value, currency: str | None = None, blank: str = BLANK) -> str:
    """A unit price: two decimals, up to four when it has them."""
    x = _number(value)
    if x is None:
        return blank if is_blank(value) else str(value)
    text = f"{x:,.4f}"
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(2, "0")
    text = f"{whole}.{decimals}"
    return f"{text} {currency}" if currency and not is_blank(currency) else text


def percent(value, digits: int = 2, blank: str = BLANK) -> str:
    """A fraction of NAV as a percent: 0.0599 -> ``5.99%``."""
    x = _number(value)
    if x is None:
        return blank if is_blank(value) else str(value)
    if abs(x * 100) < 0.5 * 10 ** -digits:
        x = 0.0
    return f"{x * 100:.{digits}f}%"


def band(lower, upper, blank: str = BLANK) -> str:
    """A tolerance band as percents of NAV: ``3.00%–8.00%``."""
    if is_blank(lower) and is_blank(upper):
        return blank
    return f"{percent(lower, blank='…')}–{percent(upper, blank='…')}"


def yes_no(value, no: str = BLANK) -> str:
    """``yes`` for a true flag; ``no`` (blank by default: a table's empty cell) otherwise."""
    if is_blank(value):
        return BLANK
    if isinstance(value, str):
        value = is_true_word(value)
    return "yes" if bool(value) else no


def hours(value, blank: str = BLANK) -> str:
    return number(value, 1, blank)


def timestamp(value, blank: str = BLANK) -> str:
    if is_blank(value):
        return blank
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M %Z").strip()
    return str(value)


def date(value, blank: str = BLANK) -> str:
    if is_blank(value):
        return blank
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# Proposal statuses in words (the warehouse keeps the codes).
STATUS_LABELS = {"pending_review": "pending review", "pending_second_approval": "awaiting second approval",
                 "approved": "approved", "rejected": "rejected", "superseded": "superseded", "blocked": "blocked",
                 "compliance": "compliance exception", "executed": "executed", "expired": "expired"}


def status_label(status, blank: str = BLANK) -> str:
    """A proposal status in words: ``pending_second_approval`` -> ``awaiting second approval``."""
    if is_blank(status):
        return blank
    return STATUS_LABELS.get(str(status), str(status).replace("_", " "))


def kind_of(column: str) -> str | None:
    """How a warehouse column is shown: money, percent, quantity, price, boolean, count or None."""
    name = str(column)
    for kind, names in (("money", MONEY_COLUMNS), ("percent", PERCENT_COLUMNS), ("quantity", QUANTITY_COLUMNS),
                        ("price", PRICE_COLUMNS), ("boolean", BOOLEAN_COLUMNS), ("count", COUNT_COLUMNS)):
        if name in names:
            return kind
    return None


def cell(column: str, value, currency: str | None = None, blank: str = BLANK) -> str:
    """A table cell by its column's kind (unknown columns: dates ISO, numbers plain, text as is)."""
    kind = kind_of(column)
    if kind == "money":
        return money(value, currency, blank=blank)
    if kind == "percent":
        return percent(value, blank=blank)
    if kind == "quantity":
        return quantity(value, blank=blank)
    if kind == "price":
        return price(value, blank=blank)
    if kind == "boolean":
        return yes_no(value)
    if kind == "count":
        return count(value, blank=blank)
    if is_blank(value):
        return blank
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return timestamp(value, blank)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if isinstance(value, (float, Decimal)):
        return number(value, 2, blank)
    return str(value)


def is_numeric_kind(column: str) -> bool:
    return kind_of(column) in ("money", "percent", "quantity", "price", "count")


def jinja_filters(blank: str = "–") -> dict:
    """The same policy as Jinja2 filters (review view and HTML report)."""
    return {
        "money": lambda v, currency=None, digits=2: money(v, currency, digits, blank=blank),
        "percent": lambda v, digits=2: percent(v, digits, blank=blank),
        "quantity": lambda v: quantity(v, blank=blank),
        "price": lambda v, currency=None: price(v, currency, blank=blank),
        "count": lambda v: count(v, blank=blank),
        "hours": lambda v: hours(v, blank=blank),
        "yes_no": lambda v, no="no": yes_no(v, no),
        "band": lambda lower, upper: band(lower, upper, blank=blank),
        "timestamp": lambda v: timestamp(v, blank=blank),
        "number": lambda v, digits=2: number(v, digits, blank=blank),
        "status": lambda v: status_label(v, blank=blank),
    }


# ------------------------------------------------------------------ hints in words
def rejection_text(rejected: dict | None) -> str | None:
    """"<what> rejected on <date> by <who>: <note>" for a proposal whose fund and trigger had a
    proposal rejected before (the same trades, or others): a row of
    ``read_model.proposals.prior_rejections``."""
    if not rejected:
        return None
    from rebalance_pipeline.dates import SCHEDULE_TIMEZONE

    at = rejected.get("rejected_at")
    day = pd.Timestamp(at).tz_convert(SCHEDULE_TIMEZONE).date() if not is_blank(at) else "?"
    note = rejected.get("rejected_note")
    trigger = rejected.get("trigger")
    what = ("the same trades were" if rejected.get("same_trades")
            else f"a {trigger} proposal of this fund was" if trigger else "a proposal of this fund was")
    return (f"{what} rejected on {day} by {rejected.get('rejected_by')}"
            + (f": {note}" if note else " (no note)")
            + f" (proposal {rejected.get('rejected_id')} of {rejected.get('rejected_date')})")


def later_night_text(fund_id: str, later: dict | None) -> str | None:
    """What became of a fund after a proposal's night, in words (None: no later night): a row
    of ``read_model.proposals.later_night``."""
    if not later:
        return None
    day = later["as_of_date"]
    if later["status"] == "blocked":
        return f"fund {fund_id} blocked on {day}: {later['blocked_reason']}"
    if later["proposal_id"]:
        return f"newer proposal {later['proposal_id']} of {day} ({later['proposal_status'] or 'unknown'})"
    return f"fund {fund_id} in band on {day} (no newer proposal)"
