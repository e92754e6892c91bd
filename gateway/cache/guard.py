"""The lexical guard on semantic hits: two questions that embed close together must still agree
on their numbers, quoted strings, named entities, units and negations, so "capital of France"
never answers "capital of Spain" and "is X safe" never answers "is X not safe"; and on the side
they take of a contrast (causes or consequences, advantages or disadvantages, before or after,
buy or sell, minimum or maximum...), so "the causes of World War I" never answers "the
consequences of World War I", though an embedder puts the two side by side. Units agree in
order ("miles to km" is not "km to miles"), a hyphenated word takes its parts' sides
("long-term", "short-term"), and a word one question has only with a reversing prefix
("unlock", "unhide", "dislike", "deactivate") is a disagreement."""

from __future__ import annotations

import functools
import re
from pathlib import Path
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


# Contrasts (data/contrasts.txt): causes | consequences, buy | sell, ... Two questions that both
# take a side of a contrast must take the same one.
_CONTRASTS_FILE = Path(__file__).resolve().parent / "data" / "contrasts.txt"


def _contrasts() -> dict[str, tuple[tuple[int, int], ...]]:
    """word -> every (contrast, side) it takes ("old" is against "young" and against "new")."""
    sides: dict[str, tuple[tuple[int, int], ...]] = {}
    lines = [line for line in _CONTRASTS_FILE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]  # fmt: skip
    for group, line in enumerate(lines):
        for pole, part in enumerate(line.split("|")):
            for word in part.split():
                sides[word] = (*sides.get(word, ()), (group, pole))
    return sides


_CONTRASTS = _contrasts()


class Signature(NamedTuple):
    numbers: frozenset[str]
    quoted: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str]
    units: tuple[str, ...]  # in order: "10 miles to km" is not "10 km to miles"
    negations: frozenset[str]
    sides: frozenset[tuple[int, int]]  # (contrast, side) taken by the question's words


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
        units=tuple(w for w in lowered if w in _UNITS),
        negations=frozenset({"not"}) if negations else frozenset(),
        sides=frozenset(
            side for w in lowered for part in _parts(w) for side in _CONTRASTS.get(part, ())
        ),
    )


def _parts(word: str) -> tuple[str, ...]:
    """A word, and the parts of a hyphenated one ("long-term" takes the side of "long")."""
    return (word, *word.split("-")) if "-" in word else (word,)


_memo = functools.lru_cache(maxsize=8192)(_signature)


def agree(a: Signature, b: Signature) -> bool:
    if a.numbers != b.numbers or a.quoted != b.quoted or a.units != b.units:
        return False
    if a.negations != b.negations:
        return False
    if a.sides != b.sides and not _same_sides(a.sides, b.sides):
        return False
    if _reversed(a.words - b.words, b.words - a.words):
        return False
    # An entity of one must at least be a word of the other (casing differs between askers).
    return a.entities <= b.words and b.entities <= a.words


_REVERSING = ("un", "dis", "de", "non")  # lock / unlock, like / dislike, activate / deactivate


def _reversed(only_a: frozenset[str], only_b: frozenset[str]) -> bool:
    """Whether a word only one question has is the other's word with a reversing prefix."""
    for mine, theirs in ((only_a, only_b), (only_b, only_a)):
        for word in mine:
            for prefix in _REVERSING:
                stem = word[len(prefix) :]
                if word.startswith(prefix) and len(stem) >= 4 and stem in theirs:
                    return True
    return False


def _same_sides(a: frozenset[tuple[int, int]], b: frozenset[tuple[int, int]]) -> bool:
    """Whether every contrast both questions take a side of is taken the same way (a
    contrast only one of them touches is not a disagreement: "Why did X start?" and "What
    caused X?" are one question)."""
    groups = {g for g, _ in a} & {g for g, _ in b}
    return all({p for g, p in a if g == k} == {p for g, p in b if g == k} for k in groups)
