"""Censor lab: bring the whole lab up and down, and drive it.

``Lab`` owns one run of the lab: a unique namespace prefix, a state directory
under /run/netsonde-lab/<prefix>, the censor rules and the daemons. Its state
file names the owning process, so a later run can tell a live lab from the
debris of a crashed one and remove the latter.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from tests import REPO
from tests.lab import addresses as plan
from tests.lab import censors, censors_more, pki, topology
from tests.lab.protocol_censors import quic_censor_config
from tests.lab.scenarios import DEFAULT_TABLE, ScenarioTable, load
from tests.lab.service import READY_LINE
from tests.lab.shell import LabError, in_ns, require_root, require_tools, run

REPO_ROOT = REPO
STATE_ROOT = Path(os.environ.get("NETSONDE_LAB_STATE", "/run/netsonde-lab"))
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 3.0
# A state directory without a state file is a lab still being created by another run,
# unless it is older than this.
CREATION_GRACE = 60.0
DNSMASQ_READY = "started, version"


@dataclass
class Service:
    name: str
    role: str
    argv: list[str]
    ready_marker: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log: TextIO | None = None

    def start(self, ns: str) -> None:
        self.log = self.log_path.open("w")
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            in_ns(ns, self.argv),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )

    def is_ready(self) -> bool:
        return self.ready_marker in self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def ask_to_stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def _process_start(pid: int) -> str | None:
    """The start time of a running (not zombie) process, which tells it from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _pid_alive(pid: int, started: str | None = None) -> bool:
    start = _process_start(pid)
    return start is not None and (started is None or start == started)


def _owner_alive(state: dict[str, Any]) -> bool:
    return _pid_alive(int(state["owner_pid"]), state.get("owner_started"))


