"""The reference page of the warehouse tables (docs/reference/tables.md), read from the migrations.

No database: the ``sql/migrations/V*.sql`` files are parsed statically, in version order.
Each table's columns come from its CREATE TABLE (``LIKE`` copies another table's) and the
ALTER TABLE ... ADD / DROP COLUMN statements after it; a column's description is the ``--``
comment on its line; a table's description is its ``COMMENT ON TABLE`` when there is one,
else the comment lines right above its CREATE TABLE; views are described by their
``COMMENT ON VIEW``. Bodies of functions and DO blocks (dollar-quoted) are dynamic SQL the
parser does not run, with one exception it knows: V007's block that adds ``shard`` to every
table registered in ``rebalance.night_table`` (the tables a night writes by partition).
``tests/test_docs.py`` checks the result against a migrated database's catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = "rebalance"

# Tables of the data contract's Output section (/work/shared/spec/CONTRACT.md).
CONTRACT_TABLES = ("fund_drift", "fund_summary", "proposal", "proposal_trade", "validation_result")
# The machinery of a night's publish and of the Airflow tasks: nobody reads them for data.
INTERNAL_TABLES = ("night_table", "night_leaf", "night_partition", "night_shard", "proposal_stage", "run_artifact")
# Tables whose comment above their CREATE TABLE is not a description of the table today: V001's
# note on the whole reference history sits above fund_ref, and its note on proposal_trade's
# write path (no foreign key, written by publish alone) predates the shards' leaves of V007.
NOT_DESCRIPTIONS = ("fund_ref", "proposal_trade")
# Column comments a later migration outgrew, with what holds today.
COLUMN_NOTES = {
    ("proposal_review", "channel"): "cli, ui, api; rule: approved by the fund's straight-through rule at publish (V011)",
}
SHARD_COMMENT = ("the shard of funds that wrote the row (-1: rows of the whole night, or rows a rerun "
                 "carried over); added by V007")


@dataclass
class Column:
    name: str
    type: str
    comment: str
    since: str


@dataclass
class Table:
    name: str
    since: str
    columns: list[Column] = field(default_factory=list)
    comment: str = ""
    partitioned: bool = False


@dataclass
class View:
    name: str
    versions: list[str] = field(default_factory=list)
    comment: str = ""


@dataclass
class Schema:
    tables: dict[str, Table] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)
    night_tables: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ lexing
def _statements(text: str) -> list[str]:
    """The file's statements (raw, comments kept), split at ``;`` outside strings, comments
    and dollar quotes."""
    out, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if c == "'":
            i += 1
            while i < n:
                if text[i] == "'" and text.startswith("''", i):
                    i += 2
                    continue
                if text[i] == "'":
                    break
                i += 1
        elif c == "$":
            m = re.match(r"\$[A-Za-z_]*\$", text[i:])
            if m:
                end = text.find(m.group(0), i + len(m.group(0)))
                i = n if end < 0 else end + len(m.group(0))
                continue
        elif c == ";":
            out.append(text[start:i])
            start = i + 1
        i += 1
    if text[start:].strip():
        out.append(text[start:])
    return out


def _items(body: str) -> list[tuple[str, str]]:
    """(code, comment) of each item of a comma list at depth 0; a ``--`` comment belongs to the
    item whose line it ends (after the comma too)."""
    items: list[list[str]] = [["", ""]]
    ended_line = -1
    depth, line, i, n = 0, 0, 0, len(body)
    while i < n:
        c = body[i]
        if body.startswith("--", i):
            end = body.find("\n", i)
            end = n if end < 0 else end
            text = body[i + 2:end].strip()
            target = items[-2] if not items[-1][0].strip() and ended_line == line and len(items) > 1 else items[-1]
            target[1] = f"{target[1]} {text}".strip()
            i = end
            continue
        if c == "\n":
            line += 1
        elif c == "'":
            j = body.find("'", i + 1)
            j = n - 1 if j < 0 else j
            items[-1][0] += body[i:j + 1]
            i = j + 1
            continue
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(["", ""])
            ended_line = line
            i += 1
            continue
        items[-1][0] += c
        i += 1
    return [(" ".join(code.split()), comment) for code, comment in items if code.strip()]


def _code(raw: str) -> str:
    """A statement without its comments, on one line."""
    kept = [line.split("--", 1)[0] if "'" not in line.split("--", 1)[0] else line for line in raw.splitlines()]
    return " ".join(" ".join(kept).split())


def _leading_comment(raw: str) -> str:
    """The comment lines right above the statement's code (no blank line between, none above a
    section rule)."""
    lines = raw.strip("\n").splitlines()
    block: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("--"):
            block.append(stripped[2:].strip())
        elif not stripped:
            block = []
        else:
            break
    # Only the lines after a section rule (`-- ---- outputs`) are the comment.
    rules = [i for i, b in enumerate(block) if re.fullmatch(r"-+.*", b)]
    if rules:
        block = block[rules[-1] + 1:]
    return " ".join(block).strip()


def _literal(code: str) -> str:
    """The concatenated string literals after IS."""
    tail = code.split(" IS ", 1)[1]
    return "".join(s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", tail))


_CONSTRAINT = re.compile(r"^(PRIMARY KEY|UNIQUE|CHECK|FOREIGN KEY|CONSTRAINT|EXCLUDE)\b", re.I)
_TYPE_END = re.compile(r"\s+(NOT NULL|NULL|DEFAULT|CHECK|PRIMARY KEY|REFERENCES|UNIQUE|GENERATED|COLLATE)\b.*$", re.I)


def _column(code: str, comment: str, since: str) -> Column:
    name, _, rest = code.partition(" ")
    return Column(name.strip('"'), _TYPE_END.sub("", rest).strip(), comment, since)


def _body(raw: str) -> str:
    """The text between the first ``(`` after the table name and its matching ``)``."""
    m = re.search(r"TABLE\s+(IF NOT EXISTS\s+)?[\w.]+\s*\(", raw, re.I)
    start = m.end()
    depth, i = 1, start
    while depth:
        if raw.startswith("--", i):
            i = raw.find("\n", i)
            continue
        depth += {"(": 1, ")": -1}.get(raw[i], 0)
        i += 1
    return raw[start:i - 1]


def _name(qualified: str) -> str:
    return qualified.split(".")[-1].strip('"')


# ------------------------------------------------------------------ parsing
def parse(migrations: Path) -> Schema:
    schema = Schema()
    for path in sorted(migrations.glob("V*__*.sql"), key=lambda p: int(re.match(r"V(\d+)", p.name).group(1))):
        version = path.name.split("__")[0]
        for raw in _statements(path.read_text(encoding="utf-8")):
            _apply(schema, version, raw)
    return schema


def _apply(schema: Schema, version: str, raw: str) -> None:
    code = _code(raw)
    upper = code.upper()
    tables = schema.tables
    if m := re.match(r"CREATE (UNLOGGED )?TABLE (IF NOT EXISTS )?([\w.]+)", code, re.I):
        name = _name(m.group(3))
        if not m.group(3).startswith(SCHEMA + ".") or " PARTITION OF " in upper or name in tables:
            return
        comment = "" if name in NOT_DESCRIPTIONS else _leading_comment(raw)
        table = Table(name, version, comment=comment, partitioned=" PARTITION BY " in upper)
        for item, comment in _items(_body(raw)):
            if like := re.match(r"LIKE ([\w.]+)", item, re.I):
                source = tables[_name(like.group(1))]
                table.columns += [Column(c.name, c.type, c.comment, version) for c in source.columns]
            elif not _CONSTRAINT.match(item):
                table.columns.append(_column(item, comment, version))
        tables[name] = table
    elif m := re.match(r"ALTER TABLE (ONLY )?([\w.]+) (.*)", code, re.I):
        table = tables.get(_name(m.group(2)))
        if table is None:
            return
        rest = raw[re.search(r"ALTER\s+TABLE\s+(ONLY\s+)?[\w.]+", raw, re.I).end():]
        for item, comment in _items(rest):
            if add := re.match(r"ADD COLUMN (IF NOT EXISTS )?(.*)", item, re.I):
                table.columns.append(_column(add.group(2), comment, version))
            elif drop := re.match(r"DROP COLUMN (IF EXISTS )?([\w\"]+)", item, re.I):
                table.columns = [c for c in table.columns if c.name != drop.group(2).strip('"')]
    elif m := re.match(r"DROP TABLE (IF EXISTS )?([\w.]+)", code, re.I):
        tables.pop(_name(m.group(2)), None)
    elif m := re.match(r"CREATE (OR REPLACE )?VIEW ([\w.]+)", code, re.I):
        view = schema.views.setdefault(_name(m.group(2)), View(_name(m.group(2))))
        view.versions.append(version)
    elif m := re.match(r"DROP VIEW (IF EXISTS )?([\w.]+)", code, re.I):
        pass   # dropped to be recreated (V007): keep its history
    elif m := re.match(r"COMMENT ON (TABLE|VIEW|COLUMN) ([\w.]+) IS", code, re.I):
        kind, target = m.group(1).upper(), m.group(2)
        text = _literal(code)
        if kind == "VIEW" and _name(target) in schema.views:
            schema.views[_name(target)].comment = text
        elif kind == "TABLE" and _name(target) in tables:
            tables[_name(target)].comment = text
        elif kind == "COLUMN":
            table_name, column_name = target.split(".")[-2:]
            for column in tables.get(table_name, Table(table_name, version)).columns:
                if column.name == column_name:
                    column.comment = text
    elif re.match(r"INSERT INTO [\w.]*night_table VALUES", code, re.I):
        schema.night_tables += re.findall(r"\(\s*'(\w+)'", code)
    elif upper.startswith("DO ") and "NIGHT_TABLE" in upper and "ADD COLUMN SHARD" in upper:
        # V007: every table registered so far becomes partitioned by date, with a shard column.
        for name in schema.night_tables:
            table = tables[name]
            table.partitioned = True
            if not any(c.name == "shard" for c in table.columns):
                table.columns.append(Column("shard", "integer", SHARD_COMMENT, version))


# ------------------------------------------------------------------ the page
def _group(table: Table) -> str:
    if table.name in CONTRACT_TABLES:
        return "contract"
    if table.name in INTERNAL_TABLES:
        return "internal"
    if table.name.endswith("_ref"):
        return "reference"
    if any(c.name == "source_row" for c in table.columns):
        return "input"
    return "output"


GROUPS = (
    ("contract", "Outputs of the data contract",
     "The tables the contract names; every column it lists is here, with more."),
    ("output", "More outputs",
     "What the extensions add: class drift, tax lots of trades, tracking, compliance, baskets, the "
     "review audit, the export ledger, runs and Great Expectations results."),
    ("input", "Daily inputs as received",
     "One row per row of a landing file (`source_row` is its spreadsheet row number)."),
    ("reference", "Reference history",
     "Reference files as received, each version from its `valid_from` date on."),
    ("internal", "Internal",
     "The machinery of a night's publish and of the Airflow tasks; nobody reads them for data."),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(schema: Schema) -> str:
    lines = [
        "# Warehouse tables",
        "",
        "<!-- Generated by docs/gen/generate.py from sql/migrations/*.sql; do not edit by hand: "
        "run `make docs-gen`. -->",
        "",
        f"Schema `{SCHEMA}`, as the migrations in `sql/migrations/` leave it (read statically, no database). "
        "A column's description is the comment on its line in the migration, a view's its "
        "`COMMENT ON VIEW` (`\\d+ rebalance.<view>` shows it too); *since* is the migration that added it. "
        "Tables marked *partitioned* are partitioned by date, and each date by `shard` "
        "(see [shards and publish](../concepts/shards-and-publish.md)); downstream jobs read the "
        "[views](#views).",
        "",
    ]
    for key, title, intro in GROUPS:
        members = sorted((t for t in schema.tables.values() if _group(t) == key), key=lambda t: t.name)
        if not members:
            continue
        lines += [f"## {title}", "", intro, ""]
        for table in members:
            flags = ", partitioned" if table.partitioned else ""
            lines += [f"### {table.name}", "", f"*Since {table.since}{flags}.*"
                      + (f" {_cell(table.comment)}" if table.comment else ""), "",
                      "| column | type | since | description |", "|---|---|---|---|"]
            for c in table.columns:
                lines.append(f"| `{c.name}` | {_cell(c.type)} | {c.since} | {_cell(c.comment)} |")
            lines.append("")
    lines += ["## Views", "",
              "Reporting jobs read these (grants: `rebalance_reader`); see "
              "[reporting](../operations/reporting.md).", "",
              "| view | defined in | what it is |", "|---|---|---|"]
    for view in sorted(schema.views.values(), key=lambda v: v.name):
        lines.append(f"| `{view.name}` | {', '.join(view.versions)} | {_cell(view.comment)} |")
    return "\n".join(lines).rstrip() + "\n"


def page(migrations: Path) -> str:
    schema = parse(migrations)
    for (table, column), note in COLUMN_NOTES.items():
        for c in schema.tables[table].columns:
            if c.name == column:
                c.comment = note
    return render(schema)
