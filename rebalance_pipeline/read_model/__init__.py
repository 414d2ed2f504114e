"""The read model: every warehouse read behind what people look at, in one place.

The CLI (``rebalance report``, ``proposals``, ``show``), the HTML drift report
(``rebalance_pipeline.reporting``) and the review view (``rebalance_pipeline.review``) read
through these functions and format only; each statement is a file in ``sql/queries``.

- ``nights``: a night as a whole: its date, its run, funds by state, counts, top trades,
  failed checks, compliance exceptions, expired approvals;
- ``funds``: the funds table of the review view and one fund's page;
- ``proposals``: lists of proposals, one proposal in detail, rejection hints, where
  proposals stand now;
- ``queue``: the review view's exception queue;
- ``report``: what the HTML drift report reads beyond those (trend, decisions, backlog).
"""