def read_state(prefix: str, state_root: Path = STATE_ROOT) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((state_root / prefix / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def live_labs(state_root: Path = STATE_ROOT) -> list[dict[str, Any]]:
    labs = []
    if state_root.is_dir():
        for entry in sorted(state_root.iterdir()):
            state = read_state(entry.name, state_root)
            if state is not None and _owner_alive(state):
                labs.append(state)
    return labs


def _younger_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def cleanup_stale(state_root: Path = STATE_ROOT) -> list[str]:
    """Remove labs whose owner is gone: namespaces, processes, /etc/netns, state."""
    removed = []
    namespaces = topology.list_lab_namespaces()
    prefixes = set(namespaces)
    if state_root.is_dir():
        prefixes |= {p.name for p in state_root.iterdir() if topology.PREFIX_RE.match(p.name)}
    for prefix in sorted(prefixes):
        state = read_state(prefix, state_root)
        if state is not None and _owner_alive(state):
            continue
        if state is None and _younger_than(state_root / prefix, CREATION_GRACE):
            continue
        topology.destroy(prefix, namespaces.get(prefix, []))
        shutil.rmtree(state_root / prefix, ignore_errors=True)
        removed.append(prefix)
    remove_holder_logs(state_root)
    return removed


def remove_holder_logs(state_root: Path = STATE_ROOT) -> None:
    """The background holder's log (`python -m tests.lab up`) outlives its lab, so `up` can
    show why a lab failed; once the lab is gone and the log is not fresh, it goes too."""
    for log in state_root.glob("*.holder.log") if state_root.is_dir() else ():
        prefix = log.name.removesuffix(".holder.log")
        if read_state(prefix, state_root) is None and not _younger_than(log, CREATION_GRACE):
            log.unlink(missing_ok=True)


class Lab:
    def __init__(
        self,
        table: ScenarioTable | None = None,
        *,
        prefix: str | None = None,
        state_root: Path = STATE_ROOT,
    ) -> None:
        self.table = table if table is not None else load(DEFAULT_TABLE)
        self.prefix = prefix or f"nsl{secrets.token_hex(3)}"
        self.topo = topology.Topology(self.prefix)
        self.state_root = state_root
        self.state_dir = state_root / self.prefix
        self.services: list[Service] = []
        self._owned = False

    # -- life cycle -------------------------------------------------------------

    def up(self, *, progress: Any = None) -> Lab:
        require_root()
        require_tools()
        cleanup_stale(self.state_root)
        self.state_dir.mkdir(parents=True)
        self._owned = True
        atexit.register(self.down)
        self._write_state("starting")
        try:
            self._build(progress or (lambda message: None))
        except BaseException:
            self.down()
            raise
        self._write_state("ready")
        return self

    def _build(self, progress: Any) -> None:
        progress("certificates")
        served = [row.domain for row in self.table.rows if row.serves]
        intercepted = [row.domain for row in self.table.by_technique("tls-intercept")]
        bad = censors_more.bad_certs(self.table)
        lab_pki = pki.build(self.state_dir, served, intercepted, plan.BLOCKPAGE_SERVER, bad)
        self.pki = lab_pki
        progress("namespaces and links")
        topology.build(self.topo, [ip for row in self.table.rows for ip in (row.ip, row.ip6) if ip])
        progress("censor rules")
        for hop in plan.HOPS:
            rules = censors.hop_rules(self.table, hop)
            run(["iptables-restore"], ns=self.topo.ns(hop), input_text=rules.iptables_restore())
            rules6 = censors.hop_rules(self.table, hop, family=6)
            run(["ip6tables-restore"], ns=self.topo.ns(hop), input_text=rules6.iptables_restore())
            for command in rules.tc:
                run(["tc", *command], ns=self.topo.ns(hop))
        progress("servers and censors")
        self._plan_services(lab_pki)
        pid_dir = self.state_dir / "pids"
        pid_dir.mkdir(exist_ok=True)
        for service in self.services:
            service.start(self.topo.ns(service.role))
            assert service.process is not None
            (pid_dir / service.name).write_text(str(service.process.pid))
        self._wait_ready()

    def _plan_services(self, lab_pki: pki.LabPKI) -> None:
        certs = {row.domain: str(lab_pki.site_cert(row.domain)) for row in self.table.rows}
        self._add_dnsmasq("authoritative", "net", censors.authoritative_conf(self.table))
        self._add_dnsmasq("isp-resolver", "isp", censors.isp_resolver_conf(self.table))
        self._add_python("resolver", "net", "resolver", censors.public_resolver_config())
        webserver = censors.webserver_config(self.table, certs)
        self._add_python("webserver", "net", "webserver", webserver)
        if (broken := censors_more.broken_server_config(self.table)) is not None:
            self._add_python("broken-server", "net", "broken_server", broken)
        box_certs = {
            "blockpage": str(lab_pki.blockpage_cert),
            "interceptor": str(lab_pki.interceptor_cert),
        }
        for hop in plan.HOPS:
            boxes = censors.censor_http_config(self.table, hop, box_certs)
            if any(boxes.values()):
                self._add_python(f"censor-http-{hop}", hop, "censor_http", boxes)
            injector = censors.injector_config(self.table, hop)
            if injector is not None:
                self._add_python(f"injector-{hop}", hop, "injector", injector)
            if (fin := censors_more.fin_injector_config(self.table, hop)) is not None:
                self._add_python(f"fin-injector-{hop}", hop, "fin_injector", fin)
            if (tap := censors_more.onpath_injector_config(self.table, hop)) is not None:
                self._add_python(f"onpath-injector-{hop}", hop, "onpath_injector", tap)
            quic = quic_censor_config(self.table, hop)  # tests.lab.protocol_censors
            if quic is not None:
                self._add_python(f"quic-censor-{hop}", hop, "quic_censor", quic)

    def _add_dnsmasq(self, name: str, role: str, conf: str) -> None:
        conf_path = self.state_dir / f"{name}.conf"
        conf_path.write_text(conf)
        conf_path.chmod(0o644)
        argv = [
            "dnsmasq",
            "--keep-in-foreground",
            "--log-facility=-",
            f"--conf-file={conf_path}",
            f"--pid-file={self.state_dir / (name + '.pid')}",
        ]
        self._add(name, role, argv, DNSMASQ_READY)

    def _add_python(self, name: str, role: str, module: str, config: dict[str, Any]) -> None:
        config_path = self.state_dir / f"{name}.json"
        config_path.write_text(json.dumps(config, indent=2))
        self._add(name, role, [sys.executable, "-m", f"tests.lab.{module}", str(config_path)])

    def _add(self, name: str, role: str, argv: list[str], marker: str = READY_LINE) -> None:
        log_path = self.state_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(exist_ok=True)
        self.services.append(Service(name, role, argv, marker, log_path))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(self.services)
        while pending:
            for service in list(pending):
                assert service.process is not None
                if service.is_ready():
                    pending.remove(service)
                elif service.process.poll() is not None:
                    raise LabError(
                        f"lab service {service.name} exited with {service.process.returncode} "
                        f"before it was ready; its log ({service.log_path}):\n{service.log_tail()}"
                    )
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise LabError(f"lab services not ready after {READY_TIMEOUT:.0f}s: {names}")
            time.sleep(0.02)

    def down(self) -> None:
        if not self._owned:
            return
        self._owned = False
        atexit.unregister(self.down)
        # All asked at once, then each waited for: several poll for their stop request.
        for service in self.services:
            service.ask_to_stop()
        for service in self.services:
            service.stop()
        topology.destroy(self.prefix, self.topo.namespaces)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def _write_state(self, status: str) -> None:
        state = {
            "prefix": self.prefix,
            "owner_pid": os.getpid(),
            "owner_started": _process_start(os.getpid()),
            "status": status,
            "table": str(self.table.source),
            "namespaces": {role: self.topo.ns(role) for role in plan.ROLES},
            "ca_file": str(self.state_dir / "lab-ca.pem"),
            "created": time.time(),
        }
        tmp = self.state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_dir / "state.json")

    # -- driving a running lab ---------------------------------------------------

    @classmethod
    def attach(cls, prefix: str | None = None, state_root: Path = STATE_ROOT) -> Lab:
        """A handle on a lab brought up by another process (``python -m tests.lab up``)."""
        labs = [s for s in live_labs(state_root) if prefix in (None, s["prefix"])]
        if not labs:
            which = f"with prefix {prefix} " if prefix else ""
            raise LabError(f"no running lab {which}(bring one up with: python -m tests.lab up)")
        if len(labs) > 1:
            names = ", ".join(s["prefix"] for s in labs)
            raise LabError(f"several labs are running ({names}); choose one with --prefix")
        state = labs[0]
        return cls(load(Path(state["table"])), prefix=state["prefix"], state_root=state_root)

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "lab-ca.pem"

    @property
    def interceptor_ca_file(self) -> Path:
        return self.state_dir / "interceptor-ca.pem"

    def run(
        self, role: str, argv: list[str], *, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside one of the lab's namespaces."""
        return run(argv, ns=self.topo.ns(role), check=check, timeout=timeout)

    def shutdown(self, on: bool) -> None:
        """Cut (or restore) the agent's uplink at the ISP, as a shutdown order would."""
        topology.set_link(self.topo, "isp", plan.AGENT_FACING_IFACE["isp"], up=not on)

    def is_shut_down(self) -> bool:
        iface = plan.AGENT_FACING_IFACE["isp"]
        out = run(["ip", "-n", self.topo.ns("isp"), "-o", "link", "show", iface]).stdout
        return "state DOWN" in out or ",UP" not in out.split(">")[0]

    def status(self) -> dict[str, Any]:
        state = read_state(self.prefix, self.state_root) or {}
        existing = topology.list_lab_namespaces().get(self.prefix, [])
        services = {}
        for log in sorted((self.state_dir / "logs").glob("*.log")):
            services[log.stem] = self._service_alive(log.stem)
        return {
            "prefix": self.prefix,
            "status": state.get("status", "absent"),
            "owner_pid": state.get("owner_pid"),
            "scenario_table": str(self.table.source),
            "namespaces": {role: self.topo.ns(role) for role in plan.ROLES},
            "namespaces_present": sorted(existing),
            "ca_file": str(self.ca_file),
            "isp_resolver": plan.ISP_RESOLVER,
            "public_resolver": plan.PUBLIC_RESOLVER,
            "collector_address": plan.COLLECTOR,
            "blockpage_server": plan.BLOCKPAGE_SERVER,
            "benign_domain": self.table.benign_domain,
            "shutdown": self.is_shut_down() if existing else None,
            "services": services,
            "scenarios": [row.to_dict() for row in self.table.rows],
        }

    def _service_alive(self, name: str) -> bool:
        pid_file = self.state_dir / "pids" / name
        with contextlib.suppress(OSError, ValueError):
            return _pid_alive(int(pid_file.read_text()))
        return False
