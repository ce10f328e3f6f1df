"""Rows of SIE queue files: normalisation and validation (SPEC §4). Pure: no I/O, no clock.

A row is *accepted* (an :class:`IntakeRow`, normalised) or *rejected* (a :class:`RowRejection`
with the reasons). Telling duplicates from conflicting rows needs the database and is done by
:mod:`relais.intake`, by comparing :func:`row_content` values.

This runs once per row of files that can hold millions of rows, so the happy path is kept to
precompiled regular expressions, string methods and table look-ups; reasons never quote the
values themselves (they may be taxpayer data).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Final, NamedTuple

from relais.domain.calendar import MAX_YEAR, MIN_YEAR
from relais.domain.catalogue import CATALOGUE
from relais.domain.sla import legal_due_on as compute_legal_due_on

#: Columns (CSV header names or JSON keys, case-insensitive) in the order rows are passed around.
COLUMNS: Final = (
    "reference",
    "process",
    "siren",
    "received_on",
    "amount",
    "legal_due_on",
    "label",
)
#: Columns a CSV header must have (``amount`` is only required for some processes).
REQUIRED_COLUMNS: Final = ("reference", "process", "siren", "received_on")

#: Longest reference kept (the ``work_item.reference`` column).
MAX_REFERENCE_LENGTH: Final = 100
#: Longest free-text label accepted.
MAX_LABEL_LENGTH: Final = 2000
#: Largest amount accepted, in cents (a typo guard, far above any real claim).
MAX_AMOUNT_CENTS: Final = 10**15 - 1
#: Processes whose rows must carry a positive amount.
AMOUNT_REQUIRED: Final = frozenset({"tva_refund"})

REASON_CONFLICT: Final = "same reference with different values"

# The French thousands separators seen in exports: space, no-break space, narrow no-break
# space (what Excel and LibreOffice write with a French locale), thin space.
_GROUP_SEPARATORS: Final = " \u00a0\u202f\u2009"
_TO_SPACE: Final = str.maketrans(dict.fromkeys(_GROUP_SEPARATORS[1:], " "))
_DROP_SPACES: Final = str.maketrans(dict.fromkeys(_GROUP_SEPARATORS + "\t"))

_AMOUNT: Final = re.compile(
    r"(?P<before>€ *)?(?P<units>\d{1,3}(?: \d{3})+|\d+)(?:[.,](?P<cents>\d{1,2}))?(?P<after> *€)?",
    re.ASCII,
)
_ISO_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_FRENCH_DATE: Final = re.compile(r"(\d{2})/(\d{2})/(\d{4})", re.ASCII)
# Labels may span lines (quoted CSV fields); other control characters are refused.
_LABEL_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Luhn on a 9-digit SIREN: digits at even positions (from the left, 0-based) count as they
# are, the others doubled (minus 9 above 9). Three digits are looked up in one go: the first
# and last triples start at an even position, the middle one at an odd one.
_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_LUHN_EVEN_START: Final = {
    f"{a}{b}{c}": a + _DOUBLED[b] + c for a in range(10) for b in range(10) for c in range(10)
}
_LUHN_ODD_START: Final = {
    f"{a}{b}{c}": _DOUBLED[a] + b + _DOUBLED[c]
    for a in range(10)
    for b in range(10)
    for c in range(10)
}


class IntakeRow(NamedTuple):
    """An accepted row, normalised.

    ``legal_due_on`` is the row's own deadline when ``legal_due_given``, else the one computed
    from its process and reception day.
    """

    reference: str
    process: str
    siren: str
    received_on: date
    amount_cents: int | None
    label: str | None
    legal_due_on: date | None
    legal_due_given: bool


class RowRejection(NamedTuple):
    """A refused row: its reference as given (if any) and why, without quoting values."""

    reference: str | None
    reason: str


def luhn_valid(siren: str) -> bool:
    """Whether a string of 9 ASCII digits passes the Luhn check of SIREN numbers."""
    even = _LUHN_EVEN_START
    total = even[siren[0:3]] + _LUHN_ODD_START[siren[3:6]] + even[siren[6:9]]
    return total % 10 == 0


def normalise_siren(value: str) -> str | None:
    """The 9 digits of a SIREN written with or without spaces, or None if it has no such shape."""
    if len(value) != 9:
        value = value.translate(_DROP_SPACES)
    if len(value) == 9 and value.isascii() and value.isdigit():
        return value
    return None


def parse_date(value: str) -> date | None:
    """A ``YYYY-MM-DD`` or ``DD/MM/YYYY`` date (years 1900–2199), or None if it is not one."""
    match = _ISO_DATE.fullmatch(value)
    if match is not None:
        year, month, day = match.groups()
    else:
        match = _FRENCH_DATE.fullmatch(value)
        if match is None:
            return None
        day, month, year = match.groups()
    numeric_year = int(year)
    if not MIN_YEAR <= numeric_year <= MAX_YEAR:
        return None
    try:
        return date(numeric_year, int(month), int(day))
    except ValueError:
        return None


def parse_amount(value: str) -> int | None:
    """An amount in euros as integer cents, or None if it is not written as one.

    Accepts ``.`` or ``,`` as the decimal mark (at most two decimals), spaces, no-break spaces
    or narrow no-break spaces between groups of thousands, and an optional ``€`` sign.
    """
    if value.isascii():
        # The common shapes ("1234", "1234.5", "1234,56") without a regular expression.
        units, mark, cents = value.replace(",", ".", 1).partition(".")
        if units.isdigit() and (not mark or (cents.isdigit() and len(cents) <= 2)):
            whole = int(units) * 100
            if cents:
                whole += int(cents) * 10 if len(cents) == 1 else int(cents)
            return whole
    match = _AMOUNT.fullmatch(value.translate(_TO_SPACE).strip())
    if match is None or (match.group("before") and match.group("after")):
        return None
    units, cents = match.group("units", "cents")
    whole = int(units.replace(" ", "")) * 100
    if cents:
        whole += int(cents) * 10 if len(cents) == 1 else int(cents)
    return whole


def format_amount(cents: int) -> str:
    """Cents written the French way: ``12 345,67 €`` (no-break space before the sign)."""
    units, rest = divmod(cents, 100)
    grouped = f"{units:,}".replace(",", "\u202f")
    return f"{grouped},{rest:02d}\u00a0€"


#: What tells a duplicate from a conflicting row (see :func:`row_content`).
RowContent = tuple[str, str, str, int | None, str | None, str | None]


def row_content(
    process: str,
    siren: str,
    received_on: date | str,
    amount_cents: int | None,
    legal_due_on: date | str | None,
    legal_due_given: bool,
    label: str | None,
) -> RowContent:
    """A row's normalised values as compared: equal contents mean a duplicate row.

    Dates as ISO text (as :class:`datetime.date` or as the text a database returns); the legal
    deadline only when the row gave it, since a computed one follows from the other values.
    The reference is the key, not part of the content.
    """
    given = str(legal_due_on) if legal_due_given and legal_due_on is not None else None
    return (process, siren, str(received_on), amount_cents, given, label)


def intake_row_content(row: IntakeRow) -> RowContent:
    """:func:`row_content` of an accepted row."""
    return row_content(row[1], row[2], row[3], row[4], row[6], row[7], row[5])


def json_cell(value: object) -> str | None:
    """A JSON value as the text a CSV cell would hold (None for null); TypeError otherwise.

    Numbers are taken as written (``12.5`` → ``"12.5"``); true/false, lists and objects are
    not values of any column.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("a true/false value")
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError("a list or object")


