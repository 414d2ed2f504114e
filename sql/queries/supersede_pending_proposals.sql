-- Proposals of earlier dates still waiting for a person (a first approval included: a
-- proposal waiting for its second approval was sized on positions that tonight's night has
-- replaced, and tonight proposes anew from them) become superseded for every fund that has
-- a night tonight. The first approval stays on the row and in the audit.
UPDATE rebalance.proposal p
SET status = 'superseded'
WHERE p.status IN ('pending_review', 'pending_second_approval')
  AND p.as_of_date < :d
  AND EXISTS (SELECT 1 FROM rebalance.fund_drift f WHERE f.as_of_date = :d AND f.fund_id = p.fund_id)
