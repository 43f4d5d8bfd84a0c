#!/usr/bin/env python3
"""netsonde evidence bundle verifier: checks a bundle offline, with no collector or database.

Usage: python3 netsonde_verify.py BUNDLE [--collector-key BASE64]

One file, on purpose: it needs only Python 3.11+, ``cryptography`` and ``msgpack`` (Debian:
python3-cryptography python3-msgpack), imports nothing of netsonde, and can be copied and
read whole. It checks every byte of the archive, every file's SHA-256, the manifest's
signature by the collector's key, every batch's signature by its agent's key, that each
measurement is the record its agent signed where the bundle says and matches the query, and
that the summary's counts follow. Exit 0: verified; 1: failures, each listed; 2: usage.
``netsonde-collector verify`` runs this code and ``collector.evidence.bundle`` writes with
its format functions: one definition of the format (docs/design/007-evidence.md).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

import msgpack  # type: ignore[import-untyped]  # no stubs or py.typed
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "netsonde-evidence-1"
ROOT = "netsonde-evidence/"
README, AGENTS = ROOT + "README.txt", ROOT + "agents.json"
MEASUREMENTS, SUMMARY = ROOT + "measurements.jsonl", ROOT + "summary.json"
MANIFEST, SIGNATURE = ROOT + "manifest.json", ROOT + "manifest.sig"
COLLECTOR_KEY = ROOT + "collector-key.txt"  # base64 of the raw 32 bytes, and a newline
# Not in the manifest, whose SHA-256 (the bundle id) must not depend on the collector's key.
UNLISTED = (MANIFEST, SIGNATURE, COLLECTOR_KEY)
BATCHES = ROOT + "batches/"
# What each signature is over: the agent's batch (agent.wire.batch), the collector's manifest.
BATCH_DOMAIN = b"netsonde-batch-v1\0"
MANIFEST_DOMAIN = b"netsonde-evidence-v1\0"
BLOCK = 512
TRAILER = bytes(2 * BLOCK)
MAX_MEMBER = 1 << 31  # one file; the measurement list of a very large bundle is the largest


class BundleError(Exception):
    """The archive is not a bundle in its canonical form; nothing further can be checked."""


# -- the format, shared with the writer (collector.evidence.bundle) ---------------------


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value in a bundle: sorted keys, no spaces, ASCII."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def tar_header(name: str, size: int) -> bytes:
    """The ustar header of a member: a regular file, mode 0644, owner 0, time 0."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, 0, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")


def tar_padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


def batch_name(number: int) -> str:
    return f"{BATCHES}{number:06d}.msgpack"


def record_summary(record: bytes) -> tuple[str, int, str, str]:
    """A wire record's id (UUID text), start (Unix ms), URL and verdict, read with plain
    msgpack; ValueError if it has not those fields (docs/wire-format.md, "Measurement")."""
    obj = msgpack.unpackb(record, raw=False, strict_map_key=False)
    if not isinstance(obj, dict) or not isinstance(key := obj.get("i"), bytes) or len(key) != 16:
        raise ValueError("not a measurement record (no 16-byte id)")
    started = obj.get("t", int.from_bytes(key[:6]))  # absent: the UUIDv7's own time
    verdict, url = obj.get("r"), obj.get("u")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("v"), str):
        raise ValueError("the record has no verdict")
    if not isinstance(url, str) or type(started) is not int:
        raise ValueError("the record has no URL or start time")
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", started, url, verdict["v"]


def url_host(url: str) -> str:
    """The host a collector files a URL under: lower case, no trailing dot, IDNA."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


@dataclass
class Summary:
    """The counts a report quotes, from the measurement lines; the writer and the checker
    both count with this, so a bundle's summary.json must equal what the checker counts."""

    by_verdict: Counter[str] = field(default_factory=Counter)
    by_asn_verdict: dict[str, Counter[str]] = field(default_factory=dict)
    agents: set[str] = field(default_factory=set)
    batches: set[str] = field(default_factory=set)
    unverifiable: int = 0
    reclassified: int = 0

    def add(self, line: dict[str, Any], agent_verdict: str) -> None:
        asn = "unknown" if line["asn"] is None else f"AS{line['asn']}"
        self.by_verdict[line["verdict"]] += 1
        self.by_asn_verdict.setdefault(asn, Counter())[line["verdict"]] += 1
        self.agents.add(line["agent"])
        if line["batch"] is None:
            self.unverifiable += 1
        else:
            self.batches.add(line["batch"])
        self.reclassified += agent_verdict != line["verdict"]

    def as_json(self) -> dict[str, Any]:
        total = sum(self.by_verdict.values())
        return {
            "measurements": total,
            "agents": len(self.agents),
            "batches": len(self.batches),
            "individually_verifiable": total - self.unverifiable,
            "not_individually_verifiable": self.unverifiable,
            "reclassified": self.reclassified,
            "by_verdict": dict(self.by_verdict),
            "by_asn": {asn: sum(c.values()) for asn, c in self.by_asn_verdict.items()},
            "by_asn_verdict": {asn: dict(c) for asn, c in self.by_asn_verdict.items()},
        }


