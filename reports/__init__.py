"""Renderers of the run record (record.json): county and city sign-off reports (HTML, PDF),
JUnit XML and a CI summary. Imports only acceptance.record, jinja2 and the standard library."""

from reports.junit import write_junit
from reports.render import render_reports

__all__ = ["render_reports", "write_junit"]
