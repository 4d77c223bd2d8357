"""URLs as people see them: credentials (``user:password@``) are masked before a URL reaches a message."""

from __future__ import annotations

__all__ = ["broker_url", "redact"]

MASK = "***"


def redact(url: str) -> str:
    """``url`` with the password (or a user-less token) before its last ``@`` replaced by ``***``."""
    scheme, sep, rest = url.rpartition("://")
    userinfo, at, hosts = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}{sep}{masked}@{hosts}"


def broker_url(url: str | list[str] | tuple[str, ...]) -> str:
    """A broker URL as rxstream reads it: Faust's ``aiokafka://`` is ``kafka://``, a Kafka URL without hosts
    means ``localhost:9092``, and a list of URLs is one URL of their hosts separated by ``;``."""
    if isinstance(url, (list, tuple)):
        hosts = [part.split("://", 1)[-1] for part in url]
        scheme = url[0].split("://", 1)[0] if url and "://" in url[0] else "kafka"
        url = f"{scheme}://{';'.join(hosts)}"
    if not isinstance(url, str):
        return url
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "aiokafka":
        scheme = "kafka"
    if sep and scheme.lower() == "kafka" and not rest.strip("/"):
        rest = "localhost:9092"
    return f"{scheme}{sep}{rest}" if sep else url