def _read(fh: IO[bytes], size: int, what: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise BundleError(f"the archive ends inside {what}")
    return data


def read_archive(fh: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """Each member's name and bytes, in order. BundleError unless every byte of the file is
    where the canonical form puts it: a changed header, padding or trailer byte fails here,
    a changed content byte fails its hash later."""
    seen: set[str] = set()
    while True:
        block = _read(fh, BLOCK, "a header")
        if block == bytes(BLOCK):
            if _read(fh, BLOCK, "the trailer") != bytes(BLOCK) or fh.read(1):
                raise BundleError("the archive does not end with exactly two zero blocks")
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "ascii", "strict")
        except (tarfile.HeaderError, ValueError) as exc:  # ValueError: a name not ASCII
            raise BundleError(f"a damaged header after {sorted(seen)[-1:]}: {exc}") from None
        name = info.name
        if tar_header(name, info.size) != block or not 0 <= info.size <= MAX_MEMBER:
            raise BundleError(f"{name!r}: the header is not in the canonical form")
        if not name.startswith(ROOT) or ".." in name or name in seen:
            raise BundleError(f"{name!r}: an unexpected or repeated member")
        seen.add(name)
        data = _read(fh, info.size, name)
        if _read(fh, len(tar_padding(info.size)), name) != tar_padding(info.size):
            raise BundleError(f"{name!r}: non-zero padding")
        yield name, data


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    bundle_id: str = ""

    @property
    def ok(self) -> bool:
        return not self.failures


def _json(files: dict[str, bytes], name: str, report: Report) -> Any:
    try:
        return json.loads(files[name])
    except KeyError:
        report.failures.append(f"{name}: missing")
    except ValueError as exc:
        report.failures.append(f"{name}: not JSON: {exc}")
    return None


def key_text(raw: bytes) -> bytes:
    """The one byte form of a public key in a bundle (and as the collector publishes it)."""
    return base64.b64encode(raw) + b"\n"


def _check_signature(files: dict[str, bytes], key: str | None, report: Report) -> None:
    """The manifest's signature by the key in the bundle, and that key ``key`` (base64)."""
    text = files.get(COLLECTOR_KEY, b"")
    try:
        # Compared re-encoded: base64 decodes some changed texts to the same bytes.
        signer = base64.b64decode(text.removesuffix(b"\n"), validate=True)
        if key_text(signer) != text:
            raise ValueError("not canonical base64")
        Ed25519PublicKey.from_public_bytes(signer).verify(
            files.get(SIGNATURE, b""), MANIFEST_DOMAIN + files[MANIFEST]
        )
    except (ValueError, binascii.Error, InvalidSignature):
        report.failures.append(f"{SIGNATURE}: the manifest's signature does not verify")
        return
    shown = f"{text.decode().strip()} (fingerprint {hashlib.sha256(signer).hexdigest()[:16]})"
    if key is None:
        report.notes.append(
            f"signed by collector key {shown}: compare it with the key the collector "
            "publishes (GET /api/v1/collector-key), or pass --collector-key"
        )
    elif key.strip() != text.decode().strip():
        report.failures.append(f"the manifest is signed by another collector key: {shown}")


def _check_manifest(files: dict[str, bytes], key: str | None, report: Report) -> Any:
    """The manifest, if it is one; failures listed for its signature and every hash."""
    manifest = _json(files, MANIFEST, report)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        report.failures.append(f"{MANIFEST}: not a {FORMAT} manifest")
        return None
    report.bundle_id = hashlib.sha256(files[MANIFEST]).hexdigest()
    _check_signature(files, key, report)
    listed = {entry.get("name"): entry for entry in manifest.get("files", [])}
    if [*listed, *UNLISTED] != list(files):
        report.failures.append("the archive's files are not those of the manifest, in order")
    for name, data in files.items():
        if name in UNLISTED:
            continue
        entry = listed.pop(name, None)
        if entry is None:
            report.failures.append(f"{name}: not in the manifest")
        elif entry.get("sha256") != hashlib.sha256(data).hexdigest():
            report.failures.append(f"{name}: its SHA-256 differs from the manifest's")
    report.failures += [f"{name}: in the manifest but not in the archive" for name in listed]
    return manifest


def _agent_keys(files: dict[str, bytes], report: Report) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    agents = _json(files, AGENTS, report)
    for entry in agents.get("agents", []) if isinstance(agents, dict) else []:
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            keys[entry["agent"]] = Ed25519PublicKey.from_public_bytes(raw)
        except (KeyError, TypeError, ValueError, binascii.Error):
            report.failures.append(f"{AGENTS}: a bad entry {str(entry)[:80]}")
    return keys


def _batch_records(data: bytes, keys: dict[str, Ed25519PublicKey]) -> tuple[str, list[bytes]]:
    """A batch's agent and its records as the bytes signed; ValueError saying what fails."""
    envelope = msgpack.unpackb(data, raw=False)
    if not isinstance(envelope, dict) or set(envelope) != {"b", "g"}:
        raise ValueError("not a signed batch")
    body, signature = envelope["b"], envelope["g"]
    if not isinstance(body, bytes) or not isinstance(signature, bytes):
        raise ValueError("not a signed batch")
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(body), 1))
    unpacker.feed(body)
    agent, records = None, []
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key == "a":
            agent = unpacker.unpack()
        elif key == "m":
            for _ in range(unpacker.read_array_header()):
                start = unpacker.tell()
                unpacker.skip()
                records.append(body[start : unpacker.tell()])
        else:
            unpacker.skip()
    if agent not in keys:
        raise ValueError(f"its agent {agent!r} is not in {AGENTS}")
    try:
        keys[agent].verify(signature, BATCH_DOMAIN + body)
    except InvalidSignature:
        raise ValueError(f"the signature does not verify with the key of agent {agent!r}") from None
    return agent, records


