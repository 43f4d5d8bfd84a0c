"""deploy/install-agent.sh in a Debian 12 root of another architecture, under qemu-user:
arm64 (wheels from PyPI) and armhf (cffi and msgpack built from source, with the gcc,
python3-dev and libffi-dev the script installs).

Opt-in, never in CI: it downloads a Debian root per architecture (cached in
/var/cache/netsonde-chroot) and runs pip emulated, minutes per architecture. Needs root,
the network, and binfmt_misc. Run it with:

    sudo NETSONDE_ARCH_CHROOT=1 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/deploy/test_arch_chroot.py -s
"""

from __future__ import annotations

import os
import time

import pytest

from tests.deploy.chroot import (
    ARCHES,
    ensure_binfmt,
    ensure_host_tools,
    ensure_root,
    in_root,
    log,
    working_copy,
)

pytestmark = [
    pytest.mark.arch_chroot,
    pytest.mark.skipif(
        os.environ.get("NETSONDE_ARCH_CHROOT") != "1",
        reason="opt-in (downloads Debian roots, minutes per arch under qemu): "
        "sudo NETSONDE_ARCH_CHROOT=1 .venv/bin/python -m pytest tests/deploy/test_arch_chroot.py",
    ),
]

VENV = "/opt/netsonde/venv"


@pytest.mark.parametrize("arch_name", sorted(ARCHES))
def test_install_agent_in_a_foreign_arch_chroot(arch_name: str) -> None:
    arch = ARCHES[arch_name]
    ensure_host_tools()
    ensure_binfmt(arch)
    pristine, debootstrap_s = ensure_root(arch)
    machine = in_root(pristine, "uname", "-m")
    assert machine.returncode == 0, machine.stderr
    log(f"{arch.name}: uname -m in the chroot: {machine.stdout.strip()}")
    with working_copy(pristine, arch) as root:
        started = time.monotonic()
        install = in_root(
            root, "bash", "/usr/src/netsonde/deploy/install-agent.sh",
            "--collector", "http://127.0.0.1:9", "--no-systemd",
        )  # fmt: skip
        install_s = time.monotonic() - started
        output = install.stdout + install.stderr
        log(f"{arch.name}: install-agent.sh exit {install.returncode} in {install_s:.0f} s")
        assert install.returncode == 0, output
        if arch.wheels:
            assert f"not needed on {arch.name}" in output
            assert in_root(root, "dpkg", "-s", "gcc").returncode != 0
        else:
            assert "installing gcc python3-dev libffi-dev" in output
            assert in_root(root, "dpkg", "-s", "gcc", "python3-dev", "libffi-dev").returncode == 0

        help_ = in_root(
            root, "runuser", "-u", "netsonde", "--", f"{VENV}/bin/netsonde-agent", "--help"
        )
        assert help_.returncode == 0, help_.stderr
        assert "usage:" in help_.stdout
        # msgpack's C extension, not the slow pure-Python fallback.
        imports = in_root(
            root, f"{VENV}/bin/python", "-c",
            "import cryptography, msgpack; from cryptography.hazmat.primitives.asymmetric import"
            " ed25519; ed25519.Ed25519PrivateKey.generate();"
            " print(cryptography.__version__, msgpack.version, msgpack.Packer.__module__)",
        )  # fmt: skip
        assert imports.returncode == 0, imports.stderr
        assert "msgpack._cmsgpack" in imports.stdout, imports.stdout
        log(
            f"{arch.name}: ok (debootstrap {debootstrap_s:.0f} s, install {install_s:.0f} s):"
            f" {imports.stdout.strip()}"
        )
