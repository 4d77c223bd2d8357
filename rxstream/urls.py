"""URLs as people see them: credentials (``user:password@``) are masked before a URL reaches a message."""

from __future__ import annotations

__all__ = ["redact"]

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
