-- Straight-through approval, inside the night's publish transaction: tonight's proposals of the
-- date that the core flagged (rebalance_core.approval; proposal_stage.auto_approve), with what
-- the lifecycle (rebalance_core.lifecycle.transition, event auto_approve) judges them on: their
-- status now (a reviewed proposal found again by a rerun is not pending), their gross notional
-- as stored and their fund's second_approval_notional in force on the date.
SELECT p.proposal_id, p.status, p.gross_notional, s.auto_approve_note,
       (SELECT f.second_approval_notional FROM rebalance.fund_ref f
        WHERE f.fund_id = p.fund_id AND f.valid_from <= p.as_of_date
        ORDER BY f.valid_from DESC, f.source_row DESC LIMIT 1) AS second_approval_notional
FROM rebalance.proposal p
JOIN rebalance.proposal_stage s ON s.proposal_id = p.proposal_id AND s.run_id = :r
WHERE p.as_of_date = :d
  AND s.auto_approve
