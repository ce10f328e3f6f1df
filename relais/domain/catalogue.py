"""The fixed catalogue of processes that SIEs export (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Process(StrEnum):
    """Codes of the processes a convention can relocate."""

    TVA_REFUND = "tva_refund"
    FILING_REMINDER = "filing_reminder"
    PAYMENT_REMINDER = "payment_reminder"
    EX_OFFICIO_TAXATION = "ex_officio_taxation"
    CFE_IFER_DISPUTE = "cfe_ifer_dispute"
    GESPRO_PREMISES = "gespro_premises"
    AUVISIR = "auvisir"
    MEDOC_WEB = "medoc_web"


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What the catalogue says about one process."""

    code: Process
    label: str
    default_target_business_days: int
    legal_deadline_months: int | None
    legal_basis: str | None = None


CATALOGUE: dict[str, ProcessInfo] = {
    info.code.value: info
    for info in (
        ProcessInfo(Process.TVA_REFUND, "Remboursement de crédit de TVA", 20, 6, "LPF R*198-10"),
        ProcessInfo(Process.FILING_REMINDER, "Relance des défaillants déclaratifs", 10, None),
        ProcessInfo(Process.PAYMENT_REMINDER, "Relance des défaillants de paiement", 10, None),
        ProcessInfo(Process.EX_OFFICIO_TAXATION, "Procédure d'imposition d'office", 40, None),
        ProcessInfo(Process.CFE_IFER_DISPUTE, "Contentieux CFE/IFER", 30, 6, "LPF R*198-10"),
        ProcessInfo(Process.GESPRO_PREMISES, "Gestion des locaux dans Gespro", 20, None),
        ProcessInfo(Process.AUVISIR, "Gestion des Auvisir", 15, None),
        ProcessInfo(Process.MEDOC_WEB, "Travaux Médoc Web", 10, None),
    )
}

PROCESS_CODES: tuple[str, ...] = tuple(CATALOGUE)


def process_info(code: str) -> ProcessInfo:
    """Return the catalogue entry for ``code``; ``KeyError`` if it is not a catalogue code."""
    return CATALOGUE[code]
