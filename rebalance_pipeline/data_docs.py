"""Great Expectations Data Docs of each night's validation: why a fund is blocked, in the form
GX users expect.

Where the results come from. The suites run at validation time on an ephemeral GX context
(``rebalance_pipeline.validation``), once a night for the night-level suites and once per
shard for the others, and the context is gone when the task ends. So each run of a suite
keeps its GX validation result as GX serializes it (``ExpectationSuiteValidationResult
.to_json_dict()``, the unexpected rows cut to the first ``KEEP_ROWS``: a broken file must not
store millions of rows twice), and the night's publish writes them, in its one transaction,
to ``rebalance.validation_gx_result`` beside the per-check summary in ``validation_result``.
A site therefore always shows the results of the night that is published, the same that
blocked the funds, and can be rebuilt any time from the warehouse (no re-run of the suites
over stored rows, which would judge tonight's files against whatever the tables hold later).

``build_data_docs(engine, as_of, reports_dir)`` renders the latest published run of the date
with GX's own ``SiteBuilder`` (a ``TupleFilesystemStoreBackend`` site on an ephemeral
context: the index and one validation page per suite and part) into
``<reports_dir>/data-docs/<YYYY-MM-DD>/index.html``, built in a temporary folder and swapped
in whole. Two changes to GX's stock site, both through its configurable index builder,
renderer and views:

- the index starts with a table of the failed expectations (suite, part, expectation, column,
  our check's name, unexpected rows, what it blocked), each linked to its validation page;
- the pages need no network: GX's templates load Bootstrap, jQuery and bootstrap-table from
  CDNs and fill the index's tables with scripts; here the templates are read with those
  external ``<script>``/``<link>`` tags removed, GX's static assets are local, and tables
  are rendered as HTML rows (``templates/data_docs/bootstrap_table.j2``). The pages are plain
  without Bootstrap's styles, and complete.

Building needs nothing but the warehouse and GX (no network, no GX project folder).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rebalance_pipeline.warehouse import query_sql

log = logging.getLogger(__name__)

SITE_FOLDER = "data-docs"
SITE_NAME = "rebalance_night"
TEMPLATES = Path(__file__).resolve().parent / "templates" / "data_docs"
# Unexpected rows kept per expectation (GX's own partial lists hold 20).
KEEP_ROWS = 20
_ROW_LISTS = ("unexpected_list", "unexpected_index_list", "partial_unexpected_list", "partial_unexpected_index_list",
              "partial_unexpected_counts")


def site_index(reports_dir: Path, as_of: dt.date) -> Path:
    """``<reports_dir>/data-docs/<YYYY-MM-DD>/index.html``: where a night's Data Docs are
    (the HTML report and the review view link to this path)."""
    return Path(reports_dir) / SITE_FOLDER / as_of.isoformat() / "index.html"


# ------------------------------------------------------------------ at validation time
def compact_result(result: dict, details: dict[int, str] | None = None) -> str:
    """A GX validation result (``to_json_dict()``) as JSON text for the warehouse: unexpected
    rows cut to ``KEEP_ROWS``, NaN as null (jsonb has no NaN), and, per expectation, our
    check's sentence of what failed (``details``: by ``check_index`` in its meta)."""
    for expectation in result.get("results", []):
        found = expectation.get("result") or {}
        for name in _ROW_LISTS:
            if isinstance(found.get(name), list) and len(found[name]) > KEEP_ROWS:
                found[name] = found[name][:KEEP_ROWS]
        query = found.get("unexpected_index_query")
        if isinstance(query, str) and len(query) > 500:
            found["unexpected_index_query"] = query[:500] + " ..."
        index = ((expectation.get("expectation_config") or {}).get("meta") or {}).get("check_index")
        if details and index in details and details[index]:
            expectation.setdefault("meta", {})["rebalance_detail"] = details[index]
    return json.dumps(_finite(result), default=str)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------ building the site
