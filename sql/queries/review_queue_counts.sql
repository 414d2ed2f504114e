-- The queue's headline, unfiltered: proposals waiting for a first and for a second approval
-- (any date), funds blocked on :d, and the proposals of :d approved by rule at publish
-- (reviewed_by 'rule:auto') or by people, counted apart.
SELECT
  (SELECT count(*) FROM rebalance.proposal WHERE status = 'pending_review') AS pending_review,
  (SELECT count(*) FROM rebalance.proposal WHERE status = 'pending_second_approval') AS pending_second_approval,
  (SELECT count(*) FROM rebalance.fund_summary WHERE as_of_date = :d AND status = 'blocked') AS blocked,
  (SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'
     AND reviewed_by = 'rule:auto') AS auto_approved,
  (SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'
     AND reviewed_by <> 'rule:auto') AS approved_by_people
