"""Fast parameter binding for the stdlib's sqlite3, process-wide.

sqlite3 binds exact ints, floats and strs as they are; any other value (None, a bool, bytes)
goes through its adaptation protocol, which looks up `__adapt__` and `__conform__` and, for
these types, fails both, raising and formatting an AttributeError each time: ~2,500
instructions a value. A ledger row has 36 columns, most of them NULL: binding it cost 6-11 µs
(1.4 µs with no None in it), 8% of all the work a request with the ledger on did
(benchmarks/RESULTS.md, "the ledger's binding"). An adapter registered for a type is found by
one dict lookup instead; these return exactly what sqlite3 binds anyway (NULL, 0/1, a BLOB),
so nothing else in the process that uses sqlite3 sees a difference. None of them is a base
type, so sqlite3's fast path for ints, floats and strs stays on. (The ledger's raw rows are
BLOBs of a thousand since schema 5, store/blocks.py; the adapters serve the other tables.)
"""

from __future__ import annotations

import sqlite3

_NULL: dict[None, None] = {}

sqlite3.register_adapter(type(None), _NULL.get)  # a C call: None -> None, bound as NULL
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b
