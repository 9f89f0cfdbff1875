"""A small collection for the planted net, indexed with the `index` helper's build_index."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.explain.planted import RED, painting, planted_model

STRONG_RED = (255, 0, 0)


def make_collection(root: Path) -> dict[str, list[str]]:
    """red/: strong red discs (no blue anywhere); grey/: plain; with a labels.csv of metadata."""
    groups: dict[str, list[str]] = {"red": [], "grey": []}
    for i in range(8):
        rel = f"red/red-{i}.png"
        (root / "red").mkdir(parents=True, exist_ok=True)
        painting([((12 + 5 * i, 20 + 3 * i), STRONG_RED)], radius=6 + i % 3, seed=i).save(root / rel)
        groups["red"].append(rel)
    for i in range(6):
        rel = f"grey/grey-{i}.png"
        (root / "grey").mkdir(parents=True, exist_ok=True)
        painting([], seed=100 + i).save(root / rel)
        groups["grey"].append(rel)
    lines = ["path,artist,title"] + [f"{p},Painter {n},Work {n}" for n, p in enumerate(groups["red"] + groups["grey"])]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return groups


@pytest.fixture(scope="module")
def planted():
    return planted_model()


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    root = tmp_path_factory.mktemp("paintings")
    return root, make_collection(root)


@pytest.fixture(scope="module")
def index(planted, collection, tmp_path_factory):
    from imagemachines.index import build_index, open_index

    root, _ = collection
    out = tmp_path_factory.mktemp("index") / "idx"
    return open_index(build_index(planted, root, out, k=16, metadata=root / "labels.csv", progress=False))


__all__ = ["RED"]
