"""OpenAI's Responses API (/v1/responses) in front of every provider: passed through to those
that have it (native.py), translated to and from chat completions for the rest (to_chat.py,
from_chat.py), with conversation state for `previous_response_id` (state.py)."""
