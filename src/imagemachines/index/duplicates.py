"""Files of a collection that are the same image (the same SHA-256): each painting is shown once.

Every file is indexed (statistics count files), but the query layer (:class:`~imagemachines.index.query.
CollectionIndex`) hides all copies but the first by path from examples and similar paintings, so no page shows
one painting twice or calls a painting's own copy its nearest neighbour. The index pass lists the groups in
``index.json`` and the ``index`` command reports them.
"""

from __future__ import annotations

import sqlite3

GROUPS_SQL = """
SELECT row, path, sha256 FROM images
WHERE row IS NOT NULL AND sha256 IN (
    SELECT sha256 FROM images WHERE row IS NOT NULL GROUP BY sha256 HAVING COUNT(*) > 1)
ORDER BY sha256, row
"""


def duplicate_groups(conn: sqlite3.Connection) -> list[list[tuple[int, str]]]:
    """The indexed images that share their SHA-256 with another, as groups of (id, path), the kept one (the
    first by path, the lowest id) first; groups in the order of their kept image."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for row, path, sha in conn.execute(GROUPS_SQL):
        groups.setdefault(sha, []).append((int(row), path))
    return sorted(groups.values(), key=lambda g: g[0][0])


def hidden_copies(groups: list[list[tuple[int, str]]]) -> dict[int, int]:
    """{id of a copy: id of the image shown in its place} for *groups* of :func:`duplicate_groups`."""
    return {row: group[0][0] for group in groups for row, _ in group[1:]}
