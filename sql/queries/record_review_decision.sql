-- A final decision (approved or rejected); the new state.
UPDATE rebalance.proposal SET status = :s, reviewed_by = :by, reviewed_at = now(), review_note = :note
WHERE proposal_id = :id
RETURNING proposal_id, fund_id, as_of_date, status, reviewed_by, reviewed_at, first_approved_by,
          first_approved_at, base_currency
