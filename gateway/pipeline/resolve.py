"""Stage: the requested model name becomes a Route (an alias, or `provider/model`)."""

from __future__ import annotations

from gateway.pipeline.call import Call, Handler, Reply
from gateway.routing.catalog import Catalog


class Resolve:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        assert call.view is not None
        call.route = self._catalog.resolve(call.view.model)
        return await call_next(call)
