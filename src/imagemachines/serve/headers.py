"""Security headers on every answer: no framing, no inline or foreign code, no reading by other sites' pages.

A pure ASGI middleware, outermost, so refusals of the guard and errors carry the headers too:

* ``Content-Security-Policy``: scripts, styles, fonts and connections only from the server itself, images also from
  ``data:``/``blob:`` URLs (Swagger UI's icons and its image previews); no inline script or style, no ``eval``, no
  plugins, no ``<base>``; ``frame-ancestors 'none'``: no other page may frame the interface (and make it render
  as the user's browser, from the server's own origin, which the cross-site guard would let through).
* ``X-Frame-Options: DENY``: the same for browsers that predate ``frame-ancestors``.
* ``Cross-Origin-Resource-Policy: same-origin``: another site's page cannot embed what the server makes (renders,
  paintings, overlays) as ``<img>``; pages of ``--allow-origin`` origins load them with CORS (``crossorigin``).
* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` (links to painting pages elsewhere do
  not tell those sites the server's address or the view).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
