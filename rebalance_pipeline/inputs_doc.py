"""The docs table of input files, rendered from the input registry (``rebalance_core.inputs``).

``python -m rebalance_pipeline.inputs_doc > docs/reference/inputs.md`` writes the committed
page; ``tests/test_input_registry.py`` fails when the page and the registry disagree.
"""

from __future__ import annotations

import sys

from rebalance_core.inputs import INPUTS, UNIVERSES, Column, InputFile

HEADER = """# Input files

<!-- Generated from rebalance_core/inputs.py by `python -m rebalance_pipeline.inputs_doc`: do not edit. -->

One landing folder per business date, `<landing>/<YYYY-MM-DD>/`, holds these files (CSV with a
header row, or Parquet with the same stem and columns). *Daily* files are the date's own rows;
*reference* files, when present, merge into the data in force by their key (a version replaces
the rows of the keys it lists; the other keys keep theirs) and stay in force on later dates.

Choice values are matched case-insensitively and stored in the spelling shown (`FIFO` is
`fifo`); an empty cell takes the column's default. A value outside the choices, or an id that
refers to nothing, blocks the funds the row touches, with file, row, column and value in
`fund_summary.blocked_reason` and `validation_result`.
"""


def _kind(column: Column) -> str:
    kind = column.kind
    if column.choices:
        kind = "one of " + ", ".join(f"`{c}`" for c in column.choices)
    if column.refers_to:
        kind += f"; a {column.refers_to} of {UNIVERSES[column.refers_to]}"
    return kind


def _file_row(spec: InputFile) -> str:
    when = spec.kind + (", required" if spec.required else ", optional")
    merge = f"by `{spec.merge_key}`" if spec.merge_key else ""
    field = f"`{spec.night_field}`" if spec.night_field else ""
    return (f"| [{spec.file_name}](#{spec.stem}) | {when} | {merge} | `rebalance.{spec.table}` "
            f"| {field} | {spec.suite or ''} | {spec.meaning} |")


def _columns(spec: InputFile) -> list[str]:
    lines = [f"### {spec.stem}", "", f"`{spec.file_name}`: {spec.meaning}.", ""]
    lines += [f"- {note}" for note in spec.notes]
    if spec.notes:
        lines.append("")
    lines += ["| column | required | type |", "|---|---|---|"]
    for column in spec.columns:
        required = "yes" if column.required else "optional"
        if column.key:
            required += ", non-empty"
        lines.append(f"| {column.name} | {required} | {_kind(column)} |")
    return [*lines, ""]


def render_markdown() -> str:
    """The whole page: a table of files, then each file's columns."""
    lines = [HEADER, "| file | when | merges | warehouse table | NightInputs field | validation suite | meaning |",
             "|---|---|---|---|---|---|---|"]
    lines += [_file_row(spec) for spec in INPUTS]
    lines += ["", "## Columns", ""]
    for spec in INPUTS:
        lines += _columns(spec)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
