"""CSV that a spreadsheet opens as data, never as formulas (OWASP, "CSV Injection").

Every CSV the product writes goes through `writer` (or `safe_cell`), so a contact whose WhatsApp profile
name is `=HYPERLINK("http://evil","x")` exports as text. A cell beginning with `=`, `+`, `-`, `@`, a tab or a
carriage return gets a leading single quote: spreadsheets show the rest as text and hide the quote.

One exception, by value: a whole cell that is an E.164 phone number (`+` and up to 15 digits). To a
spreadsheet that is a number, with no function or reference it could call; the quote would only put a stray
`'` in front of every phone number for the programs that read the file as data (our own import, dialers,
other CRMs). Numbers (int, float, Decimal) are left as they are for the same reason.

`unquote_cell` undoes the quote, so a file we exported imports back unchanged (crm.services' import).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _E164.fullmatch(value):
        return "'" + value
    return value


def unquote_cell(value: str) -> str:
    """A cell as it was before `safe_cell` (a quote is removed only where `safe_cell` would add one)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


class SafeWriter:
    """csv.writer's interface; every cell passes through `safe_cell`."""

    def __init__(self, file: Any, **options: Any) -> None:
        self._writer = csv.writer(file, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(file: Any, **options: Any) -> SafeWriter:
    return SafeWriter(file, **options)


class DictWriter(csv.DictWriter):
    """csv.DictWriter whose cells pass through `safe_cell` (the header row too)."""

    def __init__(self, file: Any, fieldnames: Any, **options: Any) -> None:
        super().__init__(file, fieldnames, **options)
        csv_options = {k: v for k, v in options.items() if k not in ("restval", "extrasaction")}
        self.writer = SafeWriter(file, **csv_options)  # type: ignore[assignment]
