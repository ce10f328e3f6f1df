"""Demo data: realistic SIE queue files for a few working days, the same for a given seed.

Each SIE of the demo drops one file a working day into its queue, the way an export from the
offices' applications would: mostly UTF-8 CSV, one Windows-1252 CSV with ``;`` and French
amounts, one JSON Lines file, and a few rows that intake must refuse (invalid SIREN, unknown
process, missing amount) or recognise (a row sent twice). Every SIREN is made up (valid Luhn
checksum, no real company meant); every reference starts with ``DEMO-`` so the demo's own
state can be told from real data and reset.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Final

from relais.domain.calendar import calendar_for

#: Every work item the demo creates has a reference with this prefix.
DEMO_REFERENCE_PREFIX: Final = "DEMO-"
#: Every queue file the demo drops has a name with this prefix.
DEMO_FILE_PREFIX: Final = "demo-"
#: The seed of the demo's random choices: the same files on every machine.
DEMO_SEED: Final = 20231

#: The SIEs whose queues the demo fills, with their mean number of items a working day.
#: Paris 2e/8e/17e (Vierzon) and 9e/11e (Pont-Audemer) are covered by conventions, Paris 16e
#: only for Médoc Web, Marseille 1er by none: their items stay with the SIE (local).
DEMO_SIES: Final[tuple[tuple[str, int], ...]] = (
    ("SIE-75-02", 12),
    ("SIE-75-08", 16),
    ("SIE-75-17", 14),
    ("SIE-75-09", 9),
    ("SIE-75-11", 9),
    ("SIE-75-16", 7),
    ("SIE-13-MARSEILLE-1", 8),
    ("SIE-69-LYON-3", 10),
    ("SIE-59-LILLE", 10),
    ("SIE-31-TOULOUSE-NORD", 8),
    ("SIE-44-NANTES", 8),
    ("SIE-33-BORDEAUX", 8),
    ("SIE-54-NANCY", 6),
    ("SIE-57-METZ", 7),
    ("SIE-21-DIJON", 5),
)

#: Share of each process in an SIE's daily exports (VAT refunds and reminders dominate).
PROCESS_MIX: Final[tuple[tuple[str, int], ...]] = (
    ("tva_refund", 30),
    ("filing_reminder", 14),
    ("payment_reminder", 14),
    ("ex_officio_taxation", 4),
    ("cfe_ifer_dispute", 6),
    ("gespro_premises", 11),
    ("auvisir", 10),
    ("medoc_web", 11),
)

#: What an SIE writes in the free-text column, per process (no taxpayer data).
LABELS: Final[dict[str, tuple[str, ...]]] = {
    "tva_refund": (
        "Demande 3519 – crédit de TVA du trimestre",
        "Remboursement de crédit de TVA (CA12)",
        "Crédit de TVA – exportateur",
    ),
    "filing_reminder": ("Défaut de dépôt CA3", "Défaut de dépôt de la liasse fiscale"),
    "payment_reminder": ("Relance avant mise en demeure", "Défaut de paiement de TVA"),
    "ex_officio_taxation": ("Taxation d'office – défaut de déclaration",),
    "cfe_ifer_dispute": ("Réclamation CFE – base minimum", "Réclamation IFER"),
    "gespro_premises": ("Mise à jour des locaux professionnels", "Création de local"),
    "auvisir": ("Avis de vérification à traiter",),
    "medoc_web": ("Écriture Médoc à régulariser", "Reste à recouvrer"),
}


class FileFormat(StrEnum):
    """How a queue file is written."""

    CSV_UTF8 = "csv-utf8"  # ',' separated, ISO dates, '.' decimal mark, LF
    CSV_CP1252 = "csv-cp1252"  # ';' separated, DD/MM/YYYY, French amounts, CRLF
    JSONL = "jsonl"


class Defect(StrEnum):
    """A row written wrong on purpose, and what intake should make of it."""

    INVALID_SIREN = "invalid_siren"  # rejected
    UNKNOWN_PROCESS = "unknown_process"  # rejected
    MISSING_AMOUNT = "missing_amount"  # rejected (VAT refund without amount)
    DUPLICATE = "duplicate"  # an earlier row sent again: counted as a duplicate


@dataclass(frozen=True, slots=True)
class DemoRow:
    """One line of a queue file, as the SIE sends it."""

    reference: str
    process: str
    siren: str
    received_on: date
    amount_cents: int | None
    label: str | None
    legal_due_on: date | None = None
    defect: Defect | None = None


@dataclass(frozen=True, slots=True)
class DemoFile:
    """A queue file of one SIE for one night."""

    sie: str
    name: str
    file_format: FileFormat
    rows: tuple[DemoRow, ...]

    def render(self) -> bytes:
        """The file's bytes, in its format and encoding."""
        if self.file_format is FileFormat.JSONL:
            return "".join(
                json.dumps(_json_row(row), ensure_ascii=False) + "\n" for row in self.rows
            ).encode()
        french = self.file_format is FileFormat.CSV_CP1252
        buffer = io.StringIO()
        writer = csv.writer(
            buffer, delimiter=";" if french else ",", lineterminator="\r\n" if french else "\n"
        )
        header = ["reference", "process", "siren", "received_on", "amount", "legal_due_on", "label"]
        # Header names are case-insensitive: the Windows export capitalises them.
        writer.writerow([name.upper() if french else name for name in header])
        for row in self.rows:
            writer.writerow(
                [
                    row.reference,
                    row.process,
                    row.siren,
                    _date_text(row.received_on, french),
                    _amount_text(row.amount_cents, french),
                    _date_text(row.legal_due_on, french) if row.legal_due_on else "",
                    row.label or "",
                ]
            )
        return buffer.getvalue().encode("cp1252" if french else "utf-8")


