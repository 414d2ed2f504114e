"""Write (or, with --check, verify) the generated reference pages of the docs site.

    python docs/gen/generate.py          # write docs/reference/{inputs,tables,cli}.md
    python docs/gen/generate.py --check  # exit 1 and name the pages that are out of date

``make docs-gen`` writes them, ``make docs`` checks them before ``mkdocs build --strict``, and
tests/test_docs.py checks them too. Each page has one generator module beside this file:
rebalance_pipeline.inputs_doc (the landing files, from the input registry
rebalance_core.inputs), schema_tables.py (the warehouse tables, from sql/migrations) and
cli_reference.py (the command, from Typer).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]

import cli_reference  # noqa: E402
import schema_tables  # noqa: E402

from rebalance_pipeline.inputs_doc import render_markdown as render_inputs  # noqa: E402

PAGES = {
    "reference/inputs.md": render_inputs,
    "reference/tables.md": lambda: schema_tables.page(ROOT / "sql" / "migrations"),
    "reference/cli.md": lambda: cli_reference.page(ROOT),
}


def stale_pages(docs: Path = ROOT / "docs") -> list[str]:
    """The generated pages whose committed text differs from what the code generates now."""
    return [name for name, make in PAGES.items()
            if not (docs / name).exists() or (docs / name).read_text(encoding="utf-8") != make()]


def write_pages(docs: Path = ROOT / "docs") -> None:
    for name, make in PAGES.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(make(), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the pages are up to date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for name in stale:
            print(f"docs/{name} is out of date: run `make docs-gen`", file=sys.stderr)
        return 1 if stale else 0
    write_pages()
    return 0


if __name__ == "__main__":
    sys.exit(main())
