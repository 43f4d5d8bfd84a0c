"""Censor lab: run system tools, inside or outside a namespace, with clear errors.

Every command the lab runs goes through ``run`` so a failure always says which
command failed and what it printed, and a missing tool names the Debian package
that provides it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

# tool -> Debian package that provides it
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "tc": "iproute2",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "ip6tables-restore": "iptables",
    "dnsmasq": "dnsmasq-base",
}


class LabError(RuntimeError):
    """The lab cannot be built or driven; the message says why and what to do."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the censor lab needs root: it creates network namespaces, veth links and "
            "iptables rules (run as root, for example with sudo)"
        )


def missing_tools(tools: dict[str, str] = REQUIRED_TOOLS) -> dict[str, str]:
    """Tools that are not on PATH (or in /usr/sbin, which non-login shells may lack)."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return {tool: pkg for tool, pkg in tools.items() if shutil.which(tool, path=path) is None}


def require_tools(tools: dict[str, str] = REQUIRED_TOOLS) -> None:
    missing = missing_tools(tools)
    if missing:
        names = ", ".join(sorted(missing))
        packages = " ".join(sorted(set(missing.values())))
        raise LabError(f"missing tool(s): {names}; install them with: apt-get install {packages}")


def in_ns(ns: str | None, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


def run(
    argv: Sequence[str],
    *,
    ns: str | None = None,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    full = in_ns(ns, argv)
    try:
        done = subprocess.run(
            full, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"cannot run {full[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(full)}") from exc
    if check and done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise LabError(f"command failed ({done.returncode}): {' '.join(full)}\n{output}")
    return done
