"""Built-in topics for `block_topics`: phrase lexicons matched in the same compiled scan as PII.

Each topic is intent phrases (a verb near its object, a few words apart at most), matched in
any case, and exceptions that a developer-heavy gateway needs ("kill the process", "bath bomb",
"suicide prevention"): a match whose words or nearby text hold an exception is not reported.
Precision and recall on tests/data/topics.jsonl are asserted by the tests and stated in the
README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from gateway.guardrails.detector import CustomKind
from gateway.guardrails.validate import Span, Validator

_GAP = r"(?:[a-z']+ ){0,3}"  # up to three words between a verb and its object
_PEOPLE = (
    r"(?:him|her|them|someone|somebody|people|a person|a man|a woman|my (?:wife|husband|boss|"
    r"neighbou?r|teacher|family|coworker|classmate|ex|dad|mom|father|mother|brother|sister)|"
    r"the (?:president|senator|judge|police|officer)|kids|children|everyone|a (?:child|kid|girl|boy))"
)
_ASK = r"(?:how (?:do i|to|can i|could i|would i|should i)|help me|teach me|show me how to|steps to|guide to|instructions (?:for|to|on))"


class Topic(NamedTuple):
    phrases: tuple[str, ...]
    exceptions: tuple[str, ...]


TOPICS: dict[str, Topic] = {
    "violence": Topic(
        (
            rf"(?:kill|murder|stab|shoot|strangle|poison|beat up|torture|kidnap|assault|hurt|injure|harm) {_GAP}{_PEOPLE}",
            rf"{_ASK} {_GAP}(?:kill|murder|hurt|injure|maim) ",
            r"(?:get away with|cover up) (?:a )?murder",
        ),
        (
            "process",
            "thread",
            "job",
            "server",
            "container",
            "pod",
            "task",
            "session",
            "tab",
            "app",
            "program",
            "daemon",
            "query",
            "connection",
            "worker",
            "branch",
            "build",
            "video game",
            "in the game",
            "minecraft",
            "character",
            "laughing",
            "time",
            "mood",
            "vibe",
            "zombie",
            "npc",
            "boss fight",
            "shoot me an email",
            "shoot them an email",
            "shoot him an email",
            "shoot her an email",
            "shoot me a message",
            "novel",
            "photo",
            "photos",
            "pictures",
        ),
    ),
    "illegal": Topic(
        (
            rf"{_ASK} {_GAP}(?:cook|synthesi[sz]e|manufacture|smuggle|launder|counterfeit|shoplift|"
            r"forge|traffic|sell) (?:[a-z']+ ){0,2}(?:methamphetamine|meth|cocaine|crack|heroin|"
            r"fentanyl|drugs|money|cash|bills|passports?|ids|documents|guns|organs|people)",
            rf"{_ASK} {_GAP}(?:hack into|break into|steal|hotwire|pick the lock of|evade taxes)",
            r"(?:buy|sell|order) (?:[a-z']+ ){0,2}(?:stolen credit cards|fake passports|counterfeit money|"
            r"fentanyl|cocaine|heroin)",
        ),
        (
            "my own",
            "my account",
            "my car",
            "my house",
            "forgot",
            "locked out",
            "pentest",
            "ctf",
            "authorized",
            "industry",
            "market",
            "career",
            "the field",
            "legally",
            "legal way",
            "prevent",
            "protect",
            "detect",
            "illegalargumentexception",
            "illegal instruction",
            "illegal state",
            "for a novel",
            "in the game",
        ),
    ),
    "self_harm": Topic(
        (
            r"(?:kill myself|end my life|take my own life|want to die|commit suicide|hurt myself|cut myself|"
            r"suicide methods?|ways to die|overdose on purpose|hang myself)",
        ),
        ("laughing", "prevention", "hotline", "if i have to", "embarrassment", "process"),
    ),
    "sexual_minors": Topic(
        (
            r"(?:sexual|sex|nude|naked|explicit|erotic|porn)[a-z]* (?:[a-z']+ ){0,4}(?:children|child|"
            r"minors|minor|kids|kid|underage|preteen|schoolgirl|schoolboy|[0-9]{1,2}[ -]year[ -]old)",
            r"(?:children|child|minors|minor|kids|kid|underage|preteen|schoolgirl|schoolboy|[0-9]{1,2}[ -]"
            r"year[ -]old)[a-z]* (?:[a-z']+ ){0,4}(?:sexual|sex|nude|naked|explicit|erotic|porn)",
        ),
        (
            "protect",
            "prevent",
            "prevention",
            "report",
            "education",
            "awareness",
            "signs of",
            "survivor",
            "abuse hotline",
            "safeguard",
            "abuse material detection",
            "sex education",
            "sex ed",
            "talk to",
            "therapist",
            "parenting",
            "statistics",
        ),
    ),
    "hate": Topic(
        (
            r"(?:all|those|these) (?:[a-z']+ ){0,2}(?:should be (?:killed|exterminated|eliminated|"
            r"gassed|wiped out)|are (?:vermin|subhuman|parasites|cockroaches|a disease))",
            r"(?:exterminate|wipe out|gas|eliminate) (?:all )?(?:the )?(?:jews|muslims|christians|"
            r"blacks|whites|asians|immigrants|gays|arabs|hindus|mexicans|refugees)",
            r"(?:master race|racial purity|ethnic cleansing is|white power|race war now)",
        ),
        (
            "history",
            "historically",
            "museum",
            "documentary",
            "essay on",
            "analy",
            "why did",
            "holocaust education",
            "condemn",
        ),
    ),
    "weapons": Topic(
        (
            rf"{_ASK} {_GAP}(?:build|make|assemble|construct|3d[ -]print|manufacture|mix) "
            r"(?:[a-z']+ ){0,2}(?:bomb|pipe bomb|explosives?|ied|grenade|molotov|gun|firearm|rifle|"
            r"silencer|suppressor|ghost gun|nerve agent|bioweapon|chemical weapon|napalm|thermite|ricin|sarin)s?",
        ),
        (
            "bath bomb",
            "photobomb",
            "fork bomb",
            "zip bomb",
            "glitter bomb",
            "seed bomb",
            "bomb the",
            "in minecraft",
            "in the game",
            "nerf",
            "water gun",
            "glue gun",
            "heat gun",
            "staple gun",
            "spray gun",
            "toy",
            "cake",
            "costume",
            "prop",
        ),
    ),
}
TOPICS["illegal_activity"] = TOPICS["illegal"]


def _context(exceptions: tuple[str, ...]) -> Validator:
    # Exceptions start at a word's start ("tab" is not inside "stab"); "analy" covers analysis.
    found = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in exceptions) + ")").search

    def check(text: str, start: int, end: int, form: str) -> Span:
        if start > 0 and text[start - 1].isalnum() or end < len(text) and text[end].isalpha():
            return None
        if found(text[max(0, start - 24) : end + 24].lower()):
            return None
        return start, end

    return check


def topic_kinds(names: Iterable[str]) -> list[CustomKind]:
    kinds = []
    for name in names:
        topic = TOPICS[name]
        check = _context(topic.exceptions)
        for phrase in topic.phrases:
            kinds.append(CustomKind(name, phrase, context=check, caseless=True, folded=True))
    return kinds
