"""Render the county (旗级自查验收报告) and city (市级验收报告) reports from a run record."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from acceptance.record import RunRecord
from reports.text import xml_safe
from reports.view import ReportView, build_view

TEMPLATES = Path(__file__).parent / "templates"
REPORTS = (("county.html.j2", "report.html"), ("city.html.j2", "report-city.html"))


def environment() -> Environment:
    # autoescape everything: station names, evidence and notes come from outside; control
    # characters are replaced too (the charts, already Markup, are made XML-safe on their own)
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True, finalize=_finalize)


def _finalize(value: object) -> object:
    # __html__: already-escaped markup (the charts), which must pass through untouched
    return xml_safe(value) if isinstance(value, str) and not hasattr(value, "__html__") else value


def render_html(view: ReportView, template: str) -> str:
    return environment().get_template(template).render(v=view, t=view.t)


def render_reports(record: RunRecord, out_dir: Path | str, *, lang: str = "zh-CN",
                   pdf: bool = False) -> list[Path]:
    """Write report.html and report-city.html (and their PDFs with pdf=True) into out_dir.

    Same record and language give the same bytes. PDFs need WeasyPrint, an optional
    dependency: without it a RuntimeError names the package before anything is written.
    """
    weasyprint = _weasyprint() if pdf else None
    view = build_view(record, lang)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for template, name in REPORTS:
        path = out / name
        path.write_text(render_html(view, template), encoding="utf-8")
        written.append(path)
        if weasyprint is not None:
            pdf_path = path.with_suffix(".pdf")
            weasyprint.HTML(filename=str(path)).write_pdf(str(pdf_path))
            written.append(pdf_path)
    return written


def _weasyprint() -> ModuleType:
    try:
        return importlib.import_module("weasyprint")
    except (ImportError, OSError) as exc:  # OSError: the package is there but Pango is not
        raise RuntimeError("PDF reports need WeasyPrint, which is not usable here "
                           f"({exc}); install it with `pip install weasyprint` (it needs the "
                           "Pango library: `apt-get install libpango-1.0-0 libpangoft2-1.0-0`), "
                           "or render without pdf") from exc
