"""core.csvsafe: every CSV we write is safe to open in a spreadsheet, and every CSV writer uses it."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from core import csvsafe

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil","x")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
        "+",
        "+49 151 1234567",  # a phone number as typed is text, not E.164: quoted like any other
    ],
)
def test_a_cell_a_spreadsheet_would_evaluate_starts_with_a_quote(value):
    assert csvsafe.safe_cell(value) == "'" + value
    assert csvsafe.unquote_cell(csvsafe.safe_cell(value)) == value


@pytest.mark.parametrize(
    "value", ["+4915112345678", "+14155552671", "Ada", "", "'quoted", "a=b", 42, -5, None]
)
def test_e164_numbers_plain_text_and_numbers_are_left_as_they_are(value):
    assert csvsafe.safe_cell(value) == value


def test_the_writers_quote_every_cell_and_the_header():
    out = io.StringIO()
    writer = csvsafe.writer(out)
    writer.writerow(["=name", "+4915112345678", "-1"])
    dict_writer = csvsafe.DictWriter(out, fieldnames=["a", "b"])
    dict_writer.writeheader()
    dict_writer.writerow({"a": "@x", "b": "ok"})
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["'=name", "+4915112345678", "'-1"], ["a", "b"], ["'@x", "ok"]]


_RAW_WRITER = re.compile(r"\bcsv\s*\.\s*(writer|DictWriter)\s*\(")


def test_no_module_writes_csv_without_the_helper():
    """A new export (reports, import rejections, admin actions...) must go through core.csvsafe."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if (
            relative.parts[0].startswith(".")
            or "tests" in relative.parts
            or relative == Path("core/csvsafe.py")
        ):
            continue
        if _RAW_WRITER.search(path.read_text(encoding="utf-8", errors="replace")):
            offenders.append(str(relative))
    assert offenders == []
