"""The docs site: generated reference pages up to date, the schema parser true to the database,
and the site building strictly (broken links, missing anchors or nav files fail it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]


def _generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "gen" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_up_to_date():
    generate = _generate()
    assert set(generate.PAGES) == {"reference/inputs.md", "reference/tables.md", "reference/cli.md"}
    assert generate.stale_pages() == [], "run `make docs-gen` and commit the pages"


def test_input_page_lists_every_landing_file_and_column():
    from rebalance_pipeline.landing import SPECS

    page = (ROOT / "docs" / "reference" / "inputs.md").read_text(encoding="utf-8")
    for spec in SPECS.values():
        assert f"### {spec.stem}\n" in page
        section = page.split(f"### {spec.stem}\n", 1)[1].split("\n### ", 1)[0]
        for column in spec.all_columns:
            assert f"| {column} |" in section, (spec.stem, column)


def test_schema_parser_reads_tables_columns_and_comments(tmp_path):
    schema_tables = _generate().schema_tables
    (tmp_path / "V001__a.sql").write_text(
        "-- V001: header, not a table's description\n\n"
        "-- What t is for.\n"
        "CREATE TABLE rebalance.t (\n"
        "    a  date NOT NULL,      -- the date (with a comma, and 'quotes')\n"
        "    b  numeric(28, 6),\n"
        "    c  text CHECK (c IN ('x', 'y')), -- a choice\n"
        "    PRIMARY KEY (a)\n"
        ");\n"
        "CREATE FUNCTION rebalance.f() RETURNS void LANGUAGE plpgsql AS $$\n"
        "BEGIN CREATE TABLE rebalance.not_parsed (x int); END $$;\n", encoding="utf-8")
    (tmp_path / "V002__b.sql").write_text(
        "ALTER TABLE rebalance.t\n"
        "    ADD COLUMN d boolean NOT NULL DEFAULT false,   -- added later\n"
        "    DROP COLUMN b;\n"
        "CREATE TABLE rebalance.u (LIKE rebalance.t INCLUDING DEFAULTS);\n"
        "CREATE TABLE rebalance.t_default PARTITION OF rebalance.t DEFAULT;\n"
        "CREATE VIEW rebalance.v AS SELECT 1;\n"
        "COMMENT ON VIEW rebalance.v IS 'One ' 'view''s comment.';\n", encoding="utf-8")
    schema = schema_tables.parse(tmp_path)
    assert sorted(schema.tables) == ["t", "u"]
    t = schema.tables["t"]
    assert t.comment == "What t is for."
    assert [(c.name, c.type, c.comment, c.since) for c in t.columns] == [
        ("a", "date", "the date (with a comma, and 'quotes')", "V001"),
        ("c", "text", "a choice", "V001"),
        ("d", "boolean", "added later", "V002"),
    ]
    assert [c.name for c in schema.tables["u"].columns] == ["a", "c", "d"]
    assert schema.views["v"].comment == "One view's comment."


def test_table_reference_matches_a_migrated_warehouse(engine):
    """The static parse of sql/migrations lists exactly the tables and columns PostgreSQL has."""
    parsed = _generate().schema_tables.parse(ROOT / "sql" / "migrations")
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.relname, a.attname FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = 'rebalance' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND c.relname NOT IN ('schema_migration', 'schema_repeatable') ORDER BY c.relname, a.attnum")).all()
    actual: dict[str, list[str]] = {}
    for table, column in rows:
        actual.setdefault(table, []).append(column)
    assert {name: [c.name for c in t.columns] for name, t in parsed.tables.items()} == actual


def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "operations" / "runbook" / "index.html").exists()
