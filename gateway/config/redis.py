"""The shared Redis, as one section instead of a URL: a single server, a Redis Cluster by its
seed nodes, or a Sentinel-watched service. It becomes the same URL `redis_url` takes
(`redis://`, `redis+cluster://`, `redis+sentinel://`), so every Redis user reads one form."""

import re
from typing import Annotated

from msgspec import Meta, Struct

_NODE = re.compile(r"^[A-Za-z0-9._-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


class RedisCfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: str | None = None
    # A Redis Cluster: any of its nodes as host:port (the client finds the rest).
    cluster: bool = False
    nodes: list[str] = []
    # Redis Sentinel: the service name the sentinels watch; `nodes` are the sentinels.
    sentinel: str | None = None
    db: Annotated[int, Meta(ge=0, le=15)] = 0

    def __post_init__(self) -> None:
        if self.url is not None and (self.cluster or self.sentinel or self.nodes):
            raise ValueError("give `url` or `nodes` (with `cluster` or `sentinel`), not both")
        if self.cluster and self.sentinel:
            raise ValueError("`cluster: true` and `sentinel` exclude each other")
        if (self.cluster or self.sentinel) and not self.nodes:
            raise ValueError("`nodes` must list at least one host:port")
        if self.nodes and not (self.cluster or self.sentinel):
            raise ValueError("`nodes` needs `cluster: true` or `sentinel: <service>`")
        for node in self.nodes:
            if not _NODE.match(node):
                raise ValueError(f"{node!r} is not a host:port")
        if self.sentinel is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", self.sentinel):
            raise ValueError(f"sentinel service {self.sentinel!r} is not a plain name")
        if self.cluster and self.db:
            raise ValueError("a Redis Cluster has only database 0")

    def as_url(self) -> str | None:
        if self.url is not None:
            return self.url
        if self.cluster:
            return "redis+cluster://" + ",".join(self.nodes)
        if self.sentinel is not None:
            return f"redis+sentinel://{','.join(self.nodes)}/{self.sentinel}/{self.db}"
        return None