def _encodable(text: str) -> bool:
    # JSON "\ud800" escapes decode to lone surrogates, which no database can store.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CACHE_LIMIT: Final = 50_000


class RowValidator:
    """Validates and normalises rows for one day of intake (``as_of``).

    Call it with the raw text of a row's cells in :data:`COLUMNS` order (None or blank for a
    missing value). Dates and legal deadlines are memoised: a file holds few distinct days.
    """

    __slots__ = ("_as_of_text", "_dates", "_legal", "as_of")

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self._as_of_text = as_of.isoformat()
        self._dates: dict[str, tuple[date, str] | None] = {}
        self._legal: dict[tuple[str, date], date | None] = {}

    def __call__(
        self,
        reference: str | None,
        process: str | None,
        siren: str | None,
        received_on: str | None,
        amount: str | None = None,
        legal_due_on: str | None = None,
        label: str | None = None,
    ) -> IntakeRow | RowRejection:
        """Return the normalised row, or the rejection with every problem found."""
        problems: list[str] = []
        if reference:
            reference = reference.strip()
        if not reference:
            reference = None
            problems.append("missing reference")
        elif len(reference) > MAX_REFERENCE_LENGTH:
            problems.append(f"reference longer than {MAX_REFERENCE_LENGTH} characters")
        elif not reference.isprintable():  # control characters, lone surrogates
            problems.append("reference contains control or invalid characters")

        if process not in CATALOGUE:  # fast path: already a catalogue code as written
            if process:
                process = process.strip().lower()
            if not process:
                process = None
                problems.append("missing process")
            elif process not in CATALOGUE:
                process = None
                problems.append("unknown process")

        if siren and len(siren) == 9 and siren.isdigit() and siren.isascii():
            pass  # fast path: nine digits as written
        elif siren and (siren := siren.strip()):
            siren = normalise_siren(siren)
            if siren is None:
                problems.append("invalid SIREN: not 9 digits")
        else:
            siren = None
            problems.append("missing SIREN")
        if siren is not None and not luhn_valid(siren):
            siren = None
            problems.append("invalid SIREN: wrong check digit (Luhn)")

        received = self._date(received_on, "received_on", problems, required=True)
        if received is not None and received[1] > self._as_of_text:
            problems.append(f"received_on after the day of intake ({self._as_of_text})")
            received = None

        amount_cents: int | None = None
        if amount:
            amount = amount.strip()
        if amount:
            amount_cents = parse_amount(amount)
            if amount_cents is None:
                problems.append("invalid amount")
            elif amount_cents <= 0:
                problems.append("amount must be greater than 0")
            elif amount_cents > MAX_AMOUNT_CENTS:
                problems.append("amount too large")
        elif process in AMOUNT_REQUIRED:
            problems.append(f"missing amount (required for {process})")

        override = self._date(legal_due_on, "legal_due_on", problems, required=False)
        if override is not None and received is not None and override[1] < received[1]:
            problems.append("legal_due_on before received_on")

        if label:
            label = label.strip()
            if not label:
                label = None
            elif not label.isascii():
                if _encodable(label):
                    # Same text from a Windows-1252 and a UTF-8 file compares equal.
                    label = unicodedata.normalize("NFC", label)
                else:
                    problems.append("label contains invalid characters")
            if label is not None:
                if len(label) > MAX_LABEL_LENGTH:
                    problems.append(f"label longer than {MAX_LABEL_LENGTH} characters")
                elif _LABEL_CONTROL.search(label) is not None:
                    problems.append("label contains control characters")
        else:
            label = None

        if problems:
            return RowRejection(reference, ", ".join(problems))
        # No problem found: every required value is present.
        assert reference is not None and process is not None and siren is not None
        assert received is not None
        received_date = received[0]
        if override is None:
            key = (process, received_date)
            try:
                deadline = self._legal[key]
            except KeyError:
                deadline = self._legal[key] = compute_legal_due_on(process, received_date)
            given = False
        else:
            deadline = override[0]
            given = True
        return IntakeRow(
            reference, process, siren, received_date, amount_cents, label, deadline, given
        )

    def _date(
        self, value: str | None, column: str, problems: list[str], *, required: bool
    ) -> tuple[date, str] | None:
        if value:
            value = value.strip()
        if not value:
            if required:
                problems.append(f"missing {column}")
            return None
        try:
            parsed = self._dates[value]
        except KeyError:
            if len(self._dates) >= _CACHE_LIMIT:
                self._dates.clear()
            day = parse_date(value)
            parsed = self._dates[value] = None if day is None else (day, day.isoformat())
        if parsed is None:
            problems.append(f"invalid {column}: expected YYYY-MM-DD or DD/MM/YYYY")
        return parsed