def _check_line(
    line: dict[str, Any], batches: dict[str, tuple[str, list[bytes]]], query: dict[str, Any]
) -> str:
    """The agent's own verdict for one measurement line; ValueError saying what fails."""
    if line["batch"] is None:
        record = base64.b64decode(line["record"], validate=True)
    elif line["batch"] not in batches:
        raise ValueError(f"its batch {line['batch']} is missing or did not verify")
    else:
        agent, records = batches[line["batch"]]
        if agent != line["agent"] or not 0 <= line["index"] < len(records):
            raise ValueError(f"not in {line['batch']} at index {line['index']}")
        record = records[line["index"]]
    uid, started, url, verdict = record_summary(record)
    if uid != line["id"] or started != line["measured_ms"] or url_host(url) != line["domain"]:
        raise ValueError("its id, time or domain differs from the record's")
    if not query["since_ms"] <= started < query["until_ms"]:
        raise ValueError("measured outside the query's period")
    # AS 0 in a query stands for the unknown network, stored as null.
    if query["domain"] not in (None, line["domain"]) or (
        query["asns"] and (line["asn"] or 0) not in query["asns"]
    ):
        raise ValueError("not of the query's domain or networks")
    return verdict


def _check_measurements(files: dict[str, bytes], manifest: Any, report: Report) -> None:
    keys = _agent_keys(files, report)
    batches: dict[str, tuple[str, list[bytes]]] = {}
    for name in sorted(n for n in files if n.startswith(BATCHES)):
        try:
            batches[name] = _batch_records(files[name], keys)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            report.failures.append(f"{name}: {exc}")
    query, summary, seen = manifest.get("query", {}), Summary(), set()
    for number, text in enumerate(files.get(MEASUREMENTS, b"").splitlines(), 1):
        try:
            line = json.loads(text)
            if line["id"] in seen:
                raise ValueError("listed twice")
            seen.add(line["id"])
            summary.add(line, _check_line(line, batches, query))
        except (KeyError, TypeError, ValueError, binascii.Error, msgpack.UnpackException) as exc:
            report.failures.append(f"{MEASUREMENTS} line {number}: {exc!s:.200}")
    report.summary = summary.as_json()
    if _json(files, SUMMARY, report) != report.summary:
        report.failures.append(f"{SUMMARY}: its counts do not follow from the measurements")
    if summary.unverifiable:
        report.notes.append(
            f"{summary.unverifiable} measurement(s) cannot be checked against their agent's "
            "key on their own: stored before the collector kept signed batches"
        )


def verify_bundle(path: str, collector_key: str | None = None) -> Report:
    """Checks the bundle at ``path``; ``collector_key`` (base64) is the key it must be
    signed with, as the collector publishes it."""
    try:
        with open(path, "rb") as fh:
            return verify_file(fh, collector_key)
    except OSError as exc:
        return Report(failures=[f"cannot read {path}: {exc}"])


def verify_file(fh: IO[bytes], collector_key: str | None = None) -> Report:
    """:func:`verify_bundle` for an open file."""
    report = Report()
    try:
        files = dict(read_archive(fh))
    except BundleError as exc:
        report.failures.append(f"the archive: {exc}")
        return report
    manifest = _check_manifest(files, collector_key, report)
    if manifest is not None:
        _check_measurements(files, manifest, report)
    return report


def main(argv: list[str] | None = None, prog: str = "netsonde_verify.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", metavar="BUNDLE", help="the bundle file (.tar)")
    parser.add_argument("--collector-key", metavar="BASE64", help="the collector's public key")
    args = parser.parse_args(argv)
    return print_report(verify_bundle(args.bundle, args.collector_key))


def print_report(report: Report) -> int:
    """Says what was verified, or lists each failure; the exit status."""
    counts = report.summary
    print(f"bundle {report.bundle_id}" if report.bundle_id else "bundle: unreadable")
    for note in report.notes:
        print(f"note: {note}")
    if not report.ok:
        print(f"FAILED: {len(report.failures)} problem(s):")
        print("".join(f"  - {failure}\n" for failure in report.failures), end="")
        return 1
    print(
        f"OK: {counts['measurements']} measurement(s) from {counts['agents']} agent(s) in "
        f"{counts['batches']} signed batch(es); every hash, signature and count verified"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
