"""Censor lab: the demo's dashboard: its results uploaded to the lab collector, which is then
opened to the host's browser at http://127.0.0.1:PORT/ until Ctrl-C.

The upload is the agent's own wire path (``tests.lab.upload``: enrolment, signed batches)
from the agent namespace, so the dashboard shows what an agent in the censored network sent;
the collector puts the agent's side in AS64500 (:func:`write_geoip`). The port on the host is
a relay into the lab's net namespace (``tests.lab.relay``): the lab is never routed to the
host, and the port listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from tests.lab import addresses as plan
from tests.lab.agent import enrolment_token
from tests.lab.collector import PORT, LabCollector
from tests.lab.relay import Relay
from tests.lab.shell import LabError

__all__ = ["DEFAULT_PORT", "LAB_ASN", "LAB_CC", "keep_serving", "upload", "write_geoip"]

DEFAULT_PORT = 8080
# The network the lab's agent side is in, for the collector's GeoIP lookup: a documentation
# AS number (RFC 5398), in Pakistan, as the scenario table's sites are.
LAB_ASN, LAB_CC = 64500, "PK"


def write_geoip(path: Path) -> str:
    """A GeoIP (MaxMind) database putting the lab's shared address space, the agent's side,
    in AS64500, PK; for the collector's ``--geoip``."""
    from mmdb_writer import MMDBWriter  # development tools: only the lab needs them
    from netaddr import IPSet  # type: ignore[import-untyped]  # no stubs published

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    record = {
        "autonomous_system_number": LAB_ASN,
        "autonomous_system_organization": "netsonde lab ISP",
        "country": {"iso_code": LAB_CC},
    }
    writer.insert_network(IPSet(["100.64.0.0/10"]), record)
    writer.to_db_file(str(path))
    return str(path)


def upload(collector: LabCollector, records: Path) -> dict[str, Any]:
    """Enrols a "lab agent" and uploads ``records`` (wire records, as the probe wrote them)
    from the agent namespace; the upload's summary (agent id, stored, duplicates)."""
    lab = collector.lab
    token = enrolment_token(collector.db_url)
    key = collector.directory / "demo-agent-key.pem"
    argv = [sys.executable, "-m", "tests.lab.upload", collector.url, token, str(records), str(key)]
    done = lab.run("agent", argv, timeout=120)
    if done.returncode != 0:
        raise LabError(f"uploading the demo's results failed: {done.stdout}{done.stderr}")
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def keep_serving(collector: LabCollector, console: Console, port: int) -> None:
    """The dashboard at http://127.0.0.1:``port``/ on the host until Ctrl-C (or SIGTERM)."""
    token = collector.operator_token()
    # Ctrl-C even when started from a script, whose background jobs ignore SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with Relay(collector.lab, "net", plan.COLLECTOR, PORT, port=port) as relay:
        console.print(
            f"\n[bold]The dashboard: {relay.url}/[/bold]  (the lab collector, relayed to this "
            "host's loopback only)\n"
            f"Agent health is for the operator: log in at {relay.url}/login with this token:\n"
            f"  {token}\n"
            "Press Ctrl-C to stop the collector and take the lab down.",
            soft_wrap=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            console.print("stopping")
