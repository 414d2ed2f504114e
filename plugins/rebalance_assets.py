"""Assets shared by the Rebalance DAGs (one definition, imported by each DAG file).

``rebalance_nightly``'s publish task updates PROPOSALS_ASSET with the night's
``as_of_date`` in the event's extra; ``rebalance_reporting`` is scheduled on it.
"""

from __future__ import annotations

from airflow.sdk import Asset

PROPOSALS_ASSET = Asset(name="rebalance_proposals", uri="rebalance://warehouse/rebalance/proposal",
                        group="rebalance")
