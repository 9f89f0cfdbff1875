"""Similar paintings that mean something: each similarity mode against plain torchvision features.

On the shared paintings (../shared/data/paintings, 458 photographs, seven labels, three sources), MobileNetV2
with its ImageNet weights:

1. One pass over the paintings, preprocessed as the index does (squashed to 224 px), tapped at the mode
   layers: the modes' vectors through the same functions the index uses (``imagemachines.index
   .similarity_vectors``), finished over the collection. Beside them the *plain baseline*: torchvision's own
   MobileNetV2 with its own preprocessing (resize 256, centre crop 224) and the classifier removed — the
   1280 penultimate features anyone gets from a feature extractor.
2. For each mode and the baseline, the 5 nearest other paintings (cosine) of every painting:
   same-label precision@5 per label; same-artist precision@5 over the paintings whose artist has at least 3
   paintings (names joined across spellings, ``benchmarks.retrieval.artist_key``), with a bootstrap over
   artists for its spread; same-source precision@5 (how much the photograph's origin decides: lower is
   better). Chance levels beside them.
3. Style variants measured the same way (what chose the style vector): at the stage ends (the earlier
   choice) per-channel mean + std (AdaIN), Gram matrices, covariances unstandardised and standardised; at
   every block covariances, matrix square roots and log-covariances, standardised or not, 16 or 32 channels.
   Beside the same-artist gain: its bootstrap interval, a sign-flip permutation test over artists, and the
   gain in each half of the artists.
4. Near-duplicates: the pairs whose composition rows reach the duplicate threshold, and the closest pair
   below it.
5. Search time of the exact search at 30,000 paintings per mode (random unit rows of each mode's width,
   float16, memory-mapped), beside hnswlib and faiss when they are installed.

Run: ``.venv/bin/python -m benchmarks.bench_similarity`` (about 10 minutes on 2 busy CPU cores; ``--limit N``
for a quick run on N paintings, which publishes nothing). Writes its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import machine, publish
from benchmarks.retrieval import artist_key, by_group, chance_at_k, nearest, precision_at_k

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PAINTINGS = SHARED / "data" / "paintings"
WEIGHTS = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
K = 5
STAGE_ENDS = ("features.1", "features.3", "features.6", "features.13")  # the style layers before every block


def read_paintings(limit: int | None = None) -> list[dict]:
    with open(PAINTINGS / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if limit:  # a spread over labels, not the first folder only
        rows = rows[:: max(1, len(rows) // limit)][:limit]
    return rows


def activations(rows: list[dict], batch: int = 16) -> dict[str, np.ndarray]:
    """One pass: the modes' raw vectors (index preprocessing), the variants' statistics, the plain baseline."""
    import torchvision
    from PIL import Image
    from torchvision.models import MobileNet_V2_Weights
    from tqdm import tqdm

    from imagemachines.index.passes import preprocess
    from imagemachines.index.similarity_store import projections as style_projections
    from imagemachines.index.similarity_vectors import model_spec, raw_vectors, style_projection
    from imagemachines.models import load_model

    model = load_model("mobilenet_v2", device="cpu")
    spec = model_spec(model)
    projections = style_projections(spec)
    tap = model.tap(spec.layers)
    transform = preprocess(model)
    base = torchvision.models.mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1).eval()
    base.classifier = torch.nn.Identity()
    base_transform = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    out: dict[str, list[np.ndarray]] = {}

    def add(name: str, value: torch.Tensor) -> None:
        out.setdefault(name, []).append(value.float().numpy())

    for s in tqdm(range(0, len(rows), batch), desc="paintings", unit="batch"):
        images = [Image.open(PAINTINGS / "images" / r["path"]).convert("RGB") for r in rows[s:s + batch]]
        with torch.inference_mode():
            acts = tap(torch.stack([transform(i) for i in images]))
            raw = raw_vectors(acts, spec, projections)
            add("content", acts[spec.content].flatten(2).mean(2))
            add("style", raw["style"])
            add("grid", raw["grid"])
            add("baseline", base(torch.stack([base_transform(i) for i in images])))
            for name in spec.style:  # the variants' statistics
                f = acts[name].float().flatten(2)
                centred = f - f.mean(2, keepdim=True)
                for keep in (16, 32):  # channel covariances, through the index's fixed projection when wider
                    p = style_projection(name, f.shape[1], keep)
                    g = centred if p is None else torch.einsum("bcn,ck->bkn", centred, p)
                    add(f"{name}/cov{keep}", g @ g.transpose(1, 2) / f.shape[2])
                if name in STAGE_ENDS:  # the earlier choice's layers: all channels, and AdaIN's statistics
                    i, j = torch.triu_indices(f.shape[1], f.shape[1])
                    add(f"{name}/mean", f.mean(2))
                    add(f"{name}/std", f.std(2, unbiased=False))
                    add(f"{name}/gram", (f @ f.transpose(1, 2) / f.shape[2])[:, i, j])
    result = {k: np.concatenate(v) for k, v in out.items()}
    result["_spec"] = spec  # type: ignore[assignment]
    return result


def finished(acts: dict, mode: str) -> np.ndarray:
    from imagemachines.index.similarity_vectors import mode_finish

    raw = acts["grid" if mode == "composition" else mode].astype(np.float16)  # as the index keeps them
    return mode_finish(mode, raw, acts["_spec"]).apply(raw)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / np.where(x.std(0) > 1e-9, x.std(0), 1.0)


def variants(acts: dict) -> dict[str, np.ndarray]:
    """Style vectors the chosen one was measured against (each layer unit length, layers weighted equally)."""
    from imagemachines.index.similarity_vectors import STYLE_SHRINK, log_covariance

    spec = acts["_spec"]

    def layers(fn, names) -> np.ndarray:
        return np.concatenate([unit(fn(n)) for n in names], axis=1)

    def triangle(c: np.ndarray) -> np.ndarray:
        i, j = np.triu_indices(c.shape[1])
        return c[:, i, j]

    def log(n: str, keep: int) -> np.ndarray:
        return triangle(log_covariance(torch.from_numpy(acts[f"{n}/cov{keep}"])).numpy())

    def sqrt(n: str, keep: int) -> np.ndarray:  # the matrix square root (improved bilinear pooling)
        w, v = np.linalg.eigh(acts[f"{n}/cov{keep}"].astype(np.float64))
        return triangle((v * np.sqrt(w.clip(0))[:, None, :]) @ v.transpose(0, 2, 1))

    ends, every = STAGE_ENDS, spec.style
    return {
        "stage ends: mean + std per channel (AdaIN)": layers(lambda n: np.hstack([acts[f"{n}/mean"],
                                                                                  acts[f"{n}/std"]]), ends),
        "stage ends: mean + std per channel, standardised": layers(
            lambda n: zscore(np.hstack([acts[f"{n}/mean"], acts[f"{n}/std"]])), ends),
        "stage ends: Gram matrices (Gatys), all channels": layers(lambda n: acts[f"{n}/gram"], ends),
        "stage ends: Gram matrices, standardised": layers(lambda n: zscore(acts[f"{n}/gram"]), ends),
        "stage ends: covariances, ≤ 32 channels": layers(lambda n: triangle(acts[f"{n}/cov32"]), ends),
        "stage ends: covariances standardised, ≤ 32 channels (the earlier choice)": layers(
            lambda n: zscore(triangle(acts[f"{n}/cov32"])), ends),
        "stage ends: log-covariances standardised, ≤ 32 channels": layers(lambda n: zscore(log(n, 32)), ends),
        "every block: covariances standardised, ≤ 16 channels": layers(
            lambda n: zscore(triangle(acts[f"{n}/cov16"])), every),
        "every block: matrix square roots standardised, ≤ 16 channels": layers(lambda n: zscore(sqrt(n, 16)),
                                                                               every),
        "every block: log-covariances, ≤ 16 channels, not standardised": layers(lambda n: log(n, 16), every),
        "every block: log-covariances standardised, ≤ 32 channels, not whitened": layers(
            lambda n: zscore(log(n, 32)), every),
        "every block: log-covariances standardised, ≤ 16 channels, not whitened": (
            logs := layers(lambda n: zscore(log(n, 16)), every)),
        "stage ends: covariances standardised, ≤ 32 channels, whitened (shrink 10)": whitened(
            layers(lambda n: zscore(triangle(acts[f"{n}/cov32"])), ends), 10),
        **{f"every block: log-covariances standardised, ≤ 16 channels, whitened (shrink {k:g})": whitened(logs, k)
           for k in (1, 3, 30, 100)},
        f"**every block: log-covariances standardised, ≤ {spec.keep} channels, whitened (shrink {STYLE_SHRINK:g}; "
        "chosen)**": finished(acts, "style"),
        "plain torchvision features, whitened (shrink 10)": whitened(unit(acts["baseline"]), 10),
    }


def whitened(x: np.ndarray, shrink: float) -> np.ndarray:
    """*x* centred and multiplied by its collection's shrunk whitening (as the style finish does)."""
    from imagemachines.index.similarity_vectors import shrunk_whitening

    c = np.asarray(x, np.float64) - np.asarray(x, np.float64).mean(0)
    return c @ shrunk_whitening(c.T @ c / len(c), shrink, len(c) - 1)


