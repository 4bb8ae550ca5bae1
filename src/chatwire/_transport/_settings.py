"""What a transport reads from the environment, once, when it is made.

``SSL_CERT_FILE`` names the CA bundle to trust (certifi's otherwise);
``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case)
the proxies, as curl and both HTTP libraries read them.
"""

from __future__ import annotations

__all__ = ["KEEPALIVE_SECONDS", "Settings"]

import functools
import os
import ssl
import urllib.request
from urllib.parse import urlsplit

from .._errors import InvalidRequest

_DEFAULT_PORTS = {"http": 80, "https": 443}
# How long an idle kept connection is kept: under the 5 s that uvicorn,
# nginx's default and most servers allow, so the client closes first.
KEEPALIVE_SECONDS = 4.0


@functools.cache
def _context_trusting(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


class Settings:
    """The CA bundle and the proxies, as the environment gave them at creation."""

    __slots__ = ("_no_proxy", "ca_file", "proxies")

    def __init__(self) -> None:
        import certifi

        self.ca_file = os.environ.get("SSL_CERT_FILE") or certifi.where()
        found = urllib.request.getproxies_environment()
        # Read once: every request through a proxy asks whether its host bypasses it.
        self._no_proxy = _no_proxy_entries(found.pop("no", ""))
        for scheme, proxy in found.items():
            if not proxy.lower().startswith(("http://", "https://")):
                raise InvalidRequest(
                    f"{scheme.upper()}_PROXY: only http:// and https:// proxies are served, "
                    f"got {proxy!r}"
                )
        self.proxies = found

    def ssl_context(self) -> ssl.SSLContext:
        """The context that trusts ``ca_file``: one a bundle for the whole process, as
        building one costs ~13 ms and every client would otherwise build its own."""
        return _context_trusting(self.ca_file)

    def proxy_for(self, url: str) -> str | None:
        """The proxy to reach ``url`` through, or ``None``: directly."""
        if not self.proxies:
            return None
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme) or self.proxies.get("all")
        if proxy is None:
            return None
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:  # a port out of range: the request fails on its own
            port = None
        return None if self._bypassed(parts.hostname or "", port) else proxy

    def _bypassed(self, host: str, port: int | None) -> bool:
        """``NO_PROXY``: ``*``, or names whose domain (and port, if given) the host is in."""
        if self._no_proxy is None:
            return True
        host = host.lower().rstrip(".")
        return any(
            (entry_port is None or entry_port == port)
            and (host == name or host.endswith("." + name))
            for name, entry_port in self._no_proxy
        )


def _no_proxy_entries(written: str) -> tuple[tuple[str, int | None], ...] | None:
    """``NO_PROXY``'s names, each with its port if one is given; ``None`` for ``*``."""
    entries: list[tuple[str, int | None]] = []
    for item in written.lower().split(","):
        entry = item.strip()
        if entry == "*":
            return None
        # "name:port" limits the entry to one port; a bare IPv6 address has many
        # colons, a bracketed one ("[::1]:8080") may have a port after it.
        name, entry_port = entry, ""
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        name = name.lstrip(".").rstrip(".")
        if not name or (entry_port and not entry_port.isdigit()):
            continue  # matches no host
        entries.append((name, int(entry_port) if entry_port else None))
    return tuple(entries)
