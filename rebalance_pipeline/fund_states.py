"""What state a fund is in on a night: one definition for the CLI, the review view and the HTML report.

``fund_summary.status`` says what the nightly did (``proposed``, ``in_band``, ``blocked``). A
reader also needs to tell apart, among the ``in_band`` funds, those whose holdings breach
their bands:

- ``waiting``: breached, but the fund's policy (calendar or hybrid) trades only on its
  calendar dates and none was due: no trigger yet;
- ``breached``: breached with no proposal for another reason (e.g. every trade below its
  minimum);
- ``in_band``: nothing breaches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FUND_STATES = ("proposed", "waiting", "breached", "in_band", "blocked")
STATE_LABELS = {"proposed": "proposed", "waiting": "breached, waits for its calendar date",
                "breached": "breached, no proposal", "in_band": "in band", "blocked": "blocked"}
# Short forms for badges and narrow tables.
STATE_BADGES = {"proposed": "proposed", "waiting": "breach, not due", "breached": "breach, no trade",
                "in_band": "in band", "blocked": "blocked"}
CALENDAR_POLICIES = ("calendar", "hybrid")
STATE_COLUMNS = ("status", "breached", "breach_count", "trigger", "policy")


def fund_states(funds: pd.DataFrame) -> pd.Series:
    """Each fund's state (``FUND_STATES``) from its ``fund_summary`` row (``STATE_COLUMNS``)."""
    if funds.empty:
        return pd.Series([], index=funds.index, dtype=object)
    status = funds["status"].astype(object)
    flagged = funds["breached"] if "breached" in funds else pd.Series(False, index=funds.index)
    breached = (flagged.astype("boolean").fillna(False).astype(bool)
                | (pd.to_numeric(funds["breach_count"], errors="coerce").fillna(0) > 0))
    untriggered = funds["trigger"].isna() & funds["policy"].isin(CALENDAR_POLICIES)
    in_band_breached = (status == "in_band") & breached
    state = np.select([in_band_breached & untriggered, in_band_breached], ["waiting", "breached"], default=status)
    return pd.Series(state, index=funds.index, dtype=object)