# --- values ---------------------------------------------------------------------------------


def luhn_check_digit(digits: str) -> str:
    """The digit that makes ``digits`` + it pass the Luhn checksum (SIREN rule)."""
    total = 0
    # From the right of the final number, every second digit is doubled; the check digit
    # itself is not, so the last digit of ``digits`` is.
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """Whether the digits of ``number`` (spaces ignored) pass the Luhn checksum."""
    digits = number.replace(" ", "")
    return digits.isdigit() and luhn_check_digit(digits[:-1]) == digits[-1]


def make_siren(rng: random.Random) -> str:
    """A made-up SIREN with a valid checksum."""
    body = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
    return body + luhn_check_digit(body)


def break_siren(siren: str) -> str:
    """The same SIREN with a wrong check digit."""
    return siren[:-1] + str((int(siren[-1]) + 1) % 10)


def _date_text(day: date, french: bool) -> str:
    return day.strftime("%d/%m/%Y") if french else day.isoformat()


def _amount_text(cents: int | None, french: bool) -> str:
    if cents is None:
        return ""
    if not french:
        return f"{Decimal(cents) / 100:.2f}"
    units, rest = divmod(cents, 100)
    # Thousands separated by no-break spaces, comma decimal mark, euro sign: a French export.
    grouped = f"{units:,}".replace(",", "\u00a0")
    return f"{grouped},{rest:02d}\u00a0€"


def _json_row(row: DemoRow) -> dict[str, str]:
    document = {
        "reference": row.reference,
        "process": row.process,
        "siren": row.siren,
        "received_on": row.received_on.isoformat(),
    }
    if row.amount_cents is not None:
        document["amount"] = f"{Decimal(row.amount_cents) / 100:.2f}"
    if row.legal_due_on is not None:
        document["legal_due_on"] = row.legal_due_on.isoformat()
    if row.label:
        document["label"] = row.label
    return document


# --- the demo's calendar and files --------------------------------------------------------


def demo_days(last_day: date, count: int) -> list[date]:
    """The ``count`` working days (Paris calendar) up to ``last_day`` included, oldest first."""
    calendar = calendar_for("75")
    days: list[date] = []
    day = last_day
    while len(days) < count:
        if calendar.is_business_day(day):
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def _weighted(rng: random.Random, choices: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in choices], weights=[w for _, w in choices])[0]


def _amount_cents(rng: random.Random, process: str) -> int | None:
    if process == "tva_refund":
        # Most claims are a few thousand euros, a few are large.
        return int(rng.lognormvariate(8.6, 1.1) * 100) + 5_000
    if process == "payment_reminder" and rng.random() < 0.7:
        return int(rng.lognormvariate(7.5, 1.0) * 100) + 1_000
    return None


