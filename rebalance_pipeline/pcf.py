"""Portfolio composition files: a night's ETF baskets as one CSV per fund.

``write_pcf(engine, as_of, root)`` writes ``<root>/<YYYY-MM-DD>/<fund_id>.csv`` for every
fund with a basket on the published night ``as_of`` (``rebalance.basket``): the creation and
redemption baskets of one creation unit, each security in whole lots and a ``CASH`` row (the
cash component), what an ETF publishes to its authorized participants before the next
day's open. Columns (UTF-8, header): as_of_date, fund_id, kind, security_id, quantity
(per creation unit; the amount for CASH), est_value (base currency), plus basket_value
(the kind's total: NAV per share x creation_unit).

The root is ``--out``, else ``$REBALANCE_PCF_DIR``, else ``$REBALANCE_HOME/pcf``. Each file
is replaced atomically (a reader sees the old file or the new one whole); writing a night
again writes the same bytes; a fund id that cannot be a file name is refused, not written.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from rebalance_pipeline.export import _SAFE_NAME, write_atomically
from rebalance_pipeline.warehouse import query_sql, read_frame

PCF_COLUMNS = ["as_of_date", "fund_id", "kind", "security_id", "quantity", "est_value", "basket_value"]


@dataclass
class PcfReport:
    as_of: dt.date
    root: Path
    files: list[Path] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)   # fund ids that cannot name a file

    def summary(self) -> str:
        text = f"{len(self.files)} PCF files for {self.as_of} in {self.root / self.as_of.isoformat()}"
        return text + (f"; refused fund ids: {', '.join(self.refused)}" if self.refused else "")


def write_pcf(engine: Engine, as_of: dt.date, root: Path) -> PcfReport:
    """One PCF file per fund with a basket on ``as_of``; the report lists them."""
    with engine.connect() as conn:
        rows = read_frame(conn, query_sql("night_baskets"), {"d": as_of})
    report = PcfReport(as_of, Path(root))
    if rows.empty:
        return report
    rows["quantity"] = pd.to_numeric(rows["quantity"]).astype("float64")
    rows["est_value"] = pd.to_numeric(rows["est_value"]).astype("float64")
    rows["basket_value"] = rows.groupby(["fund_id", "kind"])["est_value"].transform("sum").round(4)
    rows["as_of_date"] = as_of.isoformat()
    for fund_id, basket in rows.groupby("fund_id", sort=True):
        if not isinstance(fund_id, str) or not _SAFE_NAME.fullmatch(fund_id) or len(fund_id) > 250:
            report.refused.append(str(fund_id))
            continue
        text = io.StringIO()
        basket[PCF_COLUMNS].to_csv(text, index=False, lineterminator="\n", float_format="%.10g")
        path = report.root / as_of.isoformat() / f"{fund_id}.csv"
        write_atomically(path, text.getvalue().encode("utf-8"))
        report.files.append(path)
    return report
