-- The compliance rules a proposal (:id) was judged on.
SELECT rule, before_value, after_value, limit_value, passed, action, detail
FROM rebalance.compliance_result WHERE proposal_id = :id ORDER BY rule
