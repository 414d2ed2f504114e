-- The night's funds (in status :st, when given) with their proposal, largest drift first,
-- at most :n (NULL: all): the CLI report's proposed and blocked funds.
SELECT s.fund_id, s.policy, s.nav, s.max_abs_drift, s.breach_count, s.trigger, s.status,
       s.blocked_reason, s.proposal_id, p.status AS proposal_status, p.turnover
FROM rebalance.fund_summary s LEFT JOIN rebalance.proposal p USING (proposal_id)
WHERE s.as_of_date = :d AND (CAST(:st AS text) IS NULL OR s.status = :st)
ORDER BY s.max_abs_drift DESC NULLS LAST, s.fund_id
LIMIT :n
