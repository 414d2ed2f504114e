-- Per (fund, trigger), its latest decided proposal (:decided, rebalance_core.lifecycle.DECIDED)
-- of the date or the :since days before it: whether that was a rejection, and by whom, when
-- and why, is what tonight's proposal of the same fund and trigger carries
-- (rebalance_core.lifecycle.rejection_hints). Read through proposal_decided_trigger_idx (V016).
SELECT DISTINCT ON (p.fund_id, p.trigger)
       p.fund_id, p.trigger, p.proposal_id, p.as_of_date, p.status, p.reviewed_by, p.reviewed_at, p.review_note
FROM rebalance.proposal p
WHERE p.status = ANY(CAST(:decided AS text[]))
  AND p.trigger IS NOT NULL
  AND p.as_of_date <= :d
  AND p.as_of_date >= :since
ORDER BY p.fund_id, p.trigger, p.as_of_date DESC, p.reviewed_at DESC, p.proposal_id
