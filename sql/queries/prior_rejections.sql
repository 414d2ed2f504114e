-- Per given proposal, the rejection of its fund and trigger that it carries: stored with it by
-- its night (proposal.rejected_before_*, V016; rebalance_core.lifecycle.rejection_hints), else
-- (a proposal published before V016) the latest rejected proposal of the same fund and trigger
-- of an earlier night. same_trades: the rejected proposal's trades were these very trades (the
-- ids' last part is a hash of the trades). Proposals without one are left out.
SELECT p.proposal_id,
       coalesce(p.rejected_before_proposal_id, r.proposal_id) AS rejected_id,
       CASE WHEN p.rejected_before_proposal_id IS NOT NULL THEN p.rejected_before_date ELSE r.as_of_date END
           AS rejected_date,
       CASE WHEN p.rejected_before_proposal_id IS NOT NULL THEN p.rejected_before_by ELSE r.reviewed_by END
           AS rejected_by,
       CASE WHEN p.rejected_before_proposal_id IS NOT NULL THEN p.rejected_before_at ELSE r.reviewed_at END
           AS rejected_at,
       CASE WHEN p.rejected_before_proposal_id IS NOT NULL THEN p.rejected_before_note ELSE r.review_note END
           AS rejected_note,
       p.trigger,
       substring(coalesce(p.rejected_before_proposal_id, r.proposal_id) from '-([0-9a-f]{12})$')
           = substring(p.proposal_id from '-([0-9a-f]{12})$') AS same_trades
FROM rebalance.proposal p
LEFT JOIN LATERAL (
    SELECT o.proposal_id, o.as_of_date, o.reviewed_by, o.reviewed_at, o.review_note
    FROM rebalance.proposal o
    WHERE p.rejected_before_proposal_id IS NULL
      AND o.fund_id = p.fund_id AND o.trigger IS NOT DISTINCT FROM p.trigger
      AND o.as_of_date < p.as_of_date AND o.status = 'rejected'
    ORDER BY o.as_of_date DESC, o.reviewed_at DESC
    LIMIT 1
) r ON true
WHERE p.proposal_id = ANY(CAST(:ids AS text[]))
  AND coalesce(p.rejected_before_proposal_id, r.proposal_id) IS NOT NULL
ORDER BY p.proposal_id
