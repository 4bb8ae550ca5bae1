"""What a transport reads from the environment, once, when it is made.

``SSL_CERT_FILE`` names the CA bundle to trust (certifi's otherwise);
``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case)
the proxies, as curl and both HTTP libraries read them.
"""

from __future__ import annotations

__all__ = ["KEEPALIVE_SECONDS", "Settings"]

import os
import ssl
import urllib.request
from urllib.parse import urlsplit

from .._errors import InvalidRequest

_DEFAULT_PORTS = {"http": 80, "https": 443}
# How long an idle kept connection is kept: under the 5 s that uvicorn,
# nginx's default and most servers allow, so the client closes first.
KEEPALIVE_SECONDS = 4.0


class Settings:
    """The CA bundle and the proxies, as the environment gave them at creation."""

    __slots__ = ("_no_proxy", "_ssl_context", "ca_file", "proxies")

    def __init__(self) -> None:
        import certifi

        self.ca_file = os.environ.get("SSL_CERT_FILE") or certifi.where()
        found = urllib.request.getproxies_environment()
        self._no_proxy = found.pop("no", "")
        for scheme, proxy in found.items():
            if not proxy.lower().startswith(("http://", "https://")):
                raise InvalidRequest(
                    f"{scheme.upper()}_PROXY: only http:// and https:// proxies are served, "
                    f"got {proxy!r}"
                )
        self.proxies = found
        self._ssl_context: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The context that trusts ``ca_file`` (built once: it costs tens of ms)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=self.ca_file)
        return self._ssl_context

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
        host = host.lower().rstrip(".")
        for written in self._no_proxy.lower().split(","):
            entry = written.strip()
            if entry == "*":
                return True
            # "name:port" limits the entry to one port; a bare IPv6 address has many
            # colons, a bracketed one ("[::1]:8080") may have a port after it.
            name, entry_port = entry, ""
            if entry.startswith("["):
                name, _, rest = entry[1:].partition("]")
                entry_port = rest.removeprefix(":")
            elif entry.count(":") == 1:
                name, _, entry_port = entry.partition(":")
            if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
                continue
            name = name.lstrip(".").rstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False