def halves(gain: np.ndarray, artists: np.ndarray, queries: np.ndarray) -> list[float]:
    """The mean of *gain* over the artist queries in each half of the artists (split by a CRC-32 of the name)."""
    import zlib

    half = np.array([zlib.crc32(a.encode()) % 2 for a in artists])
    return [float(gain[queries & (half == h)].mean()) for h in (0, 1)]


def sign_flip_p(gain: np.ndarray, artists: np.ndarray, queries: np.ndarray, reps: int = 20000,
                seed: int = 0) -> float:
    """One-sided p of a mean *gain* > 0 over the artist queries: each artist's paintings keep or flip the sign of
    their gains together (a paired permutation test over artists)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(artists[queries].tolist()))
    sums = np.array([gain[queries & (artists == n)].sum() for n in names])
    observed = sums.sum()
    flips = rng.choice([-1.0, 1.0], size=(reps, len(sums)))
    return float(((flips @ sums >= observed - 1e-12).sum() + 1) / (reps + 1))


def measure(vectors: np.ndarray, labels, artists, sources, artist_queries) -> dict:
    nb = nearest(vectors, K)
    return {"labels": by_group(precision_at_k(nb, labels, K), labels),
            "artist": precision_at_k(nb, artists, K), "source": float(precision_at_k(nb, sources, K).mean()),
            "artist_mean": float(precision_at_k(nb, artists, K)[artist_queries].mean()) if artist_queries.any()
            else float("nan")}


def bootstrap_gain(a: np.ndarray, b: np.ndarray, artists: np.ndarray, queries: np.ndarray, reps: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """The 2.5 % and 97.5 % points of mean(a − b) over the artist queries, resampling whole artists."""
    rng = np.random.default_rng(seed)
    names = np.array(sorted(set(artists[queries].tolist())))
    if not len(names):
        return float("nan"), float("nan")
    diff = {n: (a - b)[queries & (artists == n)] for n in names}
    means = [np.concatenate([diff[n] for n in rng.choice(names, len(names))]).mean() for _ in range(reps)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def duplicates(acts: dict, rows: list[dict]) -> tuple[list[tuple], float]:
    from imagemachines.index.similarity_vectors import DUPLICATE_COSINE

    g = finished(acts, "composition").astype(np.float64)
    s = g @ g.T
    np.fill_diagonal(s, -1)
    i, j = np.triu_indices(len(g), 1)
    pairs = [(rows[a]["path"], rows[b]["path"], float(s[a, b]), rows[a]["title"], rows[b]["title"])
             for a, b in zip(i, j, strict=True) if s[a, b] >= DUPLICATE_COSINE]
    below = float(s[i, j][s[i, j] < DUPLICATE_COSINE].max())
    return sorted(pairs, key=lambda p: -p[2]), below


def per_query(fn, queries: np.ndarray, rounds: int = 3) -> float:
    """ms per query: the best of *rounds* passes over *queries* (after one warm-up call)."""
    fn(queries[0])
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for q in queries:
            fn(q)
        times.append((time.perf_counter() - start) / len(queries) * 1000)
    return min(times)


def search_times(widths: dict[str, int], n: int = 30_000, queries: int = 20) -> list[dict]:
    """ms per query of the exact search (best of 3 rounds of *queries*), and of hnswlib / faiss if installed."""
    from imagemachines.index.neighbours import best, exact_scores

    rng = np.random.default_rng(0)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, d in widths.items():
            rows = rng.standard_normal((n, d)).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            path = Path(tmp) / f"{mode}.npy"
            np.save(path, rows.astype(np.float16))
            mm = np.load(path, mmap_mode="r")
            qs = rows[rng.choice(n, queries)] + 0.01
            row = {"mode": mode, "width": d}

            row["exact_ms"] = per_query(lambda q, mm=mm: best(exact_scores(mm, q), 12), qs)
            row["numpy_f32_ms"] = per_query(lambda q, mm=mm: np.argsort(-(np.asarray(mm, np.float32) @ q))[:12], qs)
            try:
                import hnswlib

                start = time.perf_counter()
                h = hnswlib.Index(space="ip", dim=d)
                h.init_index(max_elements=n, ef_construction=100, M=16)
                h.add_items(rows, np.arange(n), num_threads=2)
                row["hnsw_build_s"] = time.perf_counter() - start
                row["hnsw_ms"] = per_query(lambda q, h=h: h.knn_query(q, 12), qs)
            except ImportError:
                pass
            out.append(row)
            print(row, flush=True)
    return out


def table(results: dict[str, dict], chance: dict, label_names: list[str]) -> list[str]:
    head = "| | " + " | ".join(results) + " | chance |"
    lines = [head, "|---" * (len(results) + 2) + "|"]
    for lab in [*label_names, "all"]:
        cells = [f"{r['labels'][lab]:.2f}" for r in results.values()]
        lines.append(f"| label: {lab} | " + " | ".join(cells) + f" | {chance['labels'][lab]:.2f} |")
    lines.append("| **same artist** (≥ 3 paintings) | " + " | ".join(f"**{r['artist_mean']:.3f}**"
                                                                      for r in results.values())
                 + f" | {chance['artist']:.3f} |")
    lines.append("| same source (lower is better) | " + " | ".join(f"{r['source']:.3f}" for r in results.values())
                 + f" | {chance['source']:.3f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=0, help="only N paintings (a quick run: nothing is published)")
    p.add_argument("--search-n", type=int, default=30_000, help="rows of the search-time measurement")
    p.add_argument("--skip", default="", help="comma list of: retrieval,search")
    a = p.parse_args()
    skip = set(a.skip.split(","))
    quick = bool(a.limit) or a.search_n != 30_000
    torch.set_num_threads(min(2, torch.get_num_threads()))
    parts = ["## Similar paintings: modes against plain features (`benchmarks/bench_similarity.py`)", ""]
    if "retrieval" not in skip:
        if not (PAINTINGS / "labels.csv").is_file() or not WEIGHTS.is_file():
            raise SystemExit(f"needs {PAINTINGS} and {WEIGHTS}")
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "torch"
            (home / "hub" / "checkpoints").mkdir(parents=True)
            (home / "hub" / "checkpoints" / WEIGHTS.name).symlink_to(WEIGHTS)
            os.environ["TORCH_HOME"] = str(home)
            rows = read_paintings(a.limit or None)
            start = time.perf_counter()
            acts = activations(rows)
            pass_s = time.perf_counter() - start
        parts += retrieval_section(acts, rows, pass_s)
    if "search" not in skip:
        from imagemachines.index.similarity_vectors import STYLE_CHANNELS, triangle

        # MobileNetV2: 14 style blocks (features.0 to .13), each kept at STYLE_CHANNELS channels
        widths = {"content": 1280, "style": 14 * triangle(STYLE_CHANNELS), "composition": 96 * 16}
        load = os.getloadavg()[0]
        times = search_times(widths, a.search_n)
        parts += [f"### Search time at {a.search_n:,} paintings", "",
                  "Per query, best of 3 rounds of 20 queries, the 12 best of random unit rows of each mode's width "
                  "(float16, memory-mapped, in the page cache): the exact search the index uses (torch's float16 "
                  "matrix–vector product), a plain numpy float32 product over the same memory map, and an "
                  "approximate HNSW graph (hnswlib, M = 16, ef_construction = 100), when installed:", "",
                  "| mode | width | exact (ms) | numpy float32 (ms) | hnswlib (ms) | hnswlib build (s) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for t in times:
            parts.append(f"| {t['mode']} | {t['width']} | **{t['exact_ms']:.1f}** | {t['numpy_f32_ms']:.0f} | "
                         + (f"{t['hnsw_ms']:.2f} | {t['hnsw_build_s']:.0f} |" if "hnsw_ms" in t else "— | — |"))
        parts += ["", f"Load average {load:.1f} before and {os.getloadavg()[0]:.1f} after the timings (2 cores "
                  "shared with other work: absolute times are upper bounds)."]
    parts += ["", f"Machine: {machine()}."]
    publish("similarity", "\n".join(parts), quick=quick)
    print("\n".join(parts))


def source_name(source: str) -> str:
    """``github:owner/repo`` → ``owner``."""
    return source.split(":")[-1].split("/")[0]


def retrieval_section(acts: dict, rows: list[dict], pass_s: float) -> list[str]:
    from imagemachines.index.similarity_vectors import STYLE_SHRINK
    labels = np.array([r["label"] for r in rows])
    sources = np.array([r["source"] for r in rows])
    artists = np.array([artist_key(r["artist"]) for r in rows])
    counts = Counter(artists.tolist())
    queries = np.array([a != "" and counts[a] >= 3 for a in artists])
    n_artists = len({a for a in artists[queries]})
    cross = sum(1 for a in {a for a in artists[queries]}
                if len({s for s, b in zip(sources, artists, strict=True) if b == a}) > 1)
    spec = acts["_spec"]
    pooled = acts["content"].astype(np.float16).astype(np.float64)
    vectors = {"plain torchvision": unit(acts["baseline"]), "content": finished(acts, "content"),
               "content centred": unit(pooled - pooled.mean(0)),
               "style": finished(acts, "style"), "composition": finished(acts, "composition")}
    mix = np.hstack([np.sqrt(0.5) * vectors["content"], np.sqrt(0.5) * vectors["style"]])
    vectors["content:0.5,style:0.5"] = mix
    results = {name: measure(v, labels, artists, sources, queries) for name, v in vectors.items()}
    chance = {"labels": by_group(chance_at_k(labels), labels),
              "artist": float(chance_at_k(artists)[queries].mean()) if queries.any() else float("nan"),
              "source": float(chance_at_k(sources).mean())}
    base = results["plain torchvision"]["artist"]
    base_mean = results["plain torchvision"]["artist_mean"]
    gains = {name: bootstrap_gain(r["artist"], base, artists, queries) for name, r in results.items()
             if name != "plain torchvision"}
    label_names = sorted(set(labels.tolist()), key=lambda x: -Counter(labels.tolist())[x])
    lines = [
        f"{len(rows)} shared paintings ({', '.join(f'{k} {v}' for k, v in Counter(labels.tolist()).most_common())}; "
        f"sources: {', '.join(f'{source_name(k)} {v}' for k, v in Counter(sources.tolist()).items())}),"
        f" MobileNetV2 with ImageNet weights, one pass in {pass_s:.0f} s. Precision@{K}: the share of each "
        f"painting's {K} nearest other paintings (cosine) with the same label / artist / source, averaged over the "
        f"paintings (per label: over that label's paintings). Same artist: the {int(queries.sum())} paintings of "
        f"the {n_artists} artists with at least 3 paintings ({cross} of them in more than one source), names joined "
        "by `benchmarks.retrieval.artist_key`. Modes: content = pooled "
        f"`{spec.content}` (and, measured beside it, centred on the collection's mean); style = the "
        f"{spec.statistic}s of `{spec.style[0]}` to `{spec.style[-1]}` ({len(spec.style)} blocks, ≤ {spec.keep} "
        f"channels each), standardised, whitened over the collection (shrink {STYLE_SHRINK:g}); composition = "
        f"`{spec.composition}` on a {spec.grid}×{spec.grid}"
        " grid, each unit's arrangement, standardised.", "", *table(results, chance, label_names), "",
        "Same-artist gain over plain torchvision features, 95 % interval of a bootstrap over artists (paired: the "
        "same paintings) and one-sided p of a sign-flip permutation test over artists: "
        + "; ".join(f"{name} {results[name]['artist_mean'] - base_mean:+.3f} [{lo:+.3f}, {hi:+.3f}], p = "
                    f"{sign_flip_p(results[name]['artist'] - base, artists, queries):.3f}"
                    for name, (lo, hi) in gains.items()) + ". The style gain in each half of the artists (split by "
        "a CRC-32 of the name): " + ", ".join(f"{g:+.3f}" for g in halves(results["style"]["artist"] - base, artists,
                                                                          queries)) + ".", "",
        "### Style variants", "",
        "The same measures for the style vectors the chosen one was compared with: at the ends of the resolution "
        f"stages ({', '.join(f'`{n}`' for n in STAGE_ENDS)}, the earlier choice) or at every block of the stages "
        "but the deepest (as above); wider layers through the index's fixed projection; each layer's statistics made "
        "unit length, the layers weighted equally; \"standardised\": every value z-scored over the collection; "
        "log-covariance: the matrix logarithm of the covariance plus a ridge of 0.1 % of its mean variance; "
        "whitened: the whole vector centred and multiplied by its collection's shrunk whitening "
        "V diag(1/√(λ + shrink · λ̄)) Vᵀ, λ̄ the mean variance of the directions the collection spans. The last "
        "row whitens the baseline the same way, for comparison:", "",
        "| style vector | width | label | same artist | same source |", "|---|---:|---:|---:|---:|"]
    for name, v in variants(acts).items():
        r = measure(v, labels, artists, sources, queries)
        lines.append(f"| {name} | {v.shape[1]} | {r['labels']['all']:.3f} | {r['artist_mean']:.3f} | "
                     f"{r['source']:.3f} |")
    pairs, below = duplicates(acts, rows)
    from imagemachines.index.similarity_vectors import DUPLICATE_COSINE

    lines += ["", "### Near-duplicates", "",
              f"Pairs whose composition rows (`{spec.composition}`, {spec.grid}×{spec.grid}) have cosine ≥ "
              f"{DUPLICATE_COSINE} (grouped, not listed as similar); the closest pair below: {below:.3f}.", "",
              "| painting | painting | cosine | titles |", "|---|---|---:|---|"]
    lines += [f"| {a} | {b} | {c:.3f} | {ta} / {tb} |" for a, b, c, ta, tb in pairs]
    return [*lines, ""]


if __name__ == "__main__":
    main()
