"""Test doubles: a DNS resolver we control and a throwaway certificate authority."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webhooks.ssrf import IPAddress
from webhooks.transport import TransportConfig

# What PASSGATE_WEBHOOK_ALLOWED_CIDRS holds in tests; ::1 too because some hosts resolve
# localhost to both loopback addresses.
LOOPBACK_CIDRS = ["127.0.0.0/8", "::1/128"]
# Short limits so failure cases finish fast; production uses 15 s / 5 s.
FAST = TransportConfig(total_timeout=1.0, connect_timeout=0.5)
# For tests about anything but timeouts: a loaded CI machine can stall a local answer past
# FAST's one second, which would turn a 410 or a 500 into a timeout.
PATIENT = TransportConfig(total_timeout=10.0, connect_timeout=5.0)


class FakeResolver:
    """Answers from a table instead of DNS; each name maps to a list of answers, one per call.

    The last answer repeats, so ``{"a.test": [["127.0.0.1"], ["10.0.0.1"]]}`` resolves to
    127.0.0.1 once and to 10.0.0.1 from then on (DNS rebinding).
    """

    def __init__(
        self, table: dict[str, list[list[str]]] | None = None, *, delay: float = 0.0
    ) -> None:
        self.table = table or {}
        self.delay = delay
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if self.delay:
            await asyncio.sleep(self.delay)
        answers = self.table.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        index = min(self.calls.count(host), len(answers)) - 1
        return [ipaddress.ip_address(a) for a in answers[index]]


class ThrowawayCA:
    """A throwaway CA that issues server certificates for made-up hostnames."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "passgate test CA")])
        now = dt.datetime.now(dt.UTC)
        self._name = name
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    def client_context(self) -> ssl.SSLContext:
        pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        return ssl.create_default_context(cadata=pem)

    def server_context(self, hostname: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_path = self._dir / f"{hostname}.crt"
        key_path = self._dir / f"{hostname}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context
