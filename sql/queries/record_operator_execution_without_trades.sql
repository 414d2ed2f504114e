-- An operator's word on an approved proposal without trades: one row says it is done.
INSERT INTO rebalance.execution (as_of_date, proposal_id, status, source, note, recorded_by)
VALUES (:night, :id, :status, :source, :note, :by)
RETURNING recorded_at
