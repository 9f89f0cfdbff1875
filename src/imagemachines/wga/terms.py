"""WGA's terms of use and how the tool introduces itself to the server."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

TERMS = ("Web Gallery of Art images and data are for educational and personal use only: do not redistribute "
         "them (see the copyright page of the Web Gallery of Art).")


def user_agent() -> str:
    """A User-Agent that names the tool and its purpose."""
    try:
        ver = version("imagemachines")
    except PackageNotFoundError:
        ver = "dev"
    return f"imagemachines/{ver} (research tool for digital art history; polite rate-limited downloader)"
