"""Printable and spreadsheet forms of the monthly paperwork: CSV and PDF (fpdf2, pure Python).

The PDF uses Debian's DejaVu Sans when it is installed (it shows any text a store or product name
may carry); without it, fpdf2's core Helvetica, which shows Latin-1 only, so other characters are
replaced by "?" rather than failing the report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF

from logistics.services.reports import StockReport, TemperatureLog, stock_report_document

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
STOCK_COLUMNS = (
    "store_code",
    "product_code",
    "opening_doses",
    "receipts_doses",
    "issues_doses",
    "consumption_doses",
    "wastage_doses",
    "adjustments_doses",
    "transfers_doses",
    "closing_doses",
    "closing_vials",
    "held_after_excursions_doses",
    "released_after_excursions_doses",
    "discarded_after_excursions_doses",
    "wastage_rate_pct",
    "open_vial_wastage_doses",
    "daily_consumption_doses",
    "days_of_stock",
)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _reasons(lines: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({reason for line in lines for reason in line["wastage_by_reason"]})


def stock_report_csv(report: StockReport) -> str:
    """One row per store and product, then a TOTAL row per product; wastage per reason columns."""
    doc = stock_report_document(report)
    reasons = _reasons(doc["lines"])
    header = ["month", *STOCK_COLUMNS, *(f"wastage_{r}_doses" for r in reasons)]
    rows = [
        [
            doc["month"],
            *(line[c] if c != "store_code" or line[c] else "TOTAL" for c in STOCK_COLUMNS),
            *(line["wastage_by_reason"].get(r, 0) for r in reasons),
        ]
        for line in [*doc["lines"], *doc["totals"]]
    ]
    return _csv(header, rows)


# --- PDF ------------------------------------------------------------------------------------------


class _Form(FPDF):
    """An A4 form with a title line and page numbers."""

    def __init__(self, title: str, orientation: str = "L"):
        super().__init__(orientation=orientation, format="A4")
        self.form_title = title
        self.font_name = _install_font(self)
        self.set_auto_page_break(auto=True, margin=12)
        self.add_page()

    def header(self) -> None:
        self.set_font(self.font_name, "B", 13)
        self.cell(0, 8, self.text_of(self.form_title), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.font_name, "", 8)
        self.cell(0, 5, f"page {self.page_no()}", align="R")

    def text_of(self, value: Any) -> str:
        """Text this PDF's font can show."""
        text = "" if value is None else str(value)
        if self.font_name == "DejaVu":
            return text
        return text.encode("latin-1", "replace").decode("latin-1")

    def line_of_text(self, text: str, size: int = 9, style: str = "") -> None:
        self.set_font(self.font_name, style, size)
        self.multi_cell(0, 5, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

    def grid(
        self, header: Sequence[str], rows: Sequence[Sequence[Any]], widths: Sequence[float]
    ) -> None:
        """A table; every cell is a text line of its own, so text extraction reads it in order."""
        self.set_font(self.font_name, "B", 7)
        for title, width in zip(header, widths, strict=True):
            self.cell(width, 6, self.text_of(title), border=1, align="C")
        self.ln()
        self.set_font(self.font_name, "", 8)
        for row in rows:
            for value, width in zip(row, widths, strict=True):
                self.cell(
                    width,
                    5.5,
                    self.text_of(_cell(value)),
                    border=1,
                    align="R" if _numeric(value) else "L",
                )
            self.ln()


def _numeric(value: Any) -> bool:
    """Numbers (also pre-formatted ones such as "4.0") are right-aligned in a table."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _install_font(pdf: FPDF) -> str:
    regular, bold = DEJAVU_DIR / "DejaVuSans.ttf", DEJAVU_DIR / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"


# A4 landscape leaves 277 mm between the margins: 18 + 24 + 14 x 16 = 266 mm.
STOCK_PDF_COLUMNS = (
    ("Store", "store_code", 18),
    ("Product", "product_code", 24),
    *(
        (title, key, 16)
        for title, key in (
            ("Opening", "opening_doses"),
            ("Receipts", "receipts_doses"),
            ("Issues", "issues_doses"),
            ("Given", "consumption_doses"),
            ("Wasted", "wastage_doses"),
            ("Count adj.", "adjustments_doses"),
            ("Closing", "closing_doses"),
            ("Vials", "closing_vials"),
            ("Held exc.", "held_after_excursions_doses"),
            ("Disc. exc.", "discarded_after_excursions_doses"),
            ("Waste %", "wastage_rate_pct"),
            ("Open vial", "open_vial_wastage_doses"),
            ("Doses/day", "daily_consumption_doses"),
            ("Days stock", "days_of_stock"),
        )
    ),
)
NOTE = (
    "Given: doses administered. Count adj.: physical counts less the ledger. Held exc. / "
    "Disc. exc.: doses held after temperature alarms, and discarded after review. Waste %: "
    "wasted / (given + wasted), open vials included. Days stock: closing / doses a day."
)


def stock_report_pdf(report: StockReport) -> bytes:
    """The printable monthly stock report (A4 landscape), figures in doses."""
    doc = stock_report_document(report)
    store = doc["store"]
    scope = " and the stores below it" if doc["subtree"] else ""
    pdf = _Form(f"Monthly stock report {doc['month']}: {store['name']} ({store['code']}){scope}")
    pdf.line_of_text(
        f"The site's month {doc['month']}, {doc['start']:%Y-%m-%d %H:%M} to "
        f"{doc['end']:%Y-%m-%d %H:%M} UTC; "
        f"consumption rate over {doc['period_days']} days; "
        f"generated {doc['generated_at']:%Y-%m-%d %H:%M} UTC. All figures in doses."
    )
    pdf.ln(2)
    header = [title for title, _, _ in STOCK_PDF_COLUMNS]
    widths = [width for _, _, width in STOCK_PDF_COLUMNS]
    lines = (
        [*doc["lines"], *({**t, "store_code": "TOTAL"} for t in doc["totals"])]
        if doc["subtree"]
        else doc["lines"]
    )
    pdf.grid(header, [[line[key] for _, key, _ in STOCK_PDF_COLUMNS] for line in lines], widths)
    pdf.ln(3)
    pdf.line_of_text("Wastage by reason", 10, "B")
    for line in lines:
        reasons = ", ".join(f"{r} {d}" for r, d in line["wastage_by_reason"].items()) or "none"
        pdf.line_of_text(f"{line['store_code']} {line['product_code']}: {reasons}")
    pdf.ln(2)
    pdf.line_of_text(NOTE, 7)
    return bytes(pdf.output())


# --- temperature log ------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def temperature_log_csv(log: TemperatureLog) -> str:
    """One row per day: readings, min, max, minutes outside the range."""
    rows = [
        [f"{d.day:%Y-%m-%d}", d.readings, _fmt(d.min_temp_c), _fmt(d.max_temp_c), d.minutes_outside]
        for d in log.days
    ]
    return _csv(["day", "readings", "min_temp_c", "max_temp_c", "minutes_outside"], rows)


def temperature_log_pdf(log: TemperatureLog) -> bytes:
    """The printable monthly temperature log of one unit (A4 portrait)."""
    unit = log.unit
    pdf = _Form(
        f"Temperature log {log.month:%Y-%m}: {log.store.name} ({log.store.code}), unit {unit.code}",
        orientation="P",
    )
    pdf.line_of_text(
        f"Range {unit.min_temp_c:g} to {unit.max_temp_c:g} C. MKT "
        f"{_fmt(log.mkt.get('mkt_c')) or 'n/a'} C over {log.mkt.get('readings')} "
        f"readings. Equipment: {unit.make or '-'} {unit.model or ''} "
        f"PQS {unit.pqs_code or '-'}."
    )
    signoff = log.signoff
    signed = (
        f"Reviewed by {signoff.signed_by} on {signoff.signed_at:%Y-%m-%d %H:%M} UTC"
        + (f": {signoff.comment}" if signoff.comment else "")
        if signoff
        else "Not yet reviewed"
    )
    pdf.line_of_text(signed, 9, "B")
    pdf.ln(2)
    pdf.grid(
        ["Day", "Readings", "Min C", "Max C", "Minutes outside"],
        [
            [
                f"{d.day:%Y-%m-%d}",
                d.readings,
                _fmt(d.min_temp_c),
                _fmt(d.max_temp_c),
                d.minutes_outside,
            ]
            for d in log.days
        ],
        [34, 26, 26, 26, 36],
    )
    pdf.ln(3)
    pdf.line_of_text("Times outside the range", 10, "B")
    for span in log.outside or []:
        pdf.line_of_text(
            f"{span.side}: {span.start:%Y-%m-%d %H:%M} to {span.end:%Y-%m-%d %H:%M} "
            f"UTC, {span.minutes} min, peak {span.peak_temp_c:.1f} C"
        )
    if not log.outside:
        pdf.line_of_text("none")
    pdf.line_of_text("Excursions, reviews and decisions", 10, "B")
    for entry in log.excursions or []:
        exc = entry.excursion
        pdf.line_of_text(
            f"{exc.kind} from {exc.started_at:%Y-%m-%d %H:%M} UTC, "
            f"{exc.minutes_outside:.0f} min outside, peak {exc.peak_temp_c:.1f} C"
        )
        for review in entry.reviews:
            pdf.line_of_text(
                f"  lot {review.lot_id}: {review.doses} doses {review.state}"
                f" by {review.decided_by or '-'}: {review.comment or ''}"
            )
    if not log.excursions:
        pdf.line_of_text("none")
    return bytes(pdf.output())
