-- A fund's latest night after a date (what became of it since a proposal of that date):
-- its state, blocked reason, and that night's proposal with its status. The review view,
-- the CLI's `show` and the decision's "superseded by" message read the same row.
SELECT s.as_of_date, s.status, s.blocked_reason, s.proposal_id, p.status AS proposal_status
FROM rebalance.fund_summary s
LEFT JOIN rebalance.proposal p ON p.proposal_id = s.proposal_id
WHERE s.fund_id = :f AND s.as_of_date > :d
ORDER BY s.as_of_date DESC
LIMIT 1
