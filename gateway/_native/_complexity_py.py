"""What the complexity scorer reads in a prompt: the typed specification of _complexity_c,
which must agree with it exactly.

`features(text)` counts, in the first MAX_SCAN bytes of the lower-cased UTF-8 text: words
(runs of letters and digits; any non-ASCII byte counts as a letter), lines, question marks,
code punctuation, code fences, digits, math operators, list items (a line opening with
`-`, `*` or a number followed by `.` or `)`), and the words of each cue class below. The
`score` weighs them by a logistic model (gateway/routing/complexity.py says how the weights
were fitted), adding what the text does not show; both builds add the same terms in the same
order, so they agree to the last bit.
"""

import math

MAX_SCAN = 16384
CLASSES = ("reason", "code", "math", "steps", "constraint", "long", "simple")
FEATURES = (
    "words", "lines", "questions", "code_symbols", "fences", "digits", "math_symbols",
    "list_items", *CLASSES,
)  # fmt: skip
CUES: dict[str, str] = {
    "reason": "why analyze analyse analysis compare comparison contrast evaluate assess tradeoff"
    " tradeoffs trade justify critique implications consequences argue argument reasoning"
    " rigorous rigorously pros cons recommend design architect architecture strategy"
    " optimize optimise investigate diagnose hypothesis nuanced evidence explain",
    "code": "function implement implementation code debug refactor algorithm python javascript"
    " typescript java rust golang sql regex api class method bug stack trace compile exception"
    " script unittest tests test async concurrency database query endpoint kubernetes docker"
    " recursion complexity def return import",
    "math": "prove proof theorem lemma derive derivation integral derivative equation equations"
    " solve probability matrix eigenvalue induction calculus polynomial converge convergence"
    " optimal expected variance",
    "steps": "step steps first then finally plan outline walkthrough procedure stages phase"
    " phases",
    "constraint": "must exactly least most without only ensure each every include including"
    " format json yaml table schema constraints requirements limit",
    "long": "essay report detailed comprehensive thorough article chapter document proposal"
    " paper whitepaper story",
    "simple": "capital define definition translate synonym antonym spell who when year name"
    " meaning hello hi thanks convert abbreviation",
}
_CLASS_OF: dict[bytes, int] = {
    word.encode(): i for i, cls in enumerate(CLASSES) for word in CUES[cls].split()
}
_CODE = frozenset(b"{}();[]<>")
_MATH = frozenset(b"+*/^=%")


def _inside(byte: int) -> bool:
    return (97 <= byte <= 122) or (48 <= byte <= 57) or byte >= 128


def features(text: str) -> tuple[int, ...]:  # noqa: C901 - one pass, as the C loop
    data = text.lower().encode("utf-8")[:MAX_SCAN]
    n = len(data)
    counts = [0] * len(FEATURES)
    base = FEATURES.index("reason")
    words = lines = questions = code = fences = digits = math = items = 0
    start = -1
    line_start = True
    i = 0
    while i <= n:
        byte = data[i] if i < n else 32
        if i < n and _inside(byte):
            if start < 0:
                start = i
        elif start >= 0:
            words += 1
            cls = _CLASS_OF.get(data[start:i])
            if cls is not None:
                counts[base + cls] += 1
            start = -1
        if i == n:
            break
        if line_start and byte not in b" \t":
            line_start = False
            if byte in b"-*" and i + 1 < n and data[i + 1] == 32:
                items += 1
            elif 48 <= byte <= 57:
                j = i
                while j < n and 48 <= data[j] <= 57:
                    j += 1
                if j < n and data[j] in b".)":
                    items += 1
        if byte == 10:
            lines += 1
            line_start = True
        elif byte == 63:
            questions += 1
        elif byte in _CODE:
            code += 1
        elif byte in _MATH:
            math += 1
        elif 48 <= byte <= 57:
            digits += 1
        elif byte == 96 and data[i : i + 3] == b"```":
            fences += 1
            i += 3
            continue
        i += 1
    counts[:8] = [words, lines, questions, code, fences, digits, math, items]
    return tuple(counts)


# Fitted weights, in FEATURES order, each applied to a transformed count: log1p for sizes, a
# cap of 5 for questions and cue classes, presence for a code fence.
BIAS = -3.27
WEIGHTS = (
    0.88,  # log1p(words)
    0.0,  # log1p(lines)
    -1.36,  # questions (capped at 5): short questions are mostly lookups
    0.34,  # log1p(code punctuation)
    0.0,  # a code fence
    0.49,  # log1p(digits)
    0.57,  # log1p(math operators)
    0.0,  # log1p(list items)
    1.34,  # reason cues
    1.33,  # code cues
    1.52,  # math cues
    1.05,  # steps cues
    0.21,  # constraint cues
    0.39,  # long-form cues
    -1.35,  # simple cues
)
# Weighed by hand, on the same logit scale: what a request asks beyond its text.
TURN = 0.25  # per user turn after the first, up to MAX_TURNS of them
MAX_TURNS = 4
TOOLS = 0.6
STRUCTURED = 0.4
LONG_OUTPUT = 4000, 1.0, 1000, 0.5  # max_tokens at least 4000: +1.0; at least 1000: +0.5


def score(
    text: str,
    turns: int = 1,
    tools: bool = False,
    max_tokens: int | None = None,
    structured: bool = False,
) -> float:
    counts = features(text)
    logit = BIAS
    for k in range(8):
        count = counts[k]
        if k == 2:
            value = float(min(count, 5))
        elif k == 4:
            value = 1.0 if count > 0 else 0.0
        else:
            value = math.log1p(count)
        logit += WEIGHTS[k] * value
    for k in range(8, len(FEATURES)):
        logit += WEIGHTS[k] * float(min(counts[k], 5))
    logit += TURN * float(min(max(turns - 1, 0), MAX_TURNS))
    if tools:
        logit += TOOLS
    if structured:
        logit += STRUCTURED
    if max_tokens is not None and max_tokens >= LONG_OUTPUT[0]:
        logit += LONG_OUTPUT[1]
    elif max_tokens is not None and max_tokens >= LONG_OUTPUT[2]:
        logit += LONG_OUTPUT[3]
    return 1.0 / (1.0 + math.exp(-logit))
