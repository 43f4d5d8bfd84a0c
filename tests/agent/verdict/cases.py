"""What the verdict tests share: the targets, addresses and fingerprints they judge by, and
the checks they make."""

from __future__ import annotations

from agent.model.measurement import Vantage, Verdict
from agent.verdict import decide
from tests.agent.observations import fingerprint_set, target

HTTPS = target("https://wikipedia.org/")
HTTP = target("http://wikipedia.org/")
OTHER_IP = "192.0.2.99"
BLOCKPAGE_IP = "203.0.113.80"
FPS = fingerprint_set()


def judge(
    agent: Vantage,
    control: Vantage | None = None,
    *,
    http: bool = False,
    online: bool | None = None,
    fingerprints: bool = False,
) -> Verdict:
    return decide(
        HTTP if http else HTTPS,
        agent,
        control,
        online=online,
        fingerprints=FPS if fingerprints else None,
    )


def assert_verdict(result: Verdict, expected: str, **evidence: object) -> None:
    assert result.verdict == expected, result
    for key, value in evidence.items():
        assert result.evidence.get(key) == value, (key, result)
