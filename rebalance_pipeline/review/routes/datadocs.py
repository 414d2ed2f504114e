"""A night's validation results as Great Expectations Data Docs, when they were built.

The site is ``<reports folder>/data-docs/<YYYY-MM-DD>/`` (written by the nightly's Data Docs
step); this router serves its files to users who may view the review, and ``docs_link``
gives a blocked fund's link to its night's ``index.html`` only when that file exists.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from rebalance_pipeline import settings
from rebalance_pipeline.review.web import CAN_VIEW

router = APIRouter()
# Data Docs pages are static HTML and CSS: no script of theirs runs under our origin.
DOCS_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")


def docs_folder(day: dt.date) -> Path:
    return settings.reports_dir() / "data-docs" / day.isoformat()


def docs_link(request: Request, day: dt.date | None) -> str | None:
    """The path of the night's Data Docs index, or None when they were not built."""
    if day is None or not (docs_folder(day) / "index.html").is_file():
        return None
    return request.url_for("data_docs", day=day.isoformat(), path="index.html").path


@router.get("/data-docs/{day}/{path:path}", dependencies=[CAN_VIEW], name="data_docs")
def data_docs(day: str, path: str):
    try:
        folder = docs_folder(dt.date.fromisoformat(day)).resolve()
    except ValueError:
        raise HTTPException(404, "no Data Docs for that date") from None
    target = (folder / (path or "index.html")).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        raise HTTPException(404, f"no Data Docs page {path[:200]} for {day}")
    return FileResponse(target, headers={"Content-Security-Policy": DOCS_CSP})
