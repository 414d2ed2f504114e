"""``rebalance warehouse migrate|url|stop``: the schema and the embedded server."""

from __future__ import annotations

import typer
from rich.markup import escape

from rebalance_pipeline.cli.common import EXIT_CANNOT_RUN, console, err


def warehouse_migrate() -> None:
    """Create or upgrade the schema to the latest version (views and functions re-declared).

    Exits 3 when the package holds no migration (an incomplete install): nothing migrated.
    """
    from rebalance_pipeline import warehouse

    engine = warehouse.get_engine()
    try:
        applied = warehouse.apply_migrations(engine)
    except warehouse.MigrationsNotFound as exc:
        err.print(f"[bold red]cannot migrate:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    done = [f"V{v:03d}" for v in applied.versions] + [f"R__{name}" for name in applied.repeatables]
    console.print(f"schema at version {warehouse.current_version(engine)}"
                  + (f" (applied {', '.join(done)})" if done else " (up to date)"), soft_wrap=True)


def warehouse_url() -> None:
    """Print the warehouse's SQLAlchemy URL (starting the embedded server if it is the default)."""
    from rebalance_pipeline import warehouse

    console.print(warehouse.get_engine().url.render_as_string(hide_password=True), soft_wrap=True)


def warehouse_stop() -> None:
    """Stop the embedded server (no effect on an external warehouse)."""
    from rebalance_pipeline import embedded

    console.print("stopped" if embedded.stop() else "not running")
