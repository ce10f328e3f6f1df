"""Intake rows: SIREN, dates, amounts, processes, references, labels, deadlines, contents."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relais.domain.intake import (
    MAX_AMOUNT_CENTS,
    MAX_LABEL_LENGTH,
    MAX_REFERENCE_LENGTH,
    IntakeRow,
    RowRejection,
    RowValidator,
    format_amount,
    intake_row_content,
    json_cell,
    luhn_valid,
    normalise_siren,
    parse_amount,
    parse_date,
    row_content,
)

AS_OF = date(2026, 11, 20)
SIREN = "732829320"  # valid Luhn
validate = RowValidator(AS_OF)


def _row(**overrides: str | None) -> IntakeRow | RowRejection:
    values: dict[str, str | None] = {
        "reference": "REF-1",
        "process": "medoc_web",
        "siren": SIREN,
        "received_on": "2026-11-02",
        "amount": None,
        "legal_due_on": None,
        "label": None,
    }
    values.update(overrides)
    return validate(**values)  # type: ignore[arg-type]


def _accepted(**overrides: str | None) -> IntakeRow:
    result = _row(**overrides)
    assert isinstance(result, IntakeRow), result
    return result


def _reason(**overrides: str | None) -> str:
    result = _row(**overrides)
    assert isinstance(result, RowRejection), result
    return result.reason


# --- SIREN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("siren", ["732829320", "552100554", "356000000", "000000422"])
def test_luhn_accepts_valid_sirens(siren: str) -> None:
    assert luhn_valid(siren)


def _textbook_luhn(number: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(number)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_luhn_is_the_textbook_rule_on_every_nine_digits(siren: str) -> None:
    assert luhn_valid(siren) == _textbook_luhn(siren)


@pytest.mark.parametrize("siren", ["732829321", "552100555", "123456789", "000000001"])
def test_luhn_refuses_a_wrong_check_digit(siren: str) -> None:
    assert not luhn_valid(siren)


@pytest.mark.parametrize(
    "written", ["732 829 320", " 732829320 ", "732\u00a0829\u00a0320", "732\u202f829\u202f320"]
)
def test_siren_spaces_are_dropped(written: str) -> None:
    assert normalise_siren(written.strip()) == SIREN
    assert _accepted(siren=written).siren == SIREN


@pytest.mark.parametrize(
    "written", ["73282932", "7328293200", "73282932O", "７３２８２９３２０", "-"]
)
def test_siren_must_be_nine_ascii_digits(written: str) -> None:
    assert _reason(siren=written) == "invalid SIREN: not 9 digits"


def test_siren_with_a_wrong_check_digit_is_rejected() -> None:
    assert _reason(siren="732829321") == "invalid SIREN: wrong check digit (Luhn)"


def test_missing_siren() -> None:
    assert _reason(siren="  ") == "missing SIREN"


# --- Dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-11-02", date(2026, 11, 2)),
        ("02/11/2026", date(2026, 11, 2)),
        ("29/02/2024", date(2024, 2, 29)),
        (" 2026-01-31 ", date(2026, 1, 31)),
    ],
)
def test_dates_in_both_formats(written: str, expected: date) -> None:
    assert _accepted(received_on=written).received_on == expected


@pytest.mark.parametrize(
    "written",
    ["2026-02-30", "2026-13-01", "2026/11/02", "2/11/2026", "11-02-2026", "20261102", "1899-12-31"],
)
def test_other_date_shapes_are_rejected(written: str) -> None:
    assert parse_date(written.strip()) is None
    assert _reason(received_on=written) == (
        "invalid received_on: expected YYYY-MM-DD or DD/MM/YYYY"
    )


def test_received_on_may_be_the_day_of_intake_but_not_after() -> None:
    assert _accepted(received_on="2026-11-20").received_on == AS_OF
    assert _reason(received_on="21/11/2026") == ("received_on after the day of intake (2026-11-20)")


def test_the_day_of_intake_is_a_parameter() -> None:
    later = RowValidator(date(2026, 11, 21))
    assert isinstance(later("R", "medoc_web", SIREN, "2026-11-21"), IntakeRow)


def test_missing_received_on() -> None:
    assert _reason(received_on=None) == "missing received_on"


# --- Amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "cents"),
    [
        ("12345.67", 1_234_567),
        ("12345,67", 1_234_567),
        ("12345,6", 1_234_560),
        ("12345", 1_234_500),
        ("12 345,67 €", 1_234_567),
        ("12\u00a0345,67\u00a0€", 1_234_567),
        ("12\u202f345,67\u202f€", 1_234_567),
        ("1\u202f234\u202f567,00 €", 123_456_700),
        ("12 345,67€", 1_234_567),
        ("€ 12.50", 1_250),
        ("0,01", 1),
    ],
)
def test_french_and_plain_amounts(written: str, cents: int) -> None:
    assert parse_amount(written) == cents
    assert _accepted(process="tva_refund", amount=written).amount_cents == cents


@pytest.mark.parametrize(
    "written", ["1.234", "1,234.56", "12 34,5", "-12,50", "12,5 EUR", "€12€", "1e3", "12,", ",5"]
)
def test_ambiguous_or_malformed_amounts_are_rejected(written: str) -> None:
    assert parse_amount(written) is None
    assert _reason(process="tva_refund", amount=written) == "invalid amount"


@pytest.mark.parametrize("written", ["0", "0,00", "0.0"])
def test_amount_must_be_positive(written: str) -> None:
    assert _reason(process="tva_refund", amount=written) == "amount must be greater than 0"
    assert _reason(process="payment_reminder", amount=written) == "amount must be greater than 0"


def test_amount_is_required_for_a_vat_refund_only() -> None:
    assert _reason(process="tva_refund", amount="") == "missing amount (required for tva_refund)"
    assert _accepted(process="filing_reminder", amount="").amount_cents is None
    assert _accepted(process="filing_reminder", amount="10,00").amount_cents == 1000


def test_absurd_amounts_are_refused() -> None:
    too_much = str(MAX_AMOUNT_CENTS // 100 + 1)
    assert _reason(process="tva_refund", amount=too_much) == "amount too large"


@given(st.integers(min_value=1, max_value=MAX_AMOUNT_CENTS))
def test_amounts_written_the_french_way_read_back(cents: int) -> None:
    assert parse_amount(format_amount(cents)) == cents
    assert parse_amount(f"{cents // 100}.{cents % 100:02d}") == cents


# --- Process, reference, label ---------------------------------------------------------------


def test_process_codes_are_case_insensitive_and_checked() -> None:
    assert _accepted(process=" Medoc_Web ").process == "medoc_web"
    assert _reason(process="tva") == "unknown process"
    assert _reason(process="") == "missing process"


def test_reference_is_required_bounded_and_printable() -> None:
    assert _accepted(reference="  REF 1  ").reference == "REF 1"
    assert _reason(reference=" ") == "missing reference"
    assert _reason(reference="R" * (MAX_REFERENCE_LENGTH + 1)) == (
        f"reference longer than {MAX_REFERENCE_LENGTH} characters"
    )
    assert _reason(reference="REF\x071") == "reference contains control or invalid characters"
    assert _accepted(reference="R" * MAX_REFERENCE_LENGTH).reference == "R" * MAX_REFERENCE_LENGTH


def test_label_is_trimmed_normalised_and_bounded() -> None:
    assert _accepted(label="  Créteil ").label == "Créteil"
    assert _accepted(label="").label is None
    assert _accepted(label="Ligne 1\nLigne 2").label == "Ligne 1\nLigne 2"
    assert _reason(label="x" * (MAX_LABEL_LENGTH + 1)) == (
        f"label longer than {MAX_LABEL_LENGTH} characters"
    )
    assert _reason(label="bip\x07") == "label contains control characters"
    assert _reason(label="bad \ud800 half") == "label contains invalid characters"


def test_decomposed_accents_compare_equal_to_composed_ones() -> None:
    composed = _accepted(label="Créteil")
    decomposed = _accepted(label="Cre\u0301teil")
    assert decomposed.label == "Créteil"
    assert intake_row_content(decomposed) == intake_row_content(composed)


# --- Legal deadline --------------------------------------------------------------------------


def test_legal_deadline_is_computed_for_processes_that_have_one() -> None:
    refund = _accepted(process="tva_refund", amount="10", received_on="2026-08-31")
    assert refund.legal_due_on == date(2027, 2, 28)
    dispute = _accepted(process="cfe_ifer_dispute", received_on="2026-05-15")
    assert dispute.legal_due_on == date(2026, 11, 15)
    assert _accepted(process="auvisir").legal_due_on is None


def test_legal_deadline_override() -> None:
    refund = _accepted(process="tva_refund", amount="10", legal_due_on="15/01/2027")
    assert refund.legal_due_on == date(2027, 1, 15)
    assert _accepted(process="gespro_premises", legal_due_on="2027-01-15").legal_due_on == date(
        2027, 1, 15
    )
    assert _reason(legal_due_on="2026-11-01") == "legal_due_on before received_on"
    assert _reason(legal_due_on="soon") == (
        "invalid legal_due_on: expected YYYY-MM-DD or DD/MM/YYYY"
    )


# --- Rejections and contents -----------------------------------------------------------------


def test_every_problem_of_a_row_is_listed_without_quoting_values() -> None:
    result = _row(process="nope", siren="123", received_on="2027-01-01", label="x\x01")
    assert isinstance(result, RowRejection)
    assert result.reference == "REF-1"
    assert result.reason == (
        "unknown process, invalid SIREN: not 9 digits, "
        "received_on after the day of intake (2026-11-20), label contains control characters"
    )
    taxpayer = _row(process="tva_refund", siren="732829321", amount="-98 765,43")
    assert isinstance(taxpayer, RowRejection)
    assert "732829321" not in taxpayer.reason and "98" not in taxpayer.reason


def test_content_ignores_how_values_were_written() -> None:
    plain = _accepted(process="tva_refund", amount="12345.67", received_on="2026-11-02")
    french = _accepted(
        process="TVA_REFUND",
        siren="732 829 320",
        amount="12\u202f345,67\u00a0€",
        received_on="02/11/2026",
    )
    assert intake_row_content(french) == intake_row_content(plain)
    # As the database gives the stored row back: dates as text (SQLite) or dates (PostgreSQL).
    for received, deadline in (("2026-11-02", "2027-05-02"), (date(2026, 11, 2), date(2027, 5, 2))):
        stored = row_content("tva_refund", SIREN, received, 1_234_567, deadline, False, None)
        assert intake_row_content(plain) == stored


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "12345.68"},
        {"siren": "552100554"},
        {"received_on": "2026-11-03"},
        {"label": "autre"},
        {"legal_due_on": "2027-05-02"},
        {"process": "cfe_ifer_dispute"},
    ],
)
def test_content_changes_with_any_value(change: dict[str, str]) -> None:
    base = _accepted(process="tva_refund", amount="12345.67")
    changed = _accepted(**{"process": "tva_refund", "amount": "12345.67", **change})
    assert intake_row_content(changed) != intake_row_content(base)


def test_a_deadline_given_differs_from_the_same_deadline_computed() -> None:
    computed = _accepted(process="tva_refund", amount="10", received_on="2026-08-31")
    given = _accepted(
        process="tva_refund", amount="10", received_on="2026-08-31", legal_due_on="28/02/2027"
    )
    assert (computed.legal_due_on, computed.legal_due_given) == (date(2027, 2, 28), False)
    assert (given.legal_due_on, given.legal_due_given) == (date(2027, 2, 28), True)
    assert intake_row_content(given) != intake_row_content(computed)


def test_the_reference_is_the_key_not_part_of_the_content() -> None:
    assert intake_row_content(_accepted(reference="A")) == intake_row_content(
        _accepted(reference="B")
    )


def test_json_values_become_cell_text() -> None:
    assert json_cell(None) is None
    assert json_cell("x") == "x"
    assert json_cell(732829320) == "732829320"
    assert json_cell(12.5) == "12.5"
    for value in (True, [1], {"a": 1}):
        with pytest.raises(TypeError):
            json_cell(value)
