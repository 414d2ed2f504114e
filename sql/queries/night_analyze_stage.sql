-- Statistics of the stages the shards just filled, so the publish's joins are planned for their size.
SELECT rebalance.night_analyze_stage()