def stored_results(engine: Engine, as_of: dt.date) -> tuple[str | None, dt.datetime | None, list]:
    """(run_id, published_at, rows of part, suite, result) of the date's latest published run."""
    with engine.connect() as conn:
        run = conn.execute(sa.text(query_sql("latest_published_run")), {"d": as_of}).first()
        if run is None:
            return None, None, []
        rows = conn.execute(sa.text(query_sql("run_gx_results")), {"d": as_of, "r": run.run_id}).all()
    return run.run_id, run.published_at, rows


def build_data_docs(engine: Engine, as_of: dt.date, reports_dir: Path) -> Path:
    """Render the Data Docs of the night of ``as_of`` (its latest published run); return the
    index's path. Raises LookupError when the date has no stored GX results (no night, or a
    night published before V011 kept only ``validation_result`` rows)."""
    run_id, published_at, rows = stored_results(engine, as_of)
    if run_id is None:
        raise LookupError(f"nothing published for {as_of}")
    if not rows:
        raise LookupError(f"run {run_id} of {as_of} stored no Great Expectations results (published before "
                          "migration V011?); run the night again to build its Data Docs")
    index = site_index(reports_dir, as_of)
    site = index.parent
    site.parent.mkdir(parents=True, exist_ok=True)
    building = site.parent / f".{as_of.isoformat()}.{os.getpid()}.building"
    shutil.rmtree(building, ignore_errors=True)
    try:
        _render(building, run_id, published_at, rows)
        # Swap the whole folder: a reader sees the old site or the new one.
        old = site.parent / f".{as_of.isoformat()}.{os.getpid()}.old"
        if site.exists():
            os.replace(site, old)
        os.replace(building, site)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("Data Docs of %s (run %s): %s", as_of, run_id, index)
    return index


def _render(folder: Path, run_id: str, published_at: dt.datetime, rows: list) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    here = __name__
    context.add_data_docs_site(site_name=SITE_NAME, site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
        "show_how_to_buttons": False,
        "site_index_builder": {"module_name": here, "class_name": "NightIndexBuilder",
                               "renderer": {"module_name": here, "class_name": "NightIndexPageRenderer"},
                               "view": {"module_name": here, "class_name": "OfflineIndexPageView"}},
        "site_section_builders": {
            "expectations": "None", "profiling": "None",
            "validations": {"view": {"module_name": here, "class_name": "OfflinePageView"}},
        },
    })
    run = RunIdentifier(run_name=_safe(run_id), run_time=published_at)
    schema = ExpectationSuiteValidationResultSchema()
    for part, suite, result in rows:
        loaded = schema.load(result if isinstance(result, dict) else json.loads(result))
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(suite), run, _safe(part))
        context.validation_results_store.set(key, loaded)
    context.build_data_docs(site_names=[SITE_NAME])


def _safe(text: str) -> str:
    """A name GX uses as a folder of the site: letters, digits, '.', '_', '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


# ------------------------------------------------------------------ GX extensions
# Defined at import (GX instantiates them by module and class name); importing this module
# outside a build costs nothing until these lines run, so they import GX only when needed.
def __getattr__(name: str):
    if name in ("NightIndexBuilder", "NightIndexPageRenderer", "OfflinePageView", "OfflineIndexPageView"):
        classes = _gx_classes()
        globals().update(classes)
        return classes[name]
    raise AttributeError(name)


_EXTERNAL_TAG = re.compile(r"<(script|link)\b[^>]*\b(src|href)=\"https?://[^>]*>(\s*</script>)?", re.IGNORECASE)
_REMOTE_IMAGES = re.compile(r"\{%-?\s*set static_images_dir\s*=\s*\"https?://[^\"]*\"\s*-?%\}")


def offline_template(source: str) -> str:
    """A GX page template without what it would fetch from the network: external scripts
    and stylesheets go, and the logo comes from the site's own static folder."""
    source = _EXTERNAL_TAG.sub("", source)
    return _REMOTE_IMAGES.sub('{% if static_images_dir is not defined %}{% set static_images_dir = "static/images/" %}'
                              "{% endif %}", source)


