-- An operator's word on an approved proposal: one execution row per trade, recorded on :night.
INSERT INTO rebalance.execution (as_of_date, proposal_id, security_id, side, quantity, price, status,
                                 source, note, recorded_by)
SELECT :night, t.proposal_id, t.security_id, t.side, t.quantity, NULL, :status, :source, :note, :by
FROM rebalance.proposal_trade t
WHERE t.proposal_id = :id AND t.as_of_date = :d
RETURNING recorded_at
