"""A real SMTP server on 127.0.0.1 (aiosmtpd) for the e-mail sink's tests: STARTTLS or implicit
TLS with a self-signed certificate made here (``cryptography``, which apache-beam already
needs), AUTH checked by an authenticator that remembers the mechanism each login used, and
every message taken kept as bytes with its envelope."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


class _OwnDeprecation(logging.Filter):
    """aiosmtpd 1.4.6 logs a warning about its own use of Session.login_data at every AUTH."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Session.login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_OwnDeprecation())


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 and localhost, valid for a day: (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsradar test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


class MailServer:
    """``users``: login -> password (None: no AUTH offered); ``tls``: "starttls" (required before
    AUTH and MAIL), "implicit" or "none"; ``exclude``: AUTH mechanisms not offered;
    ``answers``: SMTP answers to the first DATA commands (e.g. "451 try later"), then 250."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, tls: str = "starttls",
                 exclude: tuple[str, ...] = (), answers: tuple[str, ...] = ()):
        self.messages: list[Received] = []
        self.logins: list[tuple[str, str, bool]] = []  # (mechanism, login, accepted)
        self.answers = list(answers)
        self.lock = threading.Lock()
        self.port = free_port()
        self.cert, key = self_signed(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        kwargs: dict = {"hostname": "127.0.0.1", "port": self.port, "auth_exclude_mechanism": list(exclude)}
        if users is not None:
            kwargs.update(authenticator=self._authenticator(users), auth_required=True)
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif tls == "implicit":
            kwargs.update(ssl_context=context)
        else:
            kwargs.update(auth_require_tls=False)
        self.controller = Controller(self, **kwargs)

    def _authenticator(self, users):
        def check(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
            ok = bool(login) and users.get(login) == auth_data.password.decode()
            with self.lock:
                self.logins.append((mechanism, login, ok))
            # handled=False: the server answers 535 itself (True would leave the client waiting)
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        return check

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        with self.lock:
            if self.answers:
                return self.answers.pop(0)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
