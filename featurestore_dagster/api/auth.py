"""Bearer tokens with ``read`` and ``write`` roles, and the loopback rule without tokens.

Tokens come from ``FEATURESTORE_API_TOKENS`` (``token:role`` pairs separated by commas or
whitespace) and from the file named by ``FEATURESTORE_API_TOKENS_FILE`` (one pair a line,
``#`` comments). ``write`` includes ``read``. Tokens are compared in constant time and never
printed: errors name the position of a bad entry, not its text.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from featurestore_dagster.errors import FeatureStoreError

ENV_TOKENS = "FEATURESTORE_API_TOKENS"
ENV_TOKENS_FILE = "FEATURESTORE_API_TOKENS_FILE"
ROLES = ("read", "write")
# Roles that satisfy a requirement: a write token may read.
GRANTS = {"read": {"read", "write"}, "write": {"write"}}


class AuthConfigError(FeatureStoreError):
    """Tokens that cannot be used (bad role, empty token, unreadable file)."""


@dataclass(frozen=True)
class TokenTable:
    """The configured tokens (bytes, for ``hmac.compare_digest``) and their roles."""

    entries: tuple[tuple[bytes, str], ...] = ()
    anonymous_read: bool = False
    sources: tuple[str, ...] = field(default=())

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def role_of(self, token: str) -> str | None:
        """The role of ``token``, or None. Every entry is compared, so the time taken does
        not depend on which (or whether one) matched."""
        given = token.encode("utf-8", "surrogateescape")
        found = None
        for secret, role in self.entries:
            if hmac.compare_digest(given, secret) and found is None:
                found = role
        return found

    def summary(self) -> str:
        """What is configured, without the tokens themselves."""
        if not self.enabled:
            return "no tokens: loopback clients only, no authentication"
        counts = {role: sum(1 for _, r in self.entries if r == role) for role in ROLES}
        reads = "anonymous reads allowed" if self.anonymous_read else "reads need a token"
        return f"{counts['read']} read and {counts['write']} write token(s); {reads}"

    def __repr__(self) -> str:  # never show the secrets
        return f"TokenTable({self.summary()})"


def parse_pairs(text: str, *, where: str) -> list[tuple[bytes, str]]:
    """``token:role`` pairs from ``text`` (commas, whitespace or new lines between them)."""
    pairs = []
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    items = [item for line in lines for item in line.replace(",", " ").split()]
    for index, item in enumerate(items, start=1):
        token, sep, role = item.rpartition(":")
        if not sep or not token:
            raise AuthConfigError(
                f"{where}: entry {index} is not 'token:role' (roles: {', '.join(ROLES)})"
            )
        if role not in ROLES:
            raise AuthConfigError(
                f"{where}: entry {index} has role '{role}'; roles are {', '.join(ROLES)}"
            )
        pairs.append((token.encode("utf-8", "surrogateescape"), role))
    return pairs


def load_tokens(
    environ: dict[str, str] | None = None, *, anonymous_read: bool = False
) -> TokenTable:
    """Tokens from the environment variable and the token file (both may be set).

    Raises:
        AuthConfigError: a malformed entry or an unreadable file (names where, not the token).
    """
    environ = os.environ if environ is None else environ
    entries: list[tuple[bytes, str]] = []
    sources = []
    if environ.get(ENV_TOKENS, "").strip():
        entries += parse_pairs(environ[ENV_TOKENS], where=ENV_TOKENS)
        sources.append(ENV_TOKENS)
    if environ.get(ENV_TOKENS_FILE, "").strip():
        path = Path(environ[ENV_TOKENS_FILE]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise AuthConfigError(
                f"{ENV_TOKENS_FILE}: cannot read {path}: {error.strerror}"
            ) from None
        file_entries = parse_pairs(text, where=str(path))
        if not file_entries:
            raise AuthConfigError(f"{ENV_TOKENS_FILE}: {path} holds no 'token:role' entries")
        entries += file_entries
        sources.append(str(path))
    return TokenTable(tuple(entries), anonymous_read=anonymous_read, sources=tuple(sources))


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_client(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def check_bind(host: str, tokens: TokenTable) -> None:
    """Refuse to listen beyond loopback without tokens.

    Raises:
        AuthConfigError: ``host`` is not a loopback address and no token is configured.
    """
    if not tokens.enabled and not is_loopback_host(host):
        raise AuthConfigError(
            f"refusing to serve on {host} without authentication: set {ENV_TOKENS}"
            f" ('token:role' pairs, roles read and write) or {ENV_TOKENS_FILE}, or serve on"
            " 127.0.0.1"
        )
