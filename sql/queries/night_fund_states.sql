-- What a fund's state depends on (rebalance_pipeline.fund_states), per fund of the night :d,
-- with its base currency and NAV: the CLI report counts funds and NAV per state from these.
SELECT status, breached, breach_count, trigger, policy, base_currency, nav
FROM rebalance.fund_summary WHERE as_of_date = :d
