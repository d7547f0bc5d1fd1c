"""NHS numbers: the modulus-11 check (the database applies the same rule, nhs_number_is_valid in
migrations 0001 and 0014) and formatting."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_WEIGHTS = np.arange(10, 1, -1, dtype=np.int64)  # digits 1-9 weighted 10, 9, ..., 2
# Passes the check (every digit 0, check 11 becomes 0) but is never issued: the placeholder a
# form fills in, not a person
NEVER_ISSUED = frozenset({"0000000000"})


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine leading digits, or None when no valid number starts so."""
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError("the check digit is computed over exactly nine digits")
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - total % 11
    if check == 10:
        return None
    return 0 if check == 11 else check


def is_valid_nhs_number(candidate: str) -> bool:
    """True for ten digits whose last is the modulus-11 check digit of the first nine, and which
    are not a number never issued (``0000000000``)."""
    if len(candidate) != 10 or not candidate.isascii() or not candidate.isdigit():
        return False
    if candidate in NEVER_ISSUED:
        return False
    return check_digit(candidate[:9]) == int(candidate[9])


def normalise_nhs_number(text: str) -> str:
    """Strip the spaces and dashes people type (``943 476 5919``) to the stored ten digits."""
    return "".join(character for character in text if character not in " -")


def format_nhs_number(number: str) -> str:
    """Display form, 3-3-4: ``943 476 5919``."""
    return f"{number[:3]} {number[3:6]} {number[6:]}"


def synthetic_nhs_numbers(rng: np.random.Generator, count: int) -> npt.NDArray[np.str_]:
    """``count`` distinct valid numbers from the 999 range kept for test data.

    Numbers are drawn without replacement; those whose check would be 10 are skipped.
    """
    body_space = 1_000_000  # 999 + six free digits
    if count > body_space * 10 // 11:
        raise ValueError(f"the 999 range holds fewer than {count} valid numbers")
    bodies = rng.permutation(body_space)
    digits = np.empty((body_space, 9), dtype=np.int64)
    digits[:, 0:3] = 9
    for position in range(6):
        digits[:, 8 - position] = (bodies // 10**position) % 10
    check = 11 - (digits @ _WEIGHTS) % 11
    valid = check != 10
    check = np.where(check == 11, 0, check)
    numbers = 9_990_000_000 + bodies[valid] * 10 + check[valid]
    chosen: npt.NDArray[np.str_] = numbers[:count].astype("U10")
    return chosen
