-- The queue's headline, unfiltered: proposals waiting for a first and for a second approval
-- (any date), funds blocked on :d, funds whose holdings fail a compliance rule on :d, and the proposals of :d approved by rule at publish
-- (reviewed_by 'rule:auto') or by people, counted apart. With :queue false the first four
-- are not counted (NULL): an unfiltered page has them from its totals already.
SELECT
  CASE WHEN :queue THEN (SELECT count(*) FROM rebalance.proposal WHERE status = 'pending_review') END
    AS pending_review,
  CASE WHEN :queue THEN (SELECT count(*) FROM rebalance.proposal WHERE status = 'pending_second_approval') END
    AS pending_second_approval,
  CASE WHEN :queue THEN (SELECT count(*) FROM rebalance.fund_summary WHERE as_of_date = :d AND status = 'blocked') END
    AS blocked,
  CASE WHEN :queue THEN (SELECT count(DISTINCT fund_id) FROM rebalance.compliance_result
                         WHERE as_of_date = :d AND proposal_id IS NULL AND NOT passed) END
    AS compliance,
  (SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'
     AND reviewed_by = 'rule:auto') AS auto_approved,
  (SELECT count(*) FROM rebalance.proposal WHERE as_of_date = :d AND status = 'approved'
     AND reviewed_by <> 'rule:auto') AS approved_by_people
