-- Proposals of earlier dates still waiting for a person (:from, rebalance_core.lifecycle.SUPERSEDABLE:
-- the states the lifecycle lets a later night supersede; :to its target) (a first approval included: a
-- proposal waiting for its second approval was sized on positions that tonight's night has
-- replaced, and tonight proposes anew from them) become superseded for every fund that has
-- a night tonight. The first approval stays on the row and in the audit.
UPDATE rebalance.proposal p
SET status = :to
WHERE p.status = ANY(CAST(:from AS text[]))
  AND p.as_of_date < :d
  AND EXISTS (SELECT 1 FROM rebalance.fund_drift f WHERE f.as_of_date = :d AND f.fund_id = p.fund_id)
