-- Funds whose approval expired unexecuted on the night :d (fund_state), with the reason.
SELECT fund_id, closed_proposal_id AS proposal_id, note FROM rebalance.fund_state
WHERE as_of_date = :d AND closed_on = :d AND closed_outcome = 'expired'
ORDER BY fund_id
