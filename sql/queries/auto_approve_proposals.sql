-- Straight-through approval carried out: the proposals the lifecycle approved (:ids; see
-- auto_approve_candidates.sql and rebalance_pipeline.publish) become approved by the rule,
-- with an audit row each (channel 'rule'). Only rows still in the transition's source state
-- (:from) are touched; :to and :audit are the transition's target and audit decision.
WITH note AS (
    SELECT s.proposal_id, s.auto_approve_note
    FROM rebalance.proposal_stage s
    WHERE s.run_id = :r AND s.proposal_id = ANY(CAST(:ids AS text[]))
), approved AS (
    UPDATE rebalance.proposal p
    SET status = :to, reviewed_by = :by, reviewed_at = now(), review_note = n.auto_approve_note
    FROM note n
    WHERE p.proposal_id = n.proposal_id
      AND p.as_of_date = :d
      AND p.status = :from
    RETURNING p.proposal_id, p.reviewed_by, p.reviewed_at, p.review_note
)
INSERT INTO rebalance.proposal_review (proposal_id, decision, decided_by, decided_at, note, channel)
SELECT proposal_id, :audit, reviewed_by, reviewed_at, review_note, :channel
FROM approved
