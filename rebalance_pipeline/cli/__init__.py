"""The ``rebalance`` command: the nightly run, reviews and reports without the scheduler.

Built on Typer (type-hinted commands, generated --help) with Rich tables for output. Tables
fit the terminal: lower-priority columns are left out on a narrow one, ids are never wrapped
or cut. Every figure is formatted by ``rebalance_pipeline.formatting`` (as in the review view
and the HTML report).

Exit codes:
  0  done;
  1  refused or not found: a decision that cannot be taken, an unknown proposal, a date with
     no published night, an export that refused a proposal (listed; the others went out);
  2  usage error: an unknown option or choice, a malformed date (the message says which);
  3  the night cannot run: a structural fault in the landing folder (the message names file,
     row and column), a missing landing root or date folder, a date that is not a trading
     day on the funds' calendars, no warehouse configured where Airflow runs a distributed
     executor, no migration in the installed package.

The commands live by concern: ``night`` (run, sample, simulate), ``review`` (proposals, show,
approve, reject, executed, export), ``reports`` (report, report-html, data-docs, pcf),
``warehouse`` (migrate, url, stop); ``common`` holds what they share, ``output`` the tables.
They are registered here, in the order ``rebalance --help`` lists them.
"""

from __future__ import annotations

from rebalance_pipeline.cli import night, reports, review, warehouse
from rebalance_pipeline.cli.common import EXIT_CANNOT_RUN, EXIT_REFUSED, EXIT_USAGE, _Typer

__all__ = ["EXIT_CANNOT_RUN", "EXIT_REFUSED", "EXIT_USAGE", "app"]

# Markdown help: paragraphs are re-wrapped to the terminal, `code` stands out.
app = _Typer(help="Rebalance: nightly drift and rebalancing proposals for funds.", no_args_is_help=True,
             pretty_exceptions_enable=False, rich_markup_mode="markdown",
             epilog="Exit codes: 0 done; 1 refused or not found (a decision, a proposal, a night); "
                    "2 usage error; 3 the night cannot run.")
warehouse_app = _Typer(help="The warehouse: migrations and the embedded server.", no_args_is_help=True,
                       rich_markup_mode="markdown")
app.add_typer(warehouse_app, name="warehouse")

app.command()(night.run)
app.command()(review.approve)
app.command()(review.reject)
app.command()(review.executed)
app.command()(reports.report)
app.command("report-html")(reports.report_html)
app.command("data-docs")(reports.data_docs_command)
app.command()(review.proposals)
app.command()(review.show)
app.command("export")(review.export_orders)
app.command("pcf")(reports.pcf)
app.command()(night.sample)
app.command()(night.simulate)
warehouse_app.command("migrate")(warehouse.warehouse_migrate)
warehouse_app.command("url")(warehouse.warehouse_url)
warehouse_app.command("stop")(warehouse.warehouse_stop)
