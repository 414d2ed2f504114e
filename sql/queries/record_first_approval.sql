-- A first approval (four eyes: a second, by someone else, is still needed); the new state.
UPDATE rebalance.proposal SET status = :s, first_approved_by = :by, first_approved_at = now()
WHERE proposal_id = :id
RETURNING proposal_id, fund_id, as_of_date, status, reviewed_by, reviewed_at, first_approved_by,
          first_approved_at, base_currency
