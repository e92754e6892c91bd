"""How hard a request looks, in [0, 1], computed locally in microseconds (no model call).

The compiled kernel (gateway/_native/complexity, with its pure-Python twin) counts what the
prompt shows (words, lines, code and math punctuation, list items, cue words by class) and
weighs the counts by a logistic model (the weights are in _complexity_py.py). The text
weights were fitted on the even-numbered entries of tests/data/complexity_prompts.json
(prompts labelled by whether a cheap model answers them well) and are checked on the
odd-numbered ones: at the default tier boundary 0.35, 95% of the
held-out simple prompts score below it and 93% of the complex ones above. What the text does
not show is weighed by hand, on the same logit scale: conversation depth, tools, the output
asked for (max_tokens) and a JSON schema to follow.
"""

from __future__ import annotations

from gateway._native.complexity import score

__all__ = ["score"]
