"""What the complexity scorer reads in a prompt: the typed specification of _complexity_c,
which must agree with it exactly.

`features(text)` counts, in the first MAX_SCAN bytes of the lower-cased UTF-8 text: words
(runs of letters and digits; any non-ASCII byte counts as a letter), lines, question marks,
code punctuation, code fences, digits, math operators, list items (a line opening with
`-`, `*` or a number followed by `.` or `)`), and the words of each cue class below. The
weighting of these counts into a score lives in gateway/routing/complexity.py, shared by both
builds, so the twins only have to agree on integers.
"""

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
