"""`python -m reports RUN` — render the reports of a run directory (or a record.json) again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acceptance.record import RunRecord
from reports.i18n import LANGS
from reports.json_summary import summary_lines
from reports.junit import write_junit
from reports.render import render_reports


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports", description=__doc__)
    ap.add_argument("run", type=Path, help="run directory holding record.json, or the file")
    ap.add_argument("--out", type=Path, help="where to write (default: the run directory)")
    ap.add_argument("--lang", choices=LANGS, default="zh-CN")
    ap.add_argument("--pdf", action="store_true", help="also write PDFs (needs WeasyPrint)")
    ap.add_argument("--junit", action="store_true", help="also write junit.xml")
    args = ap.parse_args(argv)
    path = args.run / "record.json" if args.run.is_dir() else args.run
    if not path.is_file():
        print(f"error: {path}: no run record here (expected record.json)", file=sys.stderr)
        return 2
    try:
        record = RunRecord.read(path)
        out = args.out or path.parent
        written = render_reports(record, out, lang=args.lang, pdf=args.pdf)
        if args.junit:
            written.append(write_junit(record, out / "junit.xml"))
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(record)))
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
