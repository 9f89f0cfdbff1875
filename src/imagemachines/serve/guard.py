"""The gate in front of every route: the Host name and cross-site requests.

A pure ASGI middleware, so it sees a request before any route reads it:

* **Host**: only the names the server is reachable as are answered (loopback names, the configured host,
  ``--allowed-host``); anything else is 400. This stops DNS rebinding: a page on ``evil.example`` whose name
  resolves to 127.0.0.1 still sends ``Host: evil.example``.
* **Cross-site**: requests that change state (every method but GET, HEAD and OPTIONS) are refused (403) when a
  browser says another site's page made them: a foreign ``Origin``, else ``Sec-Fetch-Site`` other than
  ``same-origin``/``none``, else a foreign ``Referer``. Origins given with ``--allow-origin`` count as the
  server's own. Requests without any of these headers (curl, scripts) are not a browser acting for a page, and
  pass. The middleware marks the others in the request's scope, and :func:`refuse_cross_site`, a dependency of
  the whole app (``FastAPI(dependencies=...)``, so of every route, also of routers included later), refuses them
  on every route too: a GET can compute (a forward pass for an overlay, a queued render) or tell whether
  something exists (an upload id, a render), and ``<img src>`` on any page can send one. Only the pages a link
  on another site may open (the interface, the API docs) declare :func:`open_to_other_sites`.

Body sizes are FastAPI's job: ``FastAPI(max_body_size=...)`` for every route, ``max_body_size=`` on a route
that needs more (an upload); a larger body gets 413 before it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

CROSS_SITE_SCOPE_KEY = "imagemachines.cross_site"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BROWSER_OWN = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of the server's own page / the user


CROSS_SITE_REFUSED = ("Requests from another site's page are refused here (they could change or queue work without "
                      "you knowing). Start the server with --allow-origin ORIGIN to let that page call it.")


OPEN_TO_OTHER_SITES = "_imagemachines_open_to_other_sites"


def open_to_other_sites(endpoint: Callable) -> Callable:
    """Declare a route a page that another site may link to (placed under ``@app.get``); every other route refuses
    requests that another site's page made."""
    setattr(endpoint, OPEN_TO_OTHER_SITES, True)
    return endpoint


def is_open_to_other_sites(route: object) -> bool:
    return bool(getattr(getattr(route, "endpoint", None), OPEN_TO_OTHER_SITES, False))


def refuse_cross_site(request: Request) -> None:
    """The app's dependency: 403 when the guard found that another site's page made this request, unless the route
    is :func:`open_to_other_sites`."""
    if request.scope.get(CROSS_SITE_SCOPE_KEY) and not is_open_to_other_sites(request.scope.get("route")):
        raise HTTPException(403, CROSS_SITE_REFUSED)


def host_name(host_header: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``; lower case, no trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def allowed_host_names(bind_host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names a server bound to *bind_host* answers: loopback, the bound name (unless a wildcard), *extra*."""
    names = [*LOOPBACK_HOSTS]
    if bind_host not in WILDCARD_HOSTS:
        names.append(host_name(bind_host if ":" not in bind_host else f"[{bind_host}]"))
    names += [host_name(h) if h != "*" else "*" for h in extra]
    return tuple(dict.fromkeys(names))


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


class RequestGuard:
    """The middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
                 allow_origins: Iterable[str] = ()):
        self.app = app
        self.hosts = frozenset(host_name(h) if h != "*" else "*" for h in allowed_hosts)
        self.origins = frozenset(o.rstrip("/").lower() for o in allow_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if "*" not in self.hosts and host_name(host) not in self.hosts:
            shown = host[:60] or "(none)"
            await _refuse(send, 400, f"This server does not answer to the host name {shown!r}. Use "
                                     f"http://127.0.0.1 or a name given with --allowed-host when starting it.")
            return
        cross_site = self._cross_site(headers, scope.get("scheme", "http"), host)
        if cross_site and scope["method"] not in SAFE_METHODS:
            await _refuse(send, 403, CROSS_SITE_REFUSED)
            return
        scope[CROSS_SITE_SCOPE_KEY] = cross_site
        await self.app(scope, receive, send)

    def _cross_site(self, headers: dict[str, str], scheme: str, host: str) -> bool:
        """Whether a browser marked this request as made by another site's page."""
        own = {f"{scheme}://{host}".lower(), *self.origins}
        origin = headers.get("origin")
        if origin is not None:
            return origin.rstrip("/").lower() not in own
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site.lower() not in BROWSER_OWN
        referer = headers.get("referer")
        if referer:
            return _origin_of(referer) not in own
        return False


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail, "fault": "request"}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
