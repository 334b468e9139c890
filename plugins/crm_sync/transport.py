"""Where our credentials may go: https only (plain http to this machine, for the simulators),
and only to the configured host.

Every client checks its base URL here when it is built, and every request's path before it is
sent: a profile or a server's next link that names another host must not carry our API key
or token there. Record ids are quoted into paths, so an id cannot change the path it is sent on.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

import httpx


class UnsafeTransport(ValueError):
    """A URL that would send credentials in clear text, or to a host other than the configured one."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked_base_url(url: str) -> str:
    """The base URL, if credentials may be sent to it: https, or http to a loopback address."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback(parsed.host)):
        return url
    raise UnsafeTransport(f"refusing to send credentials to {parsed.scheme}://{parsed.host}: use https "
                          "(plain http is only allowed to this machine, 127.0.0.1 or localhost)")


def checked_path(base_url: httpx.URL, path: str) -> str:
    """A path on the base URL's host; a URL (or scheme-relative ``//host``) naming another origin is refused."""
    target = httpx.URL(path)
    same_origin = (target.scheme, target.host, target.port) == (base_url.scheme, base_url.host, base_url.port)
    if (target.host or target.scheme) and not same_origin or "\\" in path:
        raise UnsafeTransport(f"refusing to send a request to {path[:80]!r}: only to {base_url.scheme}://"
                              f"{base_url.host}, the configured host")
    return path


def quote_id(record_id: object) -> str:
    """A record id as one path segment: '/', '?', '#' and '%' cannot change the path."""
    return quote(str(record_id), safe="")
