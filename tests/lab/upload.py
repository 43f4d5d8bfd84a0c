"""Censor lab: enrol with the collector and upload recorded wire records as signed batches.

Run inside the agent namespace as
``python -m tests.lab.upload COLLECTOR_URL TOKEN RECORDS_FILE KEY_PATH``; prints one JSON
object. It stands in for the agent daemon's uploader (a later issue) using the agent's
own key, batch and wire code, so what reaches the collector is exactly what an agent sends.
"""

from __future__ import annotations

import base64
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed

from agent.daemon.identity import create_key
from agent.wire.batch import MAX_MEASUREMENTS, encode_batch
from agent.wire.keys import public_key_bytes
from agent.wire.record import measurement_from_obj

ENROLL_PATH = "/api/v1/enroll"
MEASUREMENTS_PATH = "/api/v1/measurements"


def _post(url: str, body: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    collector, token, records_file, key_path = sys.argv[1:5]
    key = create_key(Path(key_path))
    enrol = json.dumps(
        {"token": token, "public_key": base64.b64encode(public_key_bytes(key)).decode()}
    ).encode()
    status, answer = _post(collector + ENROLL_PATH, enrol, "application/json")
    if status != 201:
        print(json.dumps({"enroll_status": status, "answer": answer}))
        return 1
    agent_id = answer["agent_id"]
    with Path(records_file).open("rb") as handle:
        measurements = [measurement_from_obj(o) for o in msgpack.Unpacker(handle, raw=False)]
    stored = duplicates = 0
    statuses = []
    for seq, start in enumerate(range(0, len(measurements), MAX_MEASUREMENTS)):
        batch = encode_batch(agent_id, seq, measurements[start : start + MAX_MEASUREMENTS], key)
        status, answer = _post(collector + MEASUREMENTS_PATH, batch, "application/msgpack")
        statuses.append(status)
        if status == 200:
            stored += len(answer["stored"])
            duplicates += len(answer["duplicates"])
    result = {"agent_id": agent_id, "statuses": statuses, "stored": stored, "dups": duplicates}
    print(json.dumps(result))
    return 0 if all(s == 200 for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