def _rows_for(sie: str, day: date, mean: int, seed: int) -> list[DemoRow]:
    rng = random.Random(f"{seed}:{sie}:{day.isoformat()}")
    count = max(1, round(rng.gauss(mean, mean / 4)))
    rows = []
    for number in range(1, count + 1):
        process = _weighted(rng, PROCESS_MIX)
        # Exports lag reception by a few days, more rarely by a few weeks.
        lag = min(int(rng.expovariate(1 / 3)) + 1, 40)
        siren = make_siren(rng)
        rows.append(
            DemoRow(
                reference=f"{DEMO_REFERENCE_PREFIX}{day:%Y%m%d}-{number:04d}",
                process=process,
                siren=f"{siren[:3]} {siren[3:6]} {siren[6:]}" if rng.random() < 0.2 else siren,
                received_on=day - timedelta(days=lag),
                amount_cents=_amount_cents(rng, process),
                label=rng.choice(LABELS[process]) if rng.random() < 0.8 else None,
            )
        )
    return rows


def _with_defect(row: DemoRow, defect: Defect) -> DemoRow:
    if defect is Defect.INVALID_SIREN:
        return replace(row, siren=break_siren(row.siren.replace(" ", "")), defect=defect)
    if defect is Defect.UNKNOWN_PROCESS:
        return replace(row, process="remboursement_tva", defect=defect)
    if defect is Defect.MISSING_AMOUNT:
        return replace(row, process="tva_refund", amount_cents=None, defect=defect)
    raise ValueError(f"not a rewrite of a row: {defect}")


def day_files(
    day: date,
    index: int,
    *,
    final: bool = False,
    sies: Sequence[tuple[str, int]] = DEMO_SIES,
    seed: int = DEMO_SEED,
) -> list[DemoFile]:
    """The files the demo SIEs drop for the night of ``day``, the ``index``-th demo night.

    The special cases sit on fixed nights so that every run shows them: on the second night,
    the Windows-1252 export with an invalid SIREN and a refund without amount; on the third,
    an unknown process; on the fourth, the JSON Lines export and a row sent again from the
    night before; on the ``final`` night, two old VAT claims already past their legal deadline.
    """
    files = []
    for position, (sie, mean) in enumerate(sies):
        rows = _rows_for(sie, day, mean, seed)
        file_format = FileFormat.CSV_UTF8
        if final and position == 2:
            rows.extend(_old_claims(sie, day, seed))
        if index == 1 and position == 1:
            file_format = FileFormat.CSV_CP1252
            rows[0] = _with_defect(rows[0], Defect.INVALID_SIREN)
            rows[-1] = _with_defect(rows[-1], Defect.MISSING_AMOUNT)
        if index == 2 and position == 8 % len(sies):
            rows[1 % len(rows)] = _with_defect(rows[1 % len(rows)], Defect.UNKNOWN_PROCESS)
        if index == 3 and position == 7 % len(sies):
            file_format = FileFormat.JSONL
        if index == 3 and position == 0:
            # The first SIE sends again, unchanged, a row of its file of the night before.
            previous = _rows_for(sie, _previous_working_day(day), mean, seed)
            rows.append(replace(previous[0], defect=Defect.DUPLICATE))
        extension = "jsonl" if file_format is FileFormat.JSONL else "csv"
        files.append(
            DemoFile(
                sie=sie,
                name=f"{DEMO_FILE_PREFIX}{day:%Y%m%d}.{extension}",
                file_format=file_format,
                rows=tuple(rows),
            )
        )
    return files


def _previous_working_day(day: date) -> date:
    calendar = calendar_for("75")
    day -= timedelta(days=1)
    while not calendar.is_business_day(day):
        day -= timedelta(days=1)
    return day


def _old_claims(sie: str, day: date, seed: int) -> list[DemoRow]:
    """Two VAT refund claims received seven months ago, found and exported late."""
    rng = random.Random(f"{seed}:{sie}:old-claims")
    received_on = day - timedelta(days=213)
    return [
        DemoRow(
            reference=f"{DEMO_REFERENCE_PREFIX}{day:%Y%m%d}-R{number}",
            process="tva_refund",
            siren=make_siren(rng),
            received_on=received_on,
            amount_cents=_amount_cents(rng, "tva_refund"),
            label="Réclamation ancienne retrouvée",
        )
        for number in (1, 2)
    ]


def write_files(queue_root: Path, files: Iterable[DemoFile]) -> list[Path]:
    """Drop each file in its SIE's ``incoming/`` folder the way writers must: write, rename."""
    written = []
    for demo_file in files:
        incoming = queue_root / demo_file.sie / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        target = incoming / demo_file.name
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(demo_file.render())
        partial.replace(target)
        written.append(target)
    return written
