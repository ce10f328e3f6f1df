"""Convention rules, pure: schema, document checks, overlaps, supersession, coverage."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from models.documents import ConventionDocument
from relais.domain.conventions import (
    Candidate,
    Period,
    VersionSpec,
    coverage_on,
    in_force_periods,
    validate_conventions,
    versions_in_force,
)
from relais.domain.reference import (
    DirectorateRef,
    Problem,
    ReferenceSnapshot,
    ServiceRef,
    SieRef,
)

REFERENCE = ReferenceSnapshot.of(
    directorates=[
        DirectorateRef("DRFIP75", "DRFiP Île-de-France et Paris", "75"),
        DirectorateRef("DDFIP18", "DDFiP du Cher", "18"),
        DirectorateRef("DDFIP27", "DDFiP de l'Eure", "27"),
        DirectorateRef("DDFIP57", "DDFiP de la Moselle", "57"),
        DirectorateRef("DRFIP59", "DRFiP Hauts-de-France et Nord", "59"),
        DirectorateRef("DDFIP02", "DDFiP de l'Aisne", "02"),
    ],
    sies=[
        SieRef("SIE-75-02", "SIE Paris 2e", "DRFIP75", "75"),
        SieRef("SIE-75-08", "SIE Paris 8e", "DRFIP75", "75"),
        SieRef("SIE-75-17", "SIE Paris 17e", "DRFIP75", "75"),
        SieRef("SIE-75-09", "SIE Paris 9e", "DRFIP75", "75"),
        SieRef("SIE-57-METZ", "SIE Metz", "DDFIP57", "57"),
        SieRef("SIE-59-LILLE", "SIE Lille", "DRFIP59", "59"),
    ],
    services=[
        ServiceRef("ANT-18-VIERZON", "Antenne de Vierzon", "Vierzon", "18", "DDFIP18", 50),
        ServiceRef("ANT-27-PONT-AUDEMER", "Antenne de Pont-Audemer", "Pont-Audemer", "27",
                   "DDFIP27", 20),
        ServiceRef("ANT-57-FORBACH", "Antenne de Forbach", "Forbach", "57", "DDFIP57", 25),
        ServiceRef("ANT-02-LAON", "Antenne de Laon", "Laon", "02", "DDFIP02", 25),
    ],
)  # fmt: skip


def document(**overrides: Any) -> ConventionDocument:
    """A valid Vierzon convention, with fields replaced by ``overrides``."""
    data: dict[str, Any] = {
        "id": "CONV-75-VIERZON",
        "version": 1,
        "exporting_directorate": "DRFIP75",
        "host_directorate": "DDFIP18",
        "service": "ANT-18-VIERZON",
        "effective_from": date(2023, 9, 1),
        "perimeter": [
            {
                "process": "tva_refund",
                "sies": ["SIE-75-02", "SIE-75-08", "SIE-75-17"],
                "target_business_days": 20,
                "daily_capacity": 300,
            },
            {"process": "cfe_ifer_dispute", "sies": ["SIE-75-08"]},
        ],
    }
    data.update(overrides)
    return ConventionDocument.model_validate(data)


def pont_audemer(**overrides: Any) -> ConventionDocument:
    """Another DRFIP75 convention, by default on SIE-75-09 only (no overlap with Vierzon)."""
    data: dict[str, Any] = {
        "id": "CONV-75-PONT-AUDEMER",
        "host_directorate": "DDFIP27",
        "service": "ANT-27-PONT-AUDEMER",
        "effective_from": date(2022, 9, 1),
        "perimeter": [{"process": "tva_refund", "sies": ["SIE-75-09"]}],
    }
    data.update(overrides)
    return document(**data)


def check(
    *documents: ConventionDocument, stored: tuple[ConventionDocument, ...] = ()
) -> list[Problem]:
    candidates = [Candidate(f"file{index}.yaml", doc) for index, doc in enumerate(documents)]
    return validate_conventions(
        candidates, REFERENCE, [VersionSpec.from_document(doc) for doc in stored]
    )


def errors(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(problem.field, problem.message) for problem in problems if problem.is_error]


def only_error(problems: list[Problem]) -> tuple[str, str]:
    found = errors(problems)
    assert len(found) == 1, found
    return found[0]


# --- Schema -----------------------------------------------------------------------------


def schema_errors(data: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(PydanticValidationError) as caught:
        ConventionDocument.model_validate(data)
    return {tuple(error["loc"]): error["type"] for error in caught.value.errors()}


def base_data(**overrides: Any) -> dict[str, Any]:
    data = document().model_dump()
    data.update(overrides)
    return data


def test_unknown_keys_are_errors_with_their_path() -> None:
    data = base_data(colour="blue")
    data["perimeter"][0]["capacity"] = 3
    found = schema_errors(data)
    assert found == {
        ("colour",): "extra_forbidden",
        ("perimeter", 0, "capacity"): "extra_forbidden",
    }


def test_wrong_types_are_errors_with_their_path() -> None:
    data = base_data(version="1", effective_from="1st of September")
    data["perimeter"][0]["daily_capacity"] = "300"
    data["perimeter"][1]["target_business_days"] = 2.5
    found = schema_errors(data)
    assert set(found) == {
        ("version",),
        ("effective_from",),
        ("perimeter", 0, "daily_capacity"),
        ("perimeter", 1, "target_business_days"),
    }


def test_booleans_are_not_numbers() -> None:
    data = base_data()
    data["perimeter"][0]["daily_capacity"] = True
    assert ("perimeter", 0, "daily_capacity") in schema_errors(data)


@pytest.mark.parametrize("sies", ["ALL", "SIE-75-02", [], ["SIE-75-02", 7], None, {"a": 1}])
def test_sies_is_a_list_of_codes_or_the_word_all(sies: Any) -> None:
    data = base_data()
    data["perimeter"][0]["sies"] = sies
    assert ("perimeter", 0, "sies") in schema_errors(data)


def test_missing_required_fields_are_named() -> None:
    data = base_data()
    del data["service"]
    del data["perimeter"][0]["process"]
    found = schema_errors(data)
    assert found == {("service",): "missing", ("perimeter", 0, "process"): "missing"}


def test_an_empty_perimeter_is_an_error() -> None:
    assert ("perimeter",) in schema_errors(base_data(perimeter=[]))


def test_iso_dates_in_quotes_are_read_and_datetimes_refused() -> None:
    assert document(effective_from="2024-09-01").effective_from == date(2024, 9, 1)
    assert ("effective_from",) in schema_errors(base_data(effective_from="2024-02-30"))
    from datetime import datetime

    assert ("effective_from",) in schema_errors(base_data(effective_from=datetime(2024, 9, 1, 10)))


def test_scope_defaults_to_extra_departmental_and_rejects_other_words() -> None:
    assert document().scope == "extra_departmental"
    assert ("scope",) in schema_errors(base_data(scope="infra"))


def test_fingerprint_ignores_key_order_and_written_defaults() -> None:
    plain = document()
    explicit = document(scope="extra_departmental", effective_to=None)
    reordered = ConventionDocument.model_validate(dict(reversed(list(plain.model_dump().items()))))
    assert plain.fingerprint() == explicit.fingerprint() == reordered.fingerprint()
    assert document(title="Autre titre").fingerprint() != plain.fingerprint()


# --- Document rules ---------------------------------------------------------------------


def test_a_valid_document_has_no_problem() -> None:
    assert check(document()) == []


def test_unknown_references_are_each_reported() -> None:
    doc = document(
        exporting_directorate="DRFIP99",
        host_directorate="DDFIP98",
        service="ANT-00-NOWHERE",
        perimeter=[{"process": "teleportation", "sies": ["SIE-75-99"]}],
    )
    found = dict(errors(check(doc)))
    assert "unknown directorate DRFIP99" in found["exporting_directorate"]
    assert "unknown directorate DDFIP98" in found["host_directorate"]
    assert "unknown remote service ANT-00-NOWHERE" in found["service"]
    assert "unknown process 'teleportation'" in found["perimeter[0].process"]
    assert "unknown SIE SIE-75-99" in found["perimeter[0].sies[0]"]


def test_listed_sies_must_belong_to_the_exporting_directorate() -> None:
    doc = document(perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02", "SIE-57-METZ"]}])
    field, message = only_error(check(doc))
    assert field == "perimeter[0].sies[1]"
    assert "SIE-57-METZ belongs to DDFIP57" in message and "DRFIP75" in message


def test_the_services_host_must_be_the_host_directorate() -> None:
    field, message = only_error(check(document(host_directorate="DDFIP27")))
    assert field == "host_directorate"
    assert "hosted by DDFIP18, not DDFIP27" in message


def test_forbach_infra_departmental_for_its_own_directorate_is_valid() -> None:
    doc = document(
        id="CONV-57-FORBACH",
        exporting_directorate="DDFIP57",
        host_directorate="DDFIP57",
        service="ANT-57-FORBACH",
        scope="infra_departmental",
        perimeter=[{"process": "filing_reminder", "sies": ["SIE-57-METZ"]}],
    )
    assert check(doc) == []


def test_forbach_left_extra_departmental_is_an_error() -> None:
    doc = document(
        id="CONV-57-FORBACH",
        exporting_directorate="DDFIP57",
        host_directorate="DDFIP57",
        service="ANT-57-FORBACH",
        perimeter=[{"process": "filing_reminder", "sies": ["SIE-57-METZ"]}],
    )
    field, message = only_error(check(doc))
    assert field == "scope"
    assert "infra_departmental" in message


def test_infra_departmental_with_a_service_elsewhere_is_an_error() -> None:
    field, message = only_error(check(document(scope="infra_departmental")))
    assert field == "scope"
    assert "department 75" in message and "department 18" in message


@pytest.mark.parametrize("end", [date(2023, 9, 1), date(2023, 8, 31)])
def test_effective_to_must_be_after_effective_from(end: date) -> None:
    field, _ = only_error(check(document(effective_to=end)))
    assert field == "effective_to"


def test_a_one_day_period_is_valid() -> None:
    assert check(document(effective_to=date(2023, 9, 2))) == []


@pytest.mark.parametrize(("target", "valid"), [(0, False), (1, True), (250, True), (251, False)])
def test_target_business_days_bounds(target: int, valid: bool) -> None:
    doc = document(
        perimeter=[{"process": "tva_refund", "sies": "all", "target_business_days": target}]
    )
    found = errors(check(doc))
    if valid:
        assert found == []
    else:
        assert found == [
            (
                "perimeter[0].target_business_days",
                f"must be between 1 and 250 business days (got {target})",
            )
        ]


@pytest.mark.parametrize(("capacity", "valid"), [(-1, False), (0, False), (1, True)])
def test_daily_capacity_must_be_at_least_one(capacity: int, valid: bool) -> None:
    doc = document(perimeter=[{"process": "tva_refund", "sies": "all", "daily_capacity": capacity}])
    found = errors(check(doc))
    assert (found == []) is valid
    if not valid:
        assert found[0][0] == "perimeter[0].daily_capacity"


def test_version_must_be_one_or_more() -> None:
    field, message = only_error(check(document(version=0)))
    assert field == "version"
    assert "got 0" in message


def test_a_small_service_is_a_warning_not_an_error() -> None:
    problems = check(pont_audemer())
    assert errors(problems) == []
    assert [(p.field, p.severity) for p in problems] == [("service", "warning")]
    assert "20 agents" in problems[0].message and "25" in problems[0].message


def test_a_service_of_exactly_25_agents_is_no_warning() -> None:
    doc = document(
        id="CONV-59-LAON",
        exporting_directorate="DRFIP59",
        host_directorate="DDFIP02",
        service="ANT-02-LAON",
        perimeter=[{"process": "tva_refund", "sies": ["SIE-59-LILLE"]}],
    )
    assert check(doc) == []


# --- Duplicate lines in one convention --------------------------------------------------


def test_the_same_sie_twice_for_one_process_is_an_error() -> None:
    doc = document(
        perimeter=[
            {"process": "tva_refund", "sies": ["SIE-75-02", "SIE-75-08"]},
            {"process": "tva_refund", "sies": ["SIE-75-08"]},
        ]
    )
    field, message = only_error(check(doc))
    assert field == "perimeter[1].sies[0]"
    assert "(tva_refund, SIE-75-08) is covered twice" in message and "perimeter[0]" in message


def test_the_same_sie_twice_in_one_list_is_an_error() -> None:
    doc = document(perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02", "SIE-75-02"]}])
    field, message = only_error(check(doc))
    assert field == "perimeter[0].sies[1]"
    assert "this line" in message


@pytest.mark.parametrize("all_first", [True, False])
def test_an_all_line_and_a_named_line_of_one_process_count_twice(all_first: bool) -> None:
    lines = [
        {"process": "tva_refund", "sies": "all"},
        {"process": "tva_refund", "sies": ["SIE-75-17"]},
    ]
    doc = document(perimeter=lines if all_first else lines[::-1])
    field, _ = only_error(check(doc))
    assert field.startswith("perimeter[1].sies")


def test_two_all_lines_of_one_process_count_twice() -> None:
    doc = document(
        perimeter=[{"process": "auvisir", "sies": "all"}, {"process": "auvisir", "sies": "all"}]
    )
    field, _ = only_error(check(doc))
    assert field == "perimeter[1].sies"


def test_one_sie_for_several_processes_is_fine() -> None:
    doc = document(
        perimeter=[
            {"process": "tva_refund", "sies": ["SIE-75-02"]},
            {"process": "auvisir", "sies": ["SIE-75-02"]},
            {"process": "medoc_web", "sies": "all"},
        ]
    )
    assert check(doc) == []


# --- Overlaps between conventions -------------------------------------------------------


def test_overlap_names_both_conventions_the_sie_the_process_and_the_first_day() -> None:
    other = pont_audemer(
        effective_from=date(2024, 3, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-08", "SIE-75-09"]}],
    )
    problems = check(other, stored=(document(),))
    field, message = only_error(problems)
    assert field == "perimeter[0].sies"
    assert problems[0].source == "file0.yaml"
    assert "CONV-75-PONT-AUDEMER" in message and "CONV-75-VIERZON" in message
    assert "SIE SIE-75-08 " in message and "SIE-75-09" not in message
    assert "tva_refund" in message
    assert "first overlapping day 2024-03-01" in message


def test_first_overlapping_day_is_the_later_start() -> None:
    other = pont_audemer(
        effective_from=date(2020, 1, 1),
        effective_to=date(2024, 1, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    _, message = only_error(check(other, stored=(document(),)))
    assert "first overlapping day 2023-09-01" in message


def test_periods_that_touch_at_one_day_do_not_overlap() -> None:
    ended = document(effective_to=date(2024, 9, 1))
    following = pont_audemer(
        effective_from=date(2024, 9, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    assert errors(check(following, stored=(ended,))) == []
    assert errors(check(ended, stored=(following,))) == []


def test_one_shared_day_is_an_overlap() -> None:
    ended = document(effective_to=date(2024, 9, 2))
    following = pont_audemer(
        effective_from=date(2024, 9, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    _, message = only_error(check(following, stored=(ended,)))
    assert "first overlapping day 2024-09-01" in message


def test_open_ended_periods_overlap_from_the_later_start() -> None:
    later = pont_audemer(
        effective_from=date(2031, 1, 1),
        perimeter=[{"process": "cfe_ifer_dispute", "sies": ["SIE-75-08"]}],
    )
    _, message = only_error(check(later, stored=(document(),)))
    assert "first overlapping day 2031-01-01" in message and "cfe_ifer_dispute" in message


def test_an_all_line_overlaps_a_named_line_of_the_same_directorate() -> None:
    everything = pont_audemer(perimeter=[{"process": "cfe_ifer_dispute", "sies": "all"}])
    _, message = only_error(check(everything, stored=(document(),)))
    assert "SIE SIE-75-08 " in message and "cfe_ifer_dispute" in message


def test_two_all_lines_of_one_directorate_overlap_naming_the_known_sies() -> None:
    first = document(perimeter=[{"process": "auvisir", "sies": "all"}])
    second = pont_audemer(perimeter=[{"process": "auvisir", "sies": "all"}])
    _, message = only_error(check(second, stored=(first,)))
    assert "SIEs SIE-75-02, SIE-75-08, SIE-75-09, SIE-75-17" in message


def test_two_all_lines_of_a_directorate_without_sies_overlap_as_all() -> None:
    reference = ReferenceSnapshot(
        directorates=REFERENCE.directorates,
        sies={code: sie for code, sie in REFERENCE.sies.items() if sie.directorate != "DRFIP75"},
        services=REFERENCE.services,
    )
    first = VersionSpec.from_document(document(perimeter=[{"process": "auvisir", "sies": "all"}]))
    second = pont_audemer(perimeter=[{"process": "auvisir", "sies": "all"}])
    problems = validate_conventions([Candidate("b.yaml", second)], reference, [first])
    _, message = only_error(problems)
    assert "SIE all" in message


def test_all_lines_of_different_directorates_do_not_overlap() -> None:
    paris = document(perimeter=[{"process": "auvisir", "sies": "all"}])
    metz = document(
        id="CONV-57-FORBACH",
        exporting_directorate="DDFIP57",
        host_directorate="DDFIP57",
        service="ANT-57-FORBACH",
        scope="infra_departmental",
        perimeter=[{"process": "auvisir", "sies": "all"}],
    )
    assert check(metz, stored=(paris,)) == []


def test_different_processes_do_not_overlap() -> None:
    other = pont_audemer(perimeter=[{"process": "auvisir", "sies": ["SIE-75-08"]}])
    assert errors(check(other, stored=(document(),))) == []


def test_files_given_together_are_checked_against_each_other_once() -> None:
    other = pont_audemer(perimeter=[{"process": "tva_refund", "sies": ["SIE-75-08"]}])
    problems = check(document(), other)
    assert len(errors(problems)) == 1
    assert [p.source for p in problems if p.is_error] == ["file1.yaml"]


# --- Versions and supersession ----------------------------------------------------------


def test_versions_of_one_convention_do_not_overlap_each_other() -> None:
    v2 = document(version=2, effective_from=date(2025, 1, 1))
    assert check(v2, stored=(document(),)) == []


def test_a_superseded_version_no_longer_overlaps() -> None:
    v1 = document()  # open-ended from 2023-09-01
    v2_ending = document(version=2, effective_from=date(2024, 1, 1), effective_to=date(2024, 6, 1))
    successor = pont_audemer(
        effective_from=date(2024, 6, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    assert errors(check(successor, stored=(v1, v2_ending))) == []
    # Without the ending version, v1 is still open-ended and the successor overlaps it.
    _, message = only_error(check(successor, stored=(v1,)))
    assert "CONV-75-VIERZON version 1" in message and "2024-06-01" in message


def test_overlap_with_the_version_in_force_names_that_version() -> None:
    v1 = document()
    v2_ending = document(version=2, effective_from=date(2024, 1, 1), effective_to=date(2024, 6, 1))
    overlapping = pont_audemer(
        effective_from=date(2024, 5, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    _, message = only_error(check(overlapping, stored=(v1, v2_ending)))
    assert "CONV-75-VIERZON version 2" in message and "first overlapping day 2024-05-01" in message


def test_ending_and_successor_applied_together_are_valid() -> None:
    v2_ending = document(version=2, effective_from=date(2024, 12, 1), effective_to=date(2025, 1, 1))
    successor = pont_audemer(
        effective_from=date(2025, 1, 1),
        perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}],
    )
    assert errors(check(v2_ending, successor, stored=(document(),))) == []


def test_reapplying_an_identical_version_is_valid() -> None:
    assert check(document(), stored=(document(),)) == []


def test_a_different_document_under_a_stored_version_is_an_error() -> None:
    changed = document(title="Nouveau titre")
    field, message = only_error(check(changed, stored=(document(),)))
    assert field == "version"
    assert "already applied with different content" in message


def test_two_files_with_one_version_and_different_content_are_an_error() -> None:
    problems = check(document(), document(title="Nouveau titre"))
    field, message = only_error(problems)
    assert field == "version" and "file0.yaml" in message


def test_a_version_may_skip_numbers() -> None:
    assert check(document(version=3, effective_from=date(2025, 1, 1)), stored=(document(),)) == []


# --- Periods in force and coverage ------------------------------------------------------


def spec(version: int, start: date, end: date | None = None, **overrides: Any) -> VersionSpec:
    return VersionSpec.from_document(
        document(version=version, effective_from=start, effective_to=end, **overrides)
    )


def test_version_n_is_in_force_until_version_n_plus_one_starts() -> None:
    periods = in_force_periods(
        [spec(1, date(2023, 9, 1)), spec(2, date(2025, 1, 1), date(2026, 1, 1))]
    )
    assert periods[("CONV-75-VIERZON", 1)] == Period(date(2023, 9, 1), date(2025, 1, 1))
    assert periods[("CONV-75-VIERZON", 2)] == Period(date(2025, 1, 1), date(2026, 1, 1))


def test_an_earlier_effective_to_is_kept_under_supersession() -> None:
    periods = in_force_periods(
        [spec(1, date(2023, 9, 1), date(2024, 1, 1)), spec(2, date(2025, 1, 1))]
    )
    assert periods[("CONV-75-VIERZON", 1)] == Period(date(2023, 9, 1), date(2024, 1, 1))


def test_a_later_version_starting_earlier_leaves_one_version_in_force() -> None:
    versions = [spec(1, date(2023, 1, 1)), spec(2, date(2024, 6, 1)), spec(3, date(2024, 1, 1))]
    periods = in_force_periods(versions)
    assert periods[("CONV-75-VIERZON", 1)].end == date(2024, 1, 1)
    assert periods[("CONV-75-VIERZON", 2)].is_empty
    for day in (date(2023, 6, 1), date(2024, 3, 1), date(2024, 7, 1)):
        assert len(versions_in_force(versions, day)) == 1
    assert versions_in_force(versions, date(2024, 7, 1))["CONV-75-VIERZON"].version == 3


def test_versions_in_force_on_boundaries() -> None:
    versions = [spec(1, date(2023, 9, 1)), spec(2, date(2025, 1, 1), date(2026, 1, 1))]
    assert versions_in_force(versions, date(2023, 8, 31)) == {}
    assert versions_in_force(versions, date(2023, 9, 1))["CONV-75-VIERZON"].version == 1
    assert versions_in_force(versions, date(2024, 12, 31))["CONV-75-VIERZON"].version == 1
    assert versions_in_force(versions, date(2025, 1, 1))["CONV-75-VIERZON"].version == 2
    assert versions_in_force(versions, date(2026, 1, 1)) == {}


def test_coverage_resolves_all_lines_and_catalogue_defaults() -> None:
    versions = [
        spec(
            1,
            date(2023, 9, 1),
            perimeter=[
                {"process": "tva_refund", "sies": ["SIE-75-02"], "daily_capacity": 300},
                {"process": "auvisir", "sies": "all", "target_business_days": 5},
            ],
        )
    ]
    covered = coverage_on(versions, REFERENCE.sie_directorates(), date(2024, 1, 15))
    assert set(covered) == {
        ("SIE-75-02", "tva_refund"),
        ("SIE-75-02", "auvisir"),
        ("SIE-75-08", "auvisir"),
        ("SIE-75-09", "auvisir"),
        ("SIE-75-17", "auvisir"),
    }
    tva = covered[("SIE-75-02", "tva_refund")]
    assert (tva.service, tva.target_business_days, tva.daily_capacity) == (
        "ANT-18-VIERZON",
        20,
        300,
    )
    assert covered[("SIE-75-08", "auvisir")].target_business_days == 5
    assert covered[("SIE-75-08", "auvisir")].position == 1


def test_coverage_follows_the_version_in_force() -> None:
    versions = [
        spec(1, date(2023, 9, 1), perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02"]}]),
        spec(
            2,
            date(2025, 1, 1),
            date(2026, 1, 1),
            perimeter=[{"process": "tva_refund", "sies": ["SIE-75-02", "SIE-75-08"]}],
        ),
    ]
    sies = REFERENCE.sie_directorates()
    assert coverage_on(versions, sies, date(2023, 8, 31)) == {}
    assert set(coverage_on(versions, sies, date(2024, 12, 31))) == {("SIE-75-02", "tva_refund")}
    on_v2 = coverage_on(versions, sies, date(2025, 1, 1))
    assert {cover.version for cover in on_v2.values()} == {2}
    assert len(on_v2) == 2
    assert coverage_on(versions, sies, date(2026, 1, 1)) == {}
