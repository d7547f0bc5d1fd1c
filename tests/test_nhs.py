"""The NHS number check: known numbers, synthetic numbers, and agreement with the database."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import pytest

from care_graph.db.pool import connect
from care_graph.nhs import (
    check_digit,
    format_nhs_number,
    is_valid_nhs_number,
    normalise_nhs_number,
    synthetic_nhs_numbers,
)


@pytest.mark.parametrize("number", ["9434765919", "4010232137", "9990000018", "9876543210"])
def test_known_valid_numbers(number: str) -> None:
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("9434765918", "wrong check digit"),
        ("4010232138", "wrong check digit"),
        ("1000000010", "check would be 10: no valid number starts 100000001"),
        ("0000000000", "passes the check, but is never issued"),
        ("943476591", "nine digits"),
        ("94347659190", "eleven digits"),
        ("943 476 5919", "formatted, not normalised"),
        ("94347659l9", "a letter"),
        ("\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19", "full-width digits"),
        ("", "empty"),
    ],
)
def test_known_invalid_numbers(number: str, why: str) -> None:
    assert not is_valid_nhs_number(number), why


def test_check_digit_of_eleven_becomes_zero() -> None:
    nine = next(f"999{n:06d}" for n in range(10**6) if check_digit_raw(f"999{n:06d}") == 11)
    assert check_digit(nine) == 0
    assert is_valid_nhs_number(nine + "0")


def check_digit_raw(nine: str) -> int:
    return 11 - sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True)) % 11


def test_check_digit_none_when_ten() -> None:
    assert check_digit("100000001") is None


def test_formatting_round_trip() -> None:
    assert format_nhs_number("9434765919") == "943 476 5919"
    assert normalise_nhs_number("943 476 5919") == "9434765919"
    assert normalise_nhs_number("943-476-5919") == "9434765919"


def test_synthetic_numbers_are_valid_distinct_and_in_the_test_range() -> None:
    numbers = synthetic_nhs_numbers(np.random.default_rng(3), 5000).tolist()
    assert len(set(numbers)) == 5000
    assert all(number.startswith("999") and is_valid_nhs_number(number) for number in numbers)


def test_synthetic_numbers_are_deterministic() -> None:
    first = synthetic_nhs_numbers(np.random.default_rng(11), 100)
    second = synthetic_nhs_numbers(np.random.default_rng(11), 100)
    assert first.tolist() == second.tolist()


async def test_database_agrees_with_python(migrated_url: str) -> None:
    rng = np.random.default_rng(17)
    candidates = [f"{n:010d}" for n in rng.integers(0, 10**10, 4000).tolist()]
    candidates += synthetic_nhs_numbers(rng, 1000).tolist()
    candidates += ["943476591", "94347659190", "94347659l9", "", "943 476 5919", "0000000000"]
    connection: asyncpg.Connection[Any] = await connect(migrated_url)
    try:
        rows = await connection.fetch(
            "SELECT nhs_number_is_valid(c) AS valid FROM unnest($1::text[]) WITH ORDINALITY"
            " AS t(c, n) ORDER BY n",
            candidates,
        )
    finally:
        await connection.close()
    in_python = [is_valid_nhs_number(c) for c in candidates]
    assert [row["valid"] for row in rows] == in_python
    assert 250 < sum(in_python[:4000]) < 480  # about one random number in eleven is valid


def test_zero_passes_the_check_alone() -> None:
    # every digit 0: the check is 11, which becomes 0, so only the never-issued rule refuses it
    assert check_digit("000000000") == 0
    assert not is_valid_nhs_number("0000000000")


async def test_the_database_refuses_zero(connection: asyncpg.Connection[Any]) -> None:
    assert await connection.fetchval("SELECT nhs_number_is_valid('0000000000')") is False
    await connection.execute("INSERT INTO regions VALUES ('ZERO', 'Zero')")
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth,"
                " postcode, region_code, latitude, longitude) VALUES ('0000000000', 'No', 'One',"
                " '1970-01-01', 'ZZ99 3VZ', 'ZERO', 51.5, -0.1)"
            )
    assert refused.value.constraint_name == "patients_nhs_number_valid"
