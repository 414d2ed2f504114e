-- The night's compliance results with a finding (:d): a rule failing before or after, or a
-- proposal trimmed or blocked.
SELECT fund_id, proposal_id, rule, before_value, after_value, limit_value, passed, action, detail
FROM rebalance.compliance_result
WHERE as_of_date = :d AND (NOT passed OR action <> 'none' OR before_value > limit_value)
ORDER BY fund_id, rule
