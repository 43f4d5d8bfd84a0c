"""Helpers for tests/deploy/test_arch_chroot.py: a Debian 12 root of another architecture
(arm64, armhf), debootstrapped once, cached, and run under qemu-user through binfmt_misc.

The pristine root is cached in /var/cache/netsonde-chroot/<arch>; each test works on a copy
of it, so the packages the install script adds (gcc on armhf) never reach the cache.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import REPO

CACHE = Path("/var/cache/netsonde-chroot")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
HOST_PACKAGES = ("debootstrap", "qemu-user-static", "binfmt-support")
# What install-agent.sh expects to find (it installs the build tools itself, not these).
INCLUDE = ("python3", "python3-venv", "ca-certificates")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
READY = ".netsonde-ready"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The host's CA bundle, when it names one (a TLS-intercepting proxy's CA), as seen in the
# chroot; pip there is told to use it. And the proxy settings, passed on as they are.
HOST_CA = "/etc/ssl/certs/netsonde-host-ca.crt"
CA_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass(frozen=True)
class Arch:
    name: str  # Debian's
    qemu: str  # the binfmt_misc handler and /usr/bin/<qemu>-static
    wheels: bool  # PyPI has wheels for the agent's compiled dependencies


ARCHES = {
    "arm64": Arch("arm64", "qemu-aarch64", wheels=True),
    "armhf": Arch("armhf", "qemu-arm", wheels=False),
}


def log(message: str) -> None:
    print(f"[chroot {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*argv: str, timeout: float = 3600.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
    )


def check(*argv: str, timeout: float = 3600.0) -> str:
    result = run(*argv, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


@contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock, across processes (the arches may run in parallel)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_host_tools() -> None:
    """debootstrap, qemu-user-static and binfmt-support, installed with apt-get if missing."""
    with locked("apt"):
        missing = [
            p
            for p in HOST_PACKAGES
            if run("dpkg-query", "-W", "-f=${db:Status-Status}", p).stdout != "installed"
        ]
        if missing:
            log(f"apt-get install {' '.join(missing)}")
            env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
            for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
                subprocess.run(argv, check=True, env=env, capture_output=True, timeout=1800)


def ensure_binfmt(arch: Arch) -> None:
    """binfmt_misc mounted and the arch's qemu handler registered and enabled."""
    if not (BINFMT / "register").exists():
        check("mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT))
    handler = BINFMT / arch.qemu
    if not handler.exists() or "enabled" not in handler.read_text():
        check("update-binfmts", "--enable", arch.qemu)
    if not handler.exists() or "enabled" not in handler.read_text():
        raise RuntimeError(f"binfmt_misc has no enabled {arch.qemu} handler after update-binfmts")


def ensure_root(arch: Arch) -> tuple[Path, float]:
    """The cached pristine root for ``arch`` (debootstrapped if not there yet), and how long
    debootstrap took (0 when cached)."""
    final = CACHE / arch.name
    with locked(arch.name):
        if (final / READY).exists():
            return final, 0.0
        started = time.monotonic()
        work = CACHE / f"{arch.name}.partial"
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        log(f"debootstrap --foreign {arch.name} into {work}")
        check(
            "debootstrap", f"--arch={arch.name}", "--foreign", "--variant=minbase",
            f"--include={','.join(INCLUDE)}", SUITE, str(work), MIRROR,
        )  # fmt: skip
        shutil.copy(f"/usr/bin/{arch.qemu}-static", work / "usr/bin")
        log(f"debootstrap --second-stage {arch.name} (emulated)")
        try:
            check("chroot", str(work), "/debootstrap/debootstrap", "--second-stage")
        finally:
            umount_below(work)
        (work / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
        (work / READY).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
        work.rename(final)
        took = time.monotonic() - started
        log(f"{arch.name} root ready in {took:.0f} s")
        return final, took


def umount_below(root: Path) -> None:
    """Unmounts whatever is mounted at or below ``root``, deepest first."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    below = [m for m in mounts if m == str(root) or m.startswith(f"{root}/")]
    for mount in sorted(below, key=len, reverse=True):
        run("umount", "-l", mount)


@contextmanager
def working_copy(pristine: Path, arch: Arch) -> Iterator[Path]:
    """A copy of the pristine root with /proc, /dev, /sys, DNS and this checkout (as
    /usr/src/netsonde, without .git or .venv), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"netsonde-chroot-{arch.name}-", dir="/var/tmp"))
    try:
        check("cp", "-a", f"{pristine}/.", str(path))
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        bundles = [os.environ[k] for k in CA_ENV if os.path.isfile(os.environ.get(k, ""))]
        if bundles:
            shutil.copy(bundles[0], path / HOST_CA.lstrip("/"))
        check("mount", "-t", "proc", "proc", str(path / "proc"))
        check("mount", "-t", "sysfs", "sysfs", str(path / "sys"))
        check("mount", "--rbind", "/dev", str(path / "dev"))
        src = path / "usr/src/netsonde"
        src.mkdir(parents=True)
        tar = subprocess.Popen(
            ["tar", "-C", str(REPO), "--exclude=./.git", "--exclude=./.venv",
             "--exclude=__pycache__", "--exclude=.*_cache", "--exclude=.hypothesis",
             "--exclude=build", "--exclude=*.egg-info", "-cf", "-", "."],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert tar.stdout is not None
        with tar.stdout:
            subprocess.run(["tar", "-C", str(src), "-xf", "-"], stdin=tar.stdout, check=True)
        if tar.wait() != 0:
            raise RuntimeError("tar of the checkout failed")
        yield path
    finally:
        umount_below(path)
        shutil.rmtree(path, ignore_errors=True)


def in_root(root: Path, *argv: str, timeout: float = 3600.0) -> subprocess.CompletedProcess[str]:
    """``argv`` run in the chroot as root, with a clean environment (but the proxy)."""
    env = [f"{k}={os.environ[k]}" for k in PROXY_ENV if k in os.environ]
    if (root / HOST_CA.lstrip("/")).exists():
        env.append(f"PIP_CERT={HOST_CA}")
    return run(
        "chroot", str(root), "/usr/bin/env", "-i", f"PATH={PATH}", "HOME=/root",
        "LANG=C.UTF-8", *env, *argv, timeout=timeout,
    )  # fmt: skip
