"""Credentials for a Kafka broker: SASL and SSL settings turned into the keyword arguments aiokafka takes.

Pass one to ``KafkaTransport(url, credentials=...)``; the transport hands the same arguments to its
producer, consumers and admin client::

    tls = ssl.create_default_context()
    creds = SASLCredentials("app", "secret", mechanism="SCRAM-SHA-256", ssl_context=tls)
    transport = KafkaTransport("kafka://broker:9093", credentials=creds)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped,unused-ignore]

from .errors import ConfigurationError

__all__ = ["Credentials", "SASLCredentials", "SSLCredentials"]

SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SASLCredentials:
    """A SASL username and password (PLAIN or SCRAM), over TLS when ``ssl_context`` is given."""

    username: str
    password: str = field(repr=False)
    mechanism: str = "PLAIN"
    ssl_context: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        """Reject a mechanism aiokafka cannot speak before any connection is tried."""
        if self.mechanism not in SASL_MECHANISMS:
            raise ConfigurationError(
                f"unsupported SASL mechanism {self.mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}"
            )

    def client_kwargs(self) -> dict[str, Any]:
        """The aiokafka client arguments: SASL_SSL with a context, else SASL_PLAINTEXT."""
        kwargs: dict[str, Any] = {
            "security_protocol": "SASL_SSL" if self.ssl_context is not None else "SASL_PLAINTEXT",
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        return kwargs


@dataclass(frozen=True)
class SSLCredentials:
    """TLS to the broker: a ready ``context``, or CA and client-certificate files to build one from."""

    context: ssl.SSLContext | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """A context and files together would leave it unclear which one applies."""
        if self.context is not None and any((self.cafile, self.certfile, self.keyfile, self.password)):
            raise ConfigurationError(
                "SSLCredentials takes either context= or cafile/certfile/keyfile/password, not both"
            )

    def ssl_context(self) -> ssl.SSLContext:
        """The given context, or one built by aiokafka's helper from the files (hostname checks on)."""
        if self.context is not None:
            return self.context
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.cafile, certfile=self.certfile, keyfile=self.keyfile, password=self.password
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"cannot build an SSL context from cafile={self.cafile!r}, certfile={self.certfile!r}, "
                f"keyfile={self.keyfile!r}: {exc}"
            ) from exc
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """The aiokafka client arguments: security_protocol SSL and the context."""
        return {"security_protocol": "SSL", "ssl_context": self.ssl_context()}


Credentials = SASLCredentials | SSLCredentials
"""What ``KafkaTransport(credentials=...)`` accepts."""
