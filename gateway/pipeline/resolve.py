"""Stage: the requested model becomes a Route (an alias, `provider/model`, or a route sent in
the x-gateway-config header), and x-gateway-metadata is read for conditional routing."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import msgspec

from gateway.config.errors import ConfigError, explain
from gateway.config.routing import RouteCfg
from gateway.errors import InvalidRequest
from gateway.pipeline.call import Call, Handler, Reply
from gateway.pipeline.parse import check_structure
from gateway.routing.catalog import Catalog
from gateway.routing.plan import Route

CONFIG_HEADER = "x-gateway-config"
METADATA_HEADER = "x-gateway-metadata"
_CACHED_ROUTES = 256  # header routes are rebuilt only when the header changes
_ANY = msgspec.json.Decoder()


def _metadata(header: str) -> dict[str, Any]:
    check_structure(header.encode("latin-1"), METADATA_HEADER)
    try:
        value = _ANY.decode(header)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"Invalid {METADATA_HEADER} header: expected a JSON object.",
            param=METADATA_HEADER,
            code="invalid_value",
        )
    return value


class Resolve:
    def __init__(self, catalog: Catalog, *, config_header: bool) -> None:
        self._catalog = catalog
        self._config_header = config_header
        self._header_routes: OrderedDict[tuple[str, str], Route] = OrderedDict()

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        assert call.view is not None
        headers = call.http.headers
        metadata = headers.get(METADATA_HEADER)
        if metadata:
            call.metadata = _metadata(metadata)
        config = headers.get(CONFIG_HEADER)
        if config:
            call.route = self._from_header(config, call.view.model)
        else:
            call.route = self._catalog.resolve(call.view.model)
        return await call_next(call)

    def _from_header(self, header: str, model: str) -> Route:
        if not self._config_header:
            raise InvalidRequest(
                f"The {CONFIG_HEADER} header is disabled on this gateway.",
                param=CONFIG_HEADER,
                code="config_header_disabled",
            )
        key = (header, model)
        route = self._header_routes.get(key)
        if route is not None:
            self._header_routes.move_to_end(key)
            return route
        check_structure(header.encode("latin-1"), CONFIG_HEADER)
        try:
            data = _ANY.decode(header)
            cfg = msgspec.convert(data, RouteCfg)
            route = self._catalog.build(model, cfg, "")
        except msgspec.ValidationError as err:  # a subclass of DecodeError: first
            raise _invalid(str(explain(err, data))) from None
        except msgspec.DecodeError:
            raise InvalidRequest(
                f"Invalid {CONFIG_HEADER} header: not JSON.",
                param=CONFIG_HEADER,
                code="invalid_json",
            ) from None
        except ConfigError as err:
            raise _invalid(str(err)) from None
        self._header_routes[key] = route
        if len(self._header_routes) > _CACHED_ROUTES:
            self._header_routes.popitem(last=False)
        return route


def _invalid(problem: str) -> InvalidRequest:
    where = problem.lstrip(".")
    return InvalidRequest(
        f"Invalid {CONFIG_HEADER} header: {where}", param=CONFIG_HEADER, code="invalid_config"
    )
