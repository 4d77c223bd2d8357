"""Credentials turn into the aiokafka client arguments the Kafka transport passes to every client."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from rxstream.auth import SASLCredentials, SSLCredentials
from rxstream.errors import ConfigurationError


def test_sasl_plain_over_plaintext() -> None:
    assert SASLCredentials("app", "s3cret").client_kwargs() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "app",
        "sasl_plain_password": "s3cret",
    }


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_scram_over_tls_when_given_a_context(mechanism: str) -> None:
    context = ssl.create_default_context()
    kwargs = SASLCredentials("app", "s3cret", mechanism=mechanism, ssl_context=context).client_kwargs()
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "app",
        "sasl_plain_password": "s3cret",
        "ssl_context": context,
    }


def test_sasl_rejects_an_unknown_mechanism() -> None:
    with pytest.raises(ConfigurationError, match="'GSSAPI'"):
        SASLCredentials("app", "s3cret", mechanism="GSSAPI")


def test_credentials_are_frozen_and_keep_passwords_out_of_repr() -> None:
    creds = SASLCredentials("app", "s3cret")
    assert "s3cret" not in repr(creds)
    assert "topsecret" not in repr(SSLCredentials(cafile="ca.pem", password="topsecret"))
    with pytest.raises(FrozenInstanceError):
        creds.username = "other"  # type: ignore[misc]


def test_ssl_with_a_ready_context() -> None:
    context = ssl.create_default_context()
    assert SSLCredentials(context=context).client_kwargs() == {
        "security_protocol": "SSL",
        "ssl_context": context,
    }


def test_ssl_context_and_files_together_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        SSLCredentials(context=ssl.create_default_context(), cafile="ca.pem")


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate and its key (PEM)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not found")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_ssl_context_built_from_files(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    kwargs = SSLCredentials(cafile=str(cert), certfile=str(cert), keyfile=str(key)).client_kwargs()
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert any(c.get("subject") == ((("commonName", "localhost"),),) for c in context.get_ca_certs())


def test_ssl_with_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError, match=r"nope\.pem"):
        SSLCredentials(cafile=missing).client_kwargs()
