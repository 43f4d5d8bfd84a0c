"""Agent daemon: enrolment and the agent state it leaves in the state directory.

:func:`enroll` creates the agent's key (``agent.key``) and registers its public half with the
collector; the agent id it gets back is saved next to the key in ``agent.json``, which
:func:`read_state` reads back. Files here are written with mode 0600 and renamed into place
(``agent.daemon.files``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.daemon.files import write_private
from agent.daemon.identity import create_key, load_key
from agent.wire.keys import IdentityError, public_key_bytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.daemon.config import AgentConfig

__all__ = [
    "KEY_FILE",
    "STATE_FILE",
    "AgentState",
    "DaemonError",
    "enroll",
    "read_enrolled",
    "read_state",
]

KEY_FILE = "agent.key"
STATE_FILE = "agent.json"


class DaemonError(Exception):
    """The daemon or enrolment cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class AgentState:
    agent_id: str
    collector: str  # the URL it enrolled with


def read_state(state_dir: Path) -> AgentState:
    path = Path(state_dir) / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DaemonError(
            f"{path}: this agent is not enrolled; run: netsonde-agent enroll "
            "--collector URL --token-file FILE"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DaemonError(f"{path}: cannot read the agent state: {exc}") from None
    agent_id = data.get("agent_id") if isinstance(data, dict) else None
    collector = data.get("collector") if isinstance(data, dict) else None
    if not isinstance(agent_id, str) or not agent_id or not isinstance(collector, str):
        raise DaemonError(f"{path}: not an agent state file (no agent_id or collector)")
    return AgentState(agent_id, collector)


def _write_state(state_dir: Path, state: AgentState) -> None:
    body = json.dumps({"agent_id": state.agent_id, "collector": state.collector}, indent=2)
    path = state_dir / STATE_FILE
    try:
        write_private(path, (body + "\n").encode())
    except OSError as exc:
        raise DaemonError(f"cannot write the agent state {path}: {exc}") from exc


async def enroll(
    collector_url: str,
    token: str,
    state_dir: Path,
    *,
    ca_file: str | None = None,
    timeout: float = 30.0,
) -> AgentState:
    """Registers this agent with the collector and saves its id; returns the saved state.

    An agent already enrolled is refused: enrolling again would orphan its spooled results
    under the old id. A key left by an enrolment that failed half-way is reused, so retrying
    with a fresh token just works.
    """
    # Here, not at the top: read_state serves the daemon's lean idle mode, which has no aiohttp.
    from agent.api.enroll import EnrollError, request_enrollment

    state_dir = Path(state_dir)
    if (state_dir / STATE_FILE).exists():
        raise DaemonError(
            f"already enrolled ({state_dir / STATE_FILE} exists); remove the state directory "
            "to enrol this machine as a new agent"
        )
    key_path = state_dir / KEY_FILE
    try:
        key = load_key(key_path) if key_path.exists() else create_key(key_path)
    except IdentityError as exc:
        raise DaemonError(str(exc)) from exc
    url = collector_url.rstrip("/")
    try:
        agent_id = await request_enrollment(
            url, token, public_key_bytes(key), ca_file=ca_file, timeout=timeout
        )
    except EnrollError as exc:
        raise DaemonError(str(exc)) from None
    state = AgentState(agent_id, url)
    _write_state(state_dir, state)
    return state


def read_enrolled(config: AgentConfig) -> tuple[AgentState, Ed25519PrivateKey]:
    """The agent's state and key, as either daemon mode starts with them (the spool is
    opened by ``agent.daemon.disk.open_spool``). Raises :class:`DaemonError` if the agent
    is not enrolled or its key cannot be used."""
    state = read_state(config.state_dir)
    try:
        key = load_key(config.state_dir / KEY_FILE)
    except IdentityError as exc:
        raise DaemonError(str(exc)) from exc
    return state, key