def _gx_classes() -> dict:
    from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder
    from great_expectations.render.renderer.site_index_page_renderer import SiteIndexPageRenderer
    from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
    from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, TemplateNotFound

    class _OfflineLoader(BaseLoader):
        def __init__(self, inner):
            self.inner = inner

        def get_source(self, environment, template):
            try:
                source, filename, uptodate = self.inner.get_source(environment, template)
            except TemplateNotFound:
                raise
            return offline_template(source), filename, uptodate

    def offline(view):
        view.env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), _OfflineLoader(view.env.loader)])

    class OfflinePageView(DefaultJinjaPageView):
        """GX's page view, reading templates with nothing fetched from the network."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            offline(self)

    class OfflineIndexPageView(DefaultJinjaIndexPageView):
        """GX's index view, reading templates with nothing fetched from the network."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            offline(self)

    class NightIndexBuilder(DefaultSiteIndexBuilder):
        """GX's index builder, which also hands the renderer the failed expectations."""

        def _add_validations_to_index_links(self, index_links_dict, validation_and_profiling_result_site_keys):
            super()._add_validations_to_index_links(index_links_dict, validation_and_profiling_result_site_keys)
            failed = []
            for link in index_links_dict.get("validations_links", []):
                if link.get("validation_success"):
                    continue
                result = self.data_context.get_validation_result(
                    batch_identifier=link["batch_identifier"], expectation_suite_name=link["expectation_suite_name"],
                    run_id=link["run_id"], validation_results_store_name=self.source_stores.get("validations"))
                failed += _failed_expectations(link, getattr(result, "results", []))
            index_links_dict["failed_expectations"] = failed

    class NightIndexPageRenderer(SiteIndexPageRenderer):
        """GX's index page, opening with the night's failed expectations."""

        @classmethod
        def render(cls, index_links_dict):
            failed = index_links_dict.pop("failed_expectations", [])
            document = super().render(index_links_dict)
            table = _failed_table(failed)
            document.sections[0].content_blocks.insert(1, table)
            return document

    return {"NightIndexBuilder": NightIndexBuilder, "NightIndexPageRenderer": NightIndexPageRenderer,
            "OfflinePageView": OfflinePageView, "OfflineIndexPageView": OfflineIndexPageView}


def _failed_expectations(link: dict, results) -> list[dict]:
    """The failed expectations of one validation result, as the index page lists them."""
    failed = []
    for expectation in results:
        if expectation.success:
            continue
        config = expectation.expectation_config
        found = expectation.result or {}
        failed.append({
            "suite": link["expectation_suite_name"], "part": link["batch_identifier"],
            "expectation": config.type, "column": (config.kwargs or {}).get("column")
            or ", ".join((config.kwargs or {}).get("column_list") or []),
            "check": (config.meta or {}).get("check", ""), "dataset": (config.meta or {}).get("dataset", ""),
            "unexpected": found.get("unexpected_count"),
            "detail": (expectation.meta or {}).get("rebalance_detail", ""), "filepath": link["filepath"]})
    return failed


def _failed_table(failed: list[dict]):
    """The block the index page opens with: a table of the failed expectations, or a line
    saying every expectation passed."""
    from great_expectations.render import RenderedStringTemplateContent, RenderedTableContent

    def cell(value, link=None):
        styling = {"params": {"v": {"tag": "a", "attributes": {"href": link}}}} if link else {}
        return RenderedStringTemplateContent(content_block_type="string_template", string_template={
            "template": "$v", "params": {"v": "" if value is None else str(value)}, "styling": styling})

    if failed:
        table = RenderedTableContent(
            content_block_type="table",
            header=RenderedStringTemplateContent(content_block_type="string_template", string_template={
                "template": "Failed expectations: $n", "params": {"n": str(len(failed))},
                "tag": "h4"}),
            header_row=["Expectation", "Column", "Check", "Suite", "Part", "Unexpected rows", "What failed"],
            table=[[cell(f["expectation"], f["filepath"]), cell(f["column"]),
                    cell(f"{f['dataset']} {f['check']}".strip()), cell(f["suite"]), cell(f["part"]),
                    cell(f["unexpected"]), cell(f["detail"])] for f in failed],
            styling={"classes": ["col-12", "rebalance-failed-expectations"],
                     "body": {"classes": ["table", "table-sm"]}})
    else:
        table = RenderedStringTemplateContent(content_block_type="string_template", string_template={
            "template": "Every expectation of the night passed.", "params": {}})
    return table
