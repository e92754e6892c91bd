"""The lexical guard on semantic hits: two questions that embed close together must still agree
on their numbers, quoted strings, named entities, units and negations, so "capital of France"
never answers "capital of Spain" and "is X safe" never answers "is X not safe"."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

_WORD = re.compile(r"[A-Za-z\u00C0-\uFFFF][\w'\u2019-]*|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|'([^']{2,})'")
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([A-Za-z\u00C0-\uFFFF][\w'\u2019-]*)")
_NEGATIONS = frozenset(
    ("not", "no", "never", "without", "none", "nor", "cannot", "neither", "nothing")
)
_UNITS = frozenset(
    [
        "km",
        "kilometer",
        "kilometers",
        "kilometre",
        "kilometres",
        "mi",
        "mile",
        "miles",
        "m",
        "meter",
        "meters",
        "metre",
        "metres",
        "cm",
        "mm",
        "ft",
        "foot",
        "feet",
        "inch",
        "inches",
        "yd",
        "yard",
        "yards",
        "kg",
        "kilogram",
        "kilograms",
        "g",
        "gram",
        "grams",
        "lb",
        "lbs",
        "pound",
        "pounds",
        "oz",
        "ounce",
        "ounces",
        "l",
        "liter",
        "liters",
        "litre",
        "litres",
        "ml",
        "gallon",
        "gallons",
        "celsius",
        "fahrenheit",
        "kelvin",
        "c",
        "f",
        "usd",
        "eur",
        "gbp",
        "jpy",
        "dollar",
        "dollars",
        "euro",
        "euros",
        "yen",
        "sec",
        "second",
        "seconds",
        "min",
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "mph",
        "kph",
        "percent",
    ]
)


class Signature(NamedTuple):
    numbers: frozenset[str]
    quoted: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str]
    units: frozenset[str]
    negations: frozenset[str]


_MEMO_LONGEST = 2048  # characters; bounds the memo at about 8192 short questions


def signature(text: str) -> Signature:
    # Stored questions are compared again at every lookup that lands near them.
    return _memo(text) if len(text) <= _MEMO_LONGEST else _signature(text)


def _signature(text: str) -> Signature:
    lowered = [w.lower().replace("\u2019", "'") for w in _WORD.findall(text)]
    starts = {m.start(1) for m in _SENTENCE_START.finditer(text)}
    entities = set()
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word[0].isupper() and match.start() not in starts and word not in ("I", "I'm", "I've"):
            entities.add(word.lower().removesuffix("'s").removesuffix("\u2019s"))
    negations = {w for w in lowered if w in _NEGATIONS or w.endswith("n't")}
    return Signature(
        numbers=frozenset(n.replace(",", "") for n in _NUMBER.findall(text)),
        quoted=frozenset("".join(g).strip().lower() for g in _QUOTED.findall(text)),
        entities=frozenset(entities),
        words=frozenset(w.removesuffix("'s") for w in lowered),
        units=frozenset(w for w in lowered if w in _UNITS),
        negations=frozenset({"not"}) if negations else frozenset(),
    )


_memo = functools.lru_cache(maxsize=8192)(_signature)


def agree(a: Signature, b: Signature) -> bool:
    if a.numbers != b.numbers or a.quoted != b.quoted or a.units != b.units:
        return False
    if a.negations != b.negations:
        return False
    # An entity of one must at least be a word of the other (casing differs between askers).
    return a.entities <= b.words and b.entities <= a.words
