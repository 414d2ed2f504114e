"""``python -m rebalance_pipeline.cli``: the ``rebalance`` command."""

from rebalance_pipeline.cli import app

app()
