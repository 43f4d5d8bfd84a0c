"""Talk to a collector's control API from inside a lab namespace and print what came back as JSON.

Executed as ``ip netns exec NS python -m tests.e2e.control_runner OP JSON-ARGS``, so
the requests leave from that namespace (the agent's, behind the censors). ``fetch`` goes
through the real agent client, ``agent.api.control.HTTPControl``; ``post`` is a raw request,
for what the client never sends (bad input) and for response headers. Both sign as the
agent enrolled in ``state_dir`` (the lab's probe identity), unless it is None.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

from agent.api.auth import Credential, signed_headers
from agent.api.control import HTTPControl
from agent.api.paths import CACHE_HEADER, CONTROL_PATH
from agent.daemon.enrollment import KEY_FILE, read_state
from agent.daemon.identity import load_key
from agent.model.measurement import Target


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000, 1)


def credential(state_dir: str | None) -> Credential | None:
    if state_dir is None:
        return None
    path = Path(state_dir)
    return Credential(read_state(path).agent_id, load_key(path / KEY_FILE))


async def fetch(
    collector: str,
    url: str,
    addresses: list[str] | None = None,
    timeout: float = 10.0,
    ca_file: str | None = None,
    state_dir: str | None = None,
) -> dict[str, Any]:
    agent = credential(state_dir)
    async with HTTPControl(
        collector, timeout=timeout, ca_file=ca_file, credential=agent
    ) as control:
        start = time.monotonic()
        answer = await control.fetch(Target.parse(url), addresses or [])
        ms = _ms(start)
    if isinstance(answer, str):
        return {"ms": ms, "failure": answer, "vantage": None}
    return {"ms": ms, "failure": None, "vantage": dataclasses.asdict(answer)}


async def post(
    collector: str, body: Any = None, raw: str | None = None, state_dir: str | None = None
) -> dict[str, Any]:
    data = raw.encode() if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if (agent := credential(state_dir)) is not None:
        headers |= signed_headers(agent, "POST", CONTROL_PATH, data)
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(collector + CONTROL_PATH, data=data, headers=headers) as resp:
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
