"""The review view's routers: queue, funds, proposals, decisions, datadocs (see ``app.py``)."""
