"""Retrieval measures for the similar-paintings benchmark: artist names made comparable, and precision@k.

Pure functions on arrays and strings, tested in ``tests/test_retrieval_metrics.py``; the benchmark
(``benchmarks/bench_similarity.py``) feeds them the shared paintings' metadata and each mode's neighbours.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numpy as np

# Spellings of the same artist that no rule can join: Russian names (the irinainina source) of artists that other
# sources spell in Latin letters, and short forms; both sides go through the rules of artist_key first.
ARTIST_ALIASES = {
    "винсент ван гог": "vincent van gogh",
    "клод моне": "claude monet",
    "пьер огюст ренуар": "pierre auguste renoir",
    "auguste renoir": "pierre auguste renoir",
    "эдгар дега": "edgar degas",
    "веласкес": "diego rodriguez de silva y velazquez",
    "эдуард мане": "edouard manet",
    "караваджо": "michelangelo merisi",
    "франциско гоя": "francisco de goya y lucientes",
    "поль гоген": "paul gauguin",
    "анри де тулуз лотрек": "henri de toulouse lautrec",
    "густав климт": "gustav klimt",
    "жан леон жером": "jean leon gerome",
    "эжен делакруа": "eugene delacroix",
    "питер пауль рубенс": "peter paul rubens",
    "гейнсборо": "thomas gainsborough",
    "джон констебл": "john constable",
    "жан фрагонар": "jean honore fragonard",
    "леонардо да винчи": "leonardo da vinci",
    "ян вермеер": "johannes vermeer",
    "иван айвазовский": "ivan konstantinovich aivazovsky",
}


# Names that are no one's: these paintings count as having no artist.
NO_ARTIST = re.compile(r"^$|unidentified|unknown|anonymous|\bcentury\b|^follower of|^workshop of")


def artist_key(name: str) -> str:
    """One spelling per artist: "GOGH, Vincent van", "Vincent van Gogh" and "Винсент Ван Гог" all give
    ``"vincent van gogh"``.

    The rules, in order: a name with a part in parentheses is that part ("Goya (Francisco de Goya y
    Lucientes)" → the full name); the catalogue form "SURNAME, Given names" is turned round ("GOGH, Vincent van"
    → "Vincent van GOGH"); accents are dropped (NFKD without combining marks: "Cézanne" = "Cezanne"); dots,
    commas, hyphens and apostrophes become spaces ("Jansz.van" = "Jansz. van", "Jean-Baptiste" = "Jean
    Baptiste"); lower case, single spaces. Then :data:`ARTIST_ALIASES` joins what the rules cannot (other
    scripts, short forms). A name that is no one's ("Unidentified artist", "American 19th Century", "") gives
    ``""``: no artist.
    """
    s = _plain(name)
    return "" if NO_ARTIST.search(s) else _ALIASES.get(s, s)


def _plain(name: str) -> str:
    """artist_key's rules without the aliases."""
    s = unicodedata.normalize("NFKC", name).strip()
    inner = re.fullmatch(r"[^()]*\(([^()]+)\)\s*", s)
    if inner:
        s = inner.group(1)
    if "," in s:
        surname, given = s.split(",", 1)
        s = f"{given} {surname}"
    s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
    s = re.sub(r"[.,\-'’]", " ", s).casefold()
    return " ".join(s.split())


_ALIASES = {_plain(k): _plain(v) for k, v in ARTIST_ALIASES.items()}


def precision_at_k(neighbours: np.ndarray, groups: np.ndarray, k: int = 5) -> np.ndarray:
    """Per query (row of *neighbours*, [n, ≥k] row ids, best first): the share of its first *k* neighbours in
    the query's own group (``groups[row]``). Rows are the queries themselves: query i has group groups[i]."""
    if neighbours.ndim != 2 or neighbours.shape[1] < k:
        raise ValueError(f"need at least {k} neighbours per query, got shape {neighbours.shape}")
    groups = np.asarray(groups)
    own = groups[:, None] if len(groups) == len(neighbours) else None
    if own is None:
        raise ValueError("one group per query is needed")
    return (groups[neighbours[:, :k]] == own).mean(axis=1)


def chance_at_k(groups: np.ndarray) -> np.ndarray:
    """Per query: the expected precision of k neighbours drawn at random from the others, (n_group − 1)/(n − 1)."""
    groups = np.asarray(groups)
    counts = Counter(groups.tolist())
    return np.array([(counts[g] - 1) / (len(groups) - 1) for g in groups.tolist()])


def by_group(values: np.ndarray, groups: np.ndarray, queries: np.ndarray | None = None) -> dict[str, float]:
    """The mean of *values* per group (over the rows *queries* selects, default all), plus ``"all"``: the mean
    over every selected row."""
    values, groups = np.asarray(values, dtype=np.float64), np.asarray(groups)
    sel = np.ones(len(values), bool) if queries is None else np.asarray(queries, bool)
    out = {str(g): float(values[sel & (groups == g)].mean()) for g in sorted(set(groups[sel].tolist()))}
    out["all"] = float(values[sel].mean()) if sel.any() else float("nan")
    return out


def nearest(vectors: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """[n, k] row ids of each row's *k* nearest other rows by cosine (ties: the smaller id first); *exclude*:
    an [n, n] boolean mask of pairs never to return (e.g. duplicates of the query)."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-12)
    s = v @ v.T
    np.fill_diagonal(s, -np.inf)
    if exclude is not None:
        s[exclude] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]
