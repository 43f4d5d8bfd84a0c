"""Censor lab: the lab's certificate authorities and server certificates.

Two CAs: the lab CA, which agents are told to trust (as a private deployment
would), and an interceptor CA, which nobody trusts, for the TLS interception
scenario and the blockpage server's https port. The ``bad-cert`` rows get a
certificate that fails for everyone instead of their own: expired, issued for
another name, or from a third CA that nobody trusts either.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class LabPKI:
    ca_file: Path
    interceptor_ca_file: Path
    cert_dir: Path

    def site_cert(self, domain: str) -> Path:
        return self.cert_dir / f"{domain}.pem"

    @property
    def interceptor_cert(self) -> Path:
        return self.cert_dir / "_interceptor.pem"

    @property
    def blockpage_cert(self) -> Path:
        return self.cert_dir / "_blockpage.pem"


def build(
    directory: Path,
    site_domains: Iterable[str],
    intercepted: Iterable[str],
    blockpage_host: str,
    bad: Mapping[str, str] | None = None,
) -> LabPKI:
    """Write both CAs and one key-plus-chain PEM per site into ``directory``; ``bad`` maps a
    site to the way its certificate fails (``expired``, ``wrong-host``, ``unknown-root``)."""
    cert_dir = directory / "certs"
    cert_dir.mkdir(parents=True, exist_ok=True)
    pki = LabPKI(directory / "lab-ca.pem", directory / "interceptor-ca.pem", cert_dir)
    lab_ca = trustme.CA(organization_name="netsonde censor lab")
    lab_ca.cert_pem.write_to_path(str(pki.ca_file))
    for domain in site_domains:
        cert = lab_ca.issue_cert(domain, f"www.{domain}")
        cert.private_key_and_cert_chain_pem.write_to_path(str(pki.site_cert(domain)))
    rogue_ca = trustme.CA(organization_name="Lab interceptor (untrusted)")
    rogue_ca.cert_pem.write_to_path(str(pki.interceptor_ca_file))
    names = sorted(set(intercepted)) or ["intercepted.invalid"]
    rogue_ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(
        str(pki.interceptor_cert)
    )
    rogue_ca.issue_cert(blockpage_host).private_key_and_cert_chain_pem.write_to_path(
        str(pki.blockpage_cert)
    )
    for domain, kind in (bad or {}).items():
        _bad_cert(lab_ca, domain, kind).private_key_and_cert_chain_pem.write_to_path(
            str(pki.site_cert(domain))
        )
    return pki


def _bad_cert(lab_ca: trustme.CA, domain: str, kind: str) -> trustme.LeafCert:
    if kind == "expired":
        now = datetime.datetime.now(datetime.UTC)
        past = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        return lab_ca.issue_cert(domain, f"www.{domain}", not_before=past[0], not_after=past[1])
    if kind == "wrong-host":
        return lab_ca.issue_cert(f"wrong-host.{domain}.invalid")
    if kind == "unknown-root":
        return trustme.CA(organization_name="Unknown root (nobody trusts it)").issue_cert(
            domain, f"www.{domain}"
        )
    raise ValueError(f"unknown bad certificate kind {kind!r}")
