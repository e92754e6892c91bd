"""How hard a request looks, in [0, 1], computed locally in microseconds (no model call).

The prompt's counts come from the compiled kernel (gateway/_native/complexity: words, lines,
code and math punctuation, list items, cue words by class); here they are weighed by a
logistic model. The text weights were fitted on the even-numbered entries of
tests/data/complexity_prompts.json (prompts labelled by whether a cheap model answers them
well) and are checked on the odd-numbered ones: at the default tier boundary 0.35, 95% of the
held-out simple prompts score below it and 93% of the complex ones above. What the text does
not show is weighed by hand, on the same logit scale: conversation depth, tools, the output
asked for (max_tokens) and a JSON schema to follow.
"""

from __future__ import annotations

import math

from gateway._native.complexity import features

# Fitted weights, in the order of gateway._native._complexity_py.FEATURES after transforming
# each count (log1p for sizes, a cap of 5 for questions and cue classes).
BIAS = -3.27
_WEIGHTS = (
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
TURN = 0.25  # per user turn after the first, up to MAX_TURNS of them
MAX_TURNS = 4
TOOLS = 0.6
STRUCTURED = 0.4
LONG_OUTPUT = ((4000, 1.0), (1000, 0.5))  # max_tokens at least this much: added to the logit


def score(
    text: str,
    *,
    turns: int = 1,
    tools: bool = False,
    max_tokens: int | None = None,
    structured: bool = False,
) -> float:
    """The request's complexity: its last user turn's text, and what the request asks for."""
    (words, lines, questions, code, fenced, digits, maths, items,
     *cues) = features(text)  # fmt: skip
    w = _WEIGHTS
    logit = (
        BIAS
        + w[0] * math.log1p(words)
        + w[1] * math.log1p(lines)
        + w[2] * min(questions, 5)
        + w[3] * math.log1p(code)
        + w[4] * (fenced > 0)
        + w[5] * math.log1p(digits)
        + w[6] * math.log1p(maths)
        + w[7] * math.log1p(items)
    )
    for weight, count in zip(w[8:], cues, strict=True):
        logit += weight * min(count, 5)
    logit += TURN * min(max(turns - 1, 0), MAX_TURNS)
    if tools:
        logit += TOOLS
    if structured:
        logit += STRUCTURED
    if max_tokens:
        logit += next((add for least, add in LONG_OUTPUT if max_tokens >= least), 0.0)
    return 1.0 / (1.0 + math.exp(-logit))
