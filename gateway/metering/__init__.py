"""Metering: exact token counts, prices, the cost of every request, and the usage ledger.

tokens.py counts (the compiled BPE in gateway/_native), prices.py prices, row.py is one
ledger row and its minute rollups, meter.py queues rows off the request path and writes them
to a store (gateway/store), query.py answers the usage API from the rollups.
"""
