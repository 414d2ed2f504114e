"""What every ``rebalance`` command shares: exit codes, the Typer classes, the consoles, the
options used by several commands, and opening the warehouse or finding a night.

Light on purpose: only Typer and Rich at import, so ``rebalance --help`` starts fast; each
command imports pandas, SQLAlchemy and the pipeline inside its function.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3

# Typer's help shows a value type after every option, "<bool>" for flags (--help, --quiet)
# too, and a required argument as {PROPOSAL_ID} in the usage line. Our command and group
# classes (Typer's documented ``cls`` extension point) show a flag with no value type (it
# takes none) and an argument as every usage line spells it: PROPOSAL_ID, [OPTIONAL].
class _NoTypeAfterFlags:
    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""   # the help's type column shows the metavar where there is one
        return params


class _Command(_NoTypeAfterFlags, typer.core.TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar if param.metavar is not None else param.name
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class _Group(_NoTypeAfterFlags, typer.core.TyperGroup):
    pass


class _Typer(typer.Typer):
    """``typer.Typer`` whose commands and groups are the classes above."""

    def __init__(self, **kwargs):
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


console = Console()
err = Console(stderr=True, soft_wrap=True)

DATE_FORMATS = ["%Y-%m-%d"]
DateOption = Annotated[dt.datetime, typer.Option("--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD",
                                                 help="business date")]
OptionalDate = Annotated[dt.datetime | None, typer.Option(
    "--date", formats=DATE_FORMATS, metavar="YYYY-MM-DD", help="business date (default: the latest night)")]
ProposalId = Annotated[str, typer.Argument(metavar="PROPOSAL_ID",
                                           help="e.g. FUND00010-20140106-036adb72683f (rebalance proposals)")]


class ProposalStatus(enum.StrEnum):
    pending_review = "pending_review"
    pending_second_approval = "pending_second_approval"
    approved = "approved"
    rejected = "rejected"
    superseded = "superseded"


def open_engine(migrate: bool = True):
    """The warehouse (migrated to this version unless ``migrate=False``); exits 3 without one."""
    from rebalance_pipeline import settings, warehouse

    try:
        engine = warehouse.get_engine()
    except settings.WarehouseNotConfigured as exc:   # a Celery/Kubernetes worker without a warehouse URL
        err.print(f"[bold red]no warehouse:[/bold red] {escape(str(exc))}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    if migrate:
        try:
            warehouse.migrate(engine)
        except warehouse.MigrationsNotFound as exc:   # an install without its SQL
            err.print(f"[bold red]cannot migrate:[/bold red] {escape(str(exc))}")
            raise typer.Exit(EXIT_CANNOT_RUN) from None
    return engine


def plural(count: int, noun: str) -> str:
    """``1 trade``, ``2,000 trades``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def chosen_night(engine, date: dt.datetime | None) -> dt.date:
    """The night asked for (or the latest); exits 1 naming the latest night when there is none."""
    from rebalance_pipeline.read_model import nights

    latest = nights.latest_date(engine)
    if latest is None:
        err.print("nothing published yet: run `rebalance run` first")
        raise typer.Exit(EXIT_REFUSED)
    if date is None:
        return latest
    as_of = date.date()
    if not nights.night_exists(engine, as_of):
        earlier = nights.latest_date(engine, as_of)
        err.print(f"[bold red]no night published for {as_of}[/bold red] ({as_of:%A}); the latest night is {latest}"
                  + (f", the nearest earlier one {earlier}" if earlier not in (None, latest) else ""))
        raise typer.Exit(EXIT_REFUSED)
    return as_of
