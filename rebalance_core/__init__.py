"""Pure rebalancing domain logic: drift, bands, triggers, trade sizing.

Everything here is a function over pandas DataFrames with an explicit ``as_of`` date,
vectorized across all funds at once. No file, database, Airflow or Great Expectations
code lives here: the adapters in ``rebalance_pipeline`` load the frames and store results.
"""

from rebalance_core.drift import compute_drift, summarize_funds
from rebalance_core.faults import blocked_funds
from rebalance_core.proposals import apply_presets, propose
from rebalance_core.tax_lots import realize_gains, summarize_gains
from rebalance_core.triggers import resolve_flow_triggers, resolve_triggers

__all__ = ["apply_presets", "blocked_funds", "compute_drift", "propose", "realize_gains", "resolve_flow_triggers", "resolve_triggers",
           "summarize_funds", "summarize_gains"]
