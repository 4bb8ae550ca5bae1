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

# How long an idle kept connection is kept: under the 5 s that uvicorn,
# nginx's default and most servers allow, so the client closes first.
KEEPALIVE_SECONDS = 4.0


class Settings:
    """The CA bundle and the proxies, as the environment gave them at creation."""

    __slots__ = ("_no_proxy", "ca_file", "proxies")

    def __init__(self) -> None:
        import certifi

        self.ca_file = os.environ.get("SSL_CERT_FILE") or certifi.where()
        found = urllib.request.getproxies_environment()
        self._no_proxy = found.pop("no", "")
        self.proxies = found

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def proxy_for(self, url: str) -> str | None:
        """The proxy to reach ``url`` through, or ``None``: directly."""
        if not self.proxies:
            return None
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme) or self.proxies.get("all")
        if proxy is None or self._bypassed(parts.hostname or "", parts.port):
            return None
        return proxy

    def _bypassed(self, host: str, port: int | None) -> bool:
        """``NO_PROXY``: ``*``, or names whose domain (and port, if given) the host is in."""
        host = host.lower().rstrip(".")
        for written in self._no_proxy.lower().split(","):
            entry = written.strip()
            if entry == "*":
                return True
            # "name:port" limits the entry to one port; a bare IPv6 address has many colons.
            name, entry_port = entry, ""
            if entry.count(":") == 1:
                name, _, entry_port = entry.partition(":")
            if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
                continue
            name = name.strip("[]").lstrip(".").rstrip(".")
            if name and (host == name or host.endswith("." + name)):
                return True
        return False
