-- Compliance exceptions of the date: the rules a fund's HOLDINGS fail tonight
-- (compliance_result rows with a NULL proposal_id, V016), one row per fund and rule, largest
-- excess first. The CLI report and the HTML report read this; the review queue groups them
-- per fund (review_queue_compliance.sql).
SELECT c.fund_id, c.rule, c.before_value AS value, c.limit_value, c.detail
FROM rebalance.compliance_result c
WHERE c.as_of_date = :d AND c.proposal_id IS NULL AND NOT c.passed
ORDER BY c.before_value - c.limit_value DESC, c.fund_id, c.rule
