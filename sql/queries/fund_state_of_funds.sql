-- The latest state before :d of funds the latest night did not decide (CAST(:funds AS text[])):
-- each fund's (fund_id, as_of_date) index, newest first.
SELECT DISTINCT ON (s.fund_id) s.as_of_date, s.fund_id, s.targets_key, s.model_change_since,
       s.awaiting_proposal_id, s.awaiting_proposal_date, s.awaiting_approved_at, s.awaiting_expires_on,
       s.closed_proposal_id, s.closed_outcome, s.closed_on, s.closed_by, s.compliance_failing, s.note
FROM rebalance.fund_state s
WHERE s.fund_id = ANY(CAST(:funds AS text[])) AND s.as_of_date < :d
ORDER BY s.fund_id, s.as_of_date DESC
