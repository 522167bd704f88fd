"""Personal data in free text: detectors (a CPF or CNPJ with valid check digits, an e-mail address, a
Brazilian phone number), the masked shape of each kind, and `redact`, which masks what it finds.

Standard library only, imported by lh360.errors: every error message lh360 raises is redacted when it is
made, so an engine error quoting a value never reaches a terminal, a log, `--json` or the run ledger.
lh360.pii (the spec's tags, hash and mask in SQL) and the `no_pii` check build on the same patterns.
"""

from __future__ import annotations

import re
from typing import Any

# the shape each kind is masked to (the same in SQL, Python and on Spark)
MASKS = {
    "cpf": "***.***.***-NN (its two check digits)",
    "cnpj": "**.***.***/****-NN (its two check digits)",
    "email": "x***@domain (first character and domain)",
    "phone": "(**) *****-NNNN (its last four digits)",
    "name": "X*** (first character)",
    "address": "***",
    "birthdate": "YYYY-**-** (the year)",
    "other": "***",
}


def mask_value(kind: str, value: Any) -> str | None:
    """`value` masked to its kind's shape (MASKS); None stays None."""
    if value is None:
        return None
    text = str(value)
    digits = re.sub(r"[^0-9]", "", text)
    if kind == "cpf":
        return "***.***.***-" + digits[-2:] if len(digits) >= 2 else "***"
    if kind == "cnpj":
        return "**.***.***/****-" + digits[-2:] if len(digits) >= 2 else "***"
    if kind == "phone":
        return "(**) *****-" + digits[-4:] if len(digits) >= 4 else "***"
    if kind == "email":
        return text[:1] + "***@" + text.rsplit("@", 1)[1] if "@" in text else "***"
    if kind == "name":
        trimmed = text.strip(" ")
        return trimmed[:1] + "***" if trimmed else "***"
    if kind == "birthdate":
        return text[:4] + "-**-**"
    return "***"


# ---- detecting personal data in text ------------------------------------------------------------------------

# digit boundaries are explicit groups (RE2, which DuckDB uses, has no look-behind): the value is group 2
CPF_PATTERN = r"[0-9]{3}[.]?[0-9]{3}[.]?[0-9]{3}-?[0-9]{2}"
CNPJ_PATTERN = r"[0-9]{2}[.]?[0-9]{3}[.]?[0-9]{3}/?[0-9]{4}-?[0-9]{2}"
EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*[.][A-Za-z]{2,}"
# a Brazilian number: with separators ((11) 98765-4321, +55 47 99367-1938, 11 3456-7890), or bare with the
# mobile 9 (11987654321, +5511987654321); a bare 10-digit number (an epoch second) is not a phone.
# Character classes, never backslashes: the patterns go into SQL string literals of every dialect.
PHONE_PATTERN = r"([+]?55[ -]?)?([(][1-9][0-9][)]|[1-9][0-9])[ -]?9?[0-9]{4}[ -][0-9]{4}|([+]?55)?[1-9][1-9]9[0-9]{8}"


def bounded(pattern: str) -> str:
    """`pattern` between non-digits (or the ends): the match is group 2."""
    return f"(^|[^0-9])({pattern})([^0-9]|$)"


CPF_WEIGHTS = ((10, 9, 8, 7, 6, 5, 4, 3, 2), (11, 10, 9, 8, 7, 6, 5, 4, 3, 2))
CNPJ_WEIGHTS = ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))


def cpf_valid(text: str) -> bool:
    """11 digits (separators ignored), not all the same, with both check digits right."""
    d = re.sub(r"[^0-9]", "", text)
    if len(d) != 11 or d == d[0] * 11:
        return False
    for n, weights in enumerate(CPF_WEIGHTS):
        dv = sum(int(x) * w for x, w in zip(d, weights, strict=False)) * 10 % 11 % 10
        if dv != int(d[9 + n]):
            return False
    return True


def cnpj_valid(text: str) -> bool:
    d = re.sub(r"[^0-9]", "", text)
    if len(d) != 14 or d == d[0] * 14:
        return False
    for n, weights in enumerate(CNPJ_WEIGHTS):
        rest = sum(int(x) * w for x, w in zip(d, weights, strict=False)) % 11
        dv = 0 if rest < 2 else 11 - rest
        if dv != int(d[12 + n]):
            return False
    return True


_CPF = re.compile(rf"(?<![0-9]){CPF_PATTERN}(?![0-9])")
_CNPJ = re.compile(rf"(?<![0-9]){CNPJ_PATTERN}(?![0-9])")
_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE = re.compile(rf"(?<![0-9])(?:{PHONE_PATTERN})(?![0-9])")


def detect(text: str) -> list[str]:
    """The kinds of personal data `text` holds: cpf, cnpj (valid check digits), email, phone."""
    found = []
    if any(cpf_valid(m.group()) for m in _CPF.finditer(text)):
        found.append("cpf")
    if any(cnpj_valid(m.group()) for m in _CNPJ.finditer(text)):
        found.append("cnpj")
    if _EMAIL.search(text):
        found.append("email")
    if _PHONE.search(text):
        found.append("phone")
    return found


_UUID = re.compile(r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")


def redact(text: str | None) -> str | None:
    """`text` with every CPF/CNPJ (valid check digits), e-mail address and phone number masked (MASKS):
    for error messages and logs, where a value may surface without its column."""
    if not text:
        return text
    # identifiers (a query's or run's UUID) are kept whole: their digit runs can look like a phone number
    parts = _UUID.split(text)
    if len(parts) > 1:
        return "".join(part if _UUID.fullmatch(part) else _redact_plain(part) or "" for part in parts)
    return _redact_plain(text)


def _redact_plain(text: str) -> str | None:
    if not text:
        return text
    text = _CNPJ.sub(lambda m: _masked("cnpj", m.group()) if cnpj_valid(m.group()) else m.group(), text)
    text = _CPF.sub(lambda m: _masked("cpf", m.group()) if cpf_valid(m.group()) else m.group(), text)
    text = _EMAIL.sub(lambda m: _masked("email", m.group()), text)
    return _PHONE.sub(lambda m: _masked("phone", m.group()), text)


def _masked(kind: str, text: str) -> str:
    """A matched value masked (mask_value gives None only for None)."""
    return mask_value(kind, text) or text
