"""Talk to a collector's control API from inside a lab namespace and print what came back as JSON.

Executed as ``ip netns exec NS python -m tests.e2e.control_runner OP JSON-ARGS``, so
the requests leave from that namespace (the agent's, behind the censors). ``fetch`` goes
through the real agent client, ``agent.control.HTTPControl``; ``post`` is a raw request,
for what the client never sends (bad input) and for response headers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from agent.api.control import HTTPControl
from agent.api.paths import CACHE_HEADER, CONTROL_PATH
from agent.model.measurement import Target


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


async def fetch(
    collector: str,
    url: str,
    addresses: list[str] | None = None,
    timeout: float = 10.0,
    ca_file: str | None = None,
) -> dict[str, Any]:
    async with HTTPControl(collector, timeout=timeout, ca_file=ca_file) as control:
        start = time.monotonic()
        answer = await control.fetch(Target.parse(url), addresses or [])
        ms = _ms(start)
    if isinstance(answer, str):
        return {"ms": ms, "failure": answer, "vantage": None}
    return {"ms": ms, "failure": None, "vantage": dataclasses.asdict(answer)}


async def post(collector: str, body: Any = None, raw: str | None = None) -> dict[str, Any]:
    data = raw.encode() if raw is not None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(
            collector + CONTROL_PATH, data=data, headers={"Content-Type": "application/json"}
        ) as resp:
            payload = await resp.read()
            ms = _ms(start)
            result: dict[str, Any] = {
                "ms": ms,
                "status": resp.status,
                "content_type": resp.content_type,
                "cache": resp.headers.get(CACHE_HEADER),
                "length": len(payload),
            }
            if resp.content_type == "application/json":
                result["json"] = json.loads(payload)
            return result


async def health(collector: str, timeout: float = 2.0) -> dict[str, Any]:
    async with HTTPControl(collector, timeout=timeout) as control:
        return {"reachable": await control.reachable()}


OPS: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "fetch": fetch,
    "post": post,
    "health": health,
}


def main() -> None:
    op, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(OPS[op](**args)), default=str))


if __name__ == "__main__":
    main()
