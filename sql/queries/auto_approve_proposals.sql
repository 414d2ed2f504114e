-- Straight-through approval, inside the night's publish transaction: tonight's pending
-- proposals of the date that the core flagged (rebalance_core.approval; proposal_stage.auto_approve)
-- are approved by the rule, with an audit row each (channel 'rule'). Not when the fund already
-- has another approved proposal of this date or later (a rerun that finds different trades beside
-- an approved proposal): approving both would send the same drift to the market twice, so
-- that one waits for a person, as warehouse.decide would insist. Reviewed proposals are never
-- touched (only pending_review rows are updated).
WITH chosen AS (
    SELECT p.proposal_id, s.auto_approve_note
    FROM rebalance.proposal p
    JOIN rebalance.proposal_stage s ON s.proposal_id = p.proposal_id AND s.run_id = :r
    WHERE p.as_of_date = :d
      AND p.status = 'pending_review'
      AND s.auto_approve
      AND NOT EXISTS (SELECT 1 FROM rebalance.proposal o
                      WHERE o.fund_id = p.fund_id AND o.status = 'approved' AND o.as_of_date >= p.as_of_date
                        AND o.proposal_id <> p.proposal_id)
), approved AS (
    UPDATE rebalance.proposal p
    SET status = 'approved', reviewed_by = :by, reviewed_at = now(), review_note = c.auto_approve_note
    FROM chosen c
    WHERE p.proposal_id = c.proposal_id
    RETURNING p.proposal_id, p.reviewed_by, p.reviewed_at, p.review_note
)
INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, note, channel)
SELECT proposal_id, 'approved', reviewed_by, reviewed_at, review_note, :channel
FROM approved
