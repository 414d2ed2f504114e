-- Pending proposals of the date (:replaceable, rebalance_core.lifecycle.RERUN_REPLACEABLE) that tonight's run did not find again: replaced.
DELETE FROM rebalance.proposal p
WHERE p.as_of_date = :d
  AND p.status = ANY(CAST(:replaceable AS text[]))
  AND NOT EXISTS (SELECT 1 FROM rebalance.proposal_stage s WHERE s.run_id = :r AND s.proposal_id = p.proposal_id)
