"""The review view's names for the read model (``rebalance_pipeline.read_model``): the queue,
the funds table, one fund, one proposal. The view, the CLI and the HTML report read the same
functions; nothing is queried here."""

from __future__ import annotations

from rebalance_core.schema import PROPOSAL_STATUSES
from rebalance_pipeline.formatting import later_night_text, rejection_text
from rebalance_pipeline.read_model.funds import (
    FUND_STATUSES,
    SORT_KEYS,
    FundFilter,
    FundPage,
    fund_baskets,
    fund_class_drift,
    fund_drift,
    fund_night,
    fund_proposals,
    fund_tracking,
    list_funds,
)
from rebalance_pipeline.read_model.nights import business_dates
from rebalance_pipeline.read_model.proposals import (
    ProposalDetail,
    compliance_results,
    last_review,
    later_night,
    prior_rejections,
    proposal_detail,
    proposal_states,
)
from rebalance_pipeline.read_model.queue import (
    FUND_EXCEPTIONS,
    QUEUE_PAGE_SIZE,
    QUEUE_STATUSES,
    QueueFilter,
    QueuePage,
    gross_by_currency,
    queue_page,
    queue_proposals,
    queue_totals,
)

__all__ = ["FUND_EXCEPTIONS", "FUND_STATUSES", "PROPOSAL_STATUSES", "QUEUE_PAGE_SIZE", "QUEUE_STATUSES",
           "SORT_KEYS", "FundFilter", "FundPage", "ProposalDetail", "QueueFilter", "QueuePage", "business_dates",
           "compliance_results", "fund_baskets", "fund_class_drift", "fund_drift", "fund_night", "fund_proposals",
           "fund_tracking", "gross_by_currency", "last_review", "later_night", "later_night_text", "list_funds",
           "prior_rejections", "proposal_detail", "proposal_states", "queue_page", "queue_proposals",
           "queue_totals", "rejection_text"]
