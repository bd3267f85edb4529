"""TOTP and recovery-code rules without a loop: the ±1 step window, each step once, codes typed loosely."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from streams.domain import second_factors as rules

NOW = datetime(2026, 12, 7, 12, 0, 10, tzinfo=UTC)
KEY = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def at(offset_steps: int) -> str:
    return pyotp.TOTP(KEY).at(NOW + timedelta(seconds=30 * offset_steps))


def test_a_code_of_the_step_before_now_or_after_is_accepted_and_no_other() -> None:
    step = rules.time_step(NOW)
    assert [rules.matching_step(KEY, at(k), NOW, None) for k in (-1, 0, 1)] == [step - 1, step, step + 1]
    assert rules.matching_step(KEY, at(-2), NOW, None) is None
    assert rules.matching_step(KEY, at(2), NOW, None) is None


def test_a_step_at_or_before_the_last_accepted_one_is_refused() -> None:
    step = rules.time_step(NOW)
    assert rules.matching_step(KEY, at(0), NOW, step) is None
    assert rules.matching_step(KEY, at(-1), NOW, step) is None
    assert rules.matching_step(KEY, at(1), NOW, step) == step + 1


def test_codes_are_six_ascii_digits_spaces_allowed() -> None:
    code = at(0)
    assert rules.matching_step(KEY, f"{code[:3]} {code[3:]}", NOW, None) == rules.time_step(NOW)
    for bad in ("", "12345", "1234567", "١٢٣٤٥٦", "12345a"):
        assert rules.matching_step(KEY, bad, NOW, None) is None


def test_recovery_codes_are_random_and_read_back_however_typed() -> None:
    codes = rules.new_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    code = codes[0]
    assert len(code.replace("-", "")) == 28  # 140 bits of base32
    assert rules.normalized_recovery_code(code.upper().replace("-", " ")) == code
    assert rules.normalized_recovery_code(code[:-1]) is None
    assert rules.recovery_code_hash(code) != rules.recovery_code_hash(codes[1])


def test_the_otpauth_uri_names_the_service_and_the_account() -> None:
    uri = rules.otpauth_uri(KEY, "pat@example.org", "Registry e-mail alerts")
    assert uri.startswith("otpauth://totp/Registry%20e-mail%20alerts:pat@example.org?secret=" + KEY)
    assert pyotp.parse_uri(uri).secret == KEY
