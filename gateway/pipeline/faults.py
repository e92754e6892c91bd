"""Fault injection for failover drills: the x-gateway-fault header makes the gateway act as if
a provider failed. Only when the operator enables routing.fault_injection.

    x-gateway-fault: status=503; retry_after=2; target=openai/gpt-4o; times=1
    x-gateway-fault: stall=3          (hold the first byte this many seconds)
    x-gateway-fault: cut=5            (drop the stream after 5 frames)

`target` limits the fault to one provider (`openai`) or provider/model; `times` to the first
N matching attempts of the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.errors import InvalidRequest

if TYPE_CHECKING:
    from gateway.pipeline.call import Call

HEADER = "x-gateway-fault"


@dataclass(slots=True)
class Fault:
    status: int | None = None
    retry_after: str | None = None
    stall: float | None = None
    cut_after: int | None = None
    target: str | None = None
    times: int | None = None
    used: int = field(default=0)

    def applies(self, call: Call) -> bool:
        target = call.target
        if target is None:
            return False
        if self.target is not None and self.target not in (
            target.provider.name,
            f"{target.provider.name}/{target.model}",
        ):
            return False
        if self.times is not None and self.used >= self.times:
            return False
        self.used += 1
        return True


def _number(value: str, key: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number < 0:
        raise InvalidRequest(
            f"Invalid {HEADER} header: {key} must be a non-negative number.",
            param=HEADER,
            code="invalid_value",
        )
    return number


def parse_fault(header: str) -> Fault:
    fault = Fault()
    for item in header.split(";"):
        key, _, value = (part.strip() for part in item.partition("="))
        if not key:
            continue
        if key == "status":
            status = int(_number(value, key))
            if not 400 <= status <= 599:
                raise InvalidRequest(
                    f"Invalid {HEADER} header: status must be 400-599.", param=HEADER
                )
            fault.status = status
        elif key == "retry_after":
            _number(value, key)
            fault.retry_after = value
        elif key == "stall":
            fault.stall = _number(value, key)
        elif key == "cut":
            fault.cut_after = int(_number(value, key))
        elif key == "target":
            fault.target = value
        elif key == "times":
            fault.times = int(_number(value, key))
        else:
            raise InvalidRequest(
                f"Invalid {HEADER} header: unknown key {key!r}.", param=HEADER, code="invalid_value"
            )
    return fault
