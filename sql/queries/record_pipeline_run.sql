-- The run's row: inserted on its publish, its counts refreshed on a retried publish.
INSERT INTO rebalance.pipeline_run (run_id, as_of_date, started_at, funds, funds_proposed, funds_blocked, trades)
VALUES (:r, :d, :s, :f, :p, :b, :t)
ON CONFLICT (run_id) DO UPDATE SET
    published_at = now(), funds = EXCLUDED.funds, funds_proposed = EXCLUDED.funds_proposed,
    funds_blocked = EXCLUDED.funds_blocked, trades = EXCLUDED.trades
