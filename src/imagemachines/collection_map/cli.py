"""`imagemachines map INDEX`: the collection as a map (layout, clusters, map.html)."""

from __future__ import annotations

from pathlib import Path

import typer


def map_command(
    index_dir: Path = typer.Argument(..., help="An index folder made by `imagemachines index`."),
    layer: list[str] = typer.Option(None, "--layer", help="Layer whose pooled activations place the paintings "
                                                          "(default: the deepest pooled layer). Repeat for several "
                                                          "maps."),
    mode: str = typer.Option(None, "--mode", help="Place the paintings by a similarity mode of the index instead: "
                                                    "content, style, composition or a mix like "
                                                    "content:0.5,style:0.5 (as `explain --mode`); the groups are "
                                                    "still explained by the units of --layer."),
    refit: bool = typer.Option(False, "--refit", help="Lay every painting out afresh (else only new paintings "
                                                      "are placed into the existing map)."),
    clusters: str = typer.Option("auto", help="auto (HDBSCAN: dense regions; scattered paintings stay "
                                              "unclustered) or a number K (k-means, exactly K clusters)."),
    pca: int = typer.Option(50, help="PCA components before the layout (0: none)."),
    neighbors: int = typer.Option(15, help="UMAP's neighbourhood size (larger: more global structure)."),
    min_dist: float = typer.Option(0.1, help="UMAP's min_dist (smaller: tighter clumps)."),
    seed: int = typer.Option(0, help="Seed of the PCA, the layout and k-means (same seed, same map)."),
    html: bool = typer.Option(True, "--html/--no-html", help="Write map.html (offline, from file://) beside it."),
) -> None:
    """Lay out every indexed painting by what the network sees at a layer (or, with --mode, by a similarity
    mode), cluster the map and label each cluster by its most distinctive units and metadata majority. Stored in
    INDEX/maps/LAYER/ (INDEX/maps/mode_MODE/). Run it again after `imagemachines index` added paintings: they
    are placed into the existing map."""
    from rich.console import Console

    from imagemachines.collection_map.build import build_map
    from imagemachines.collection_map.layout import LayoutParams
    from imagemachines.errors import UserError
    from imagemachines.index.query import open_index

    console = Console(stderr=True, highlight=False)
    idx = open_index(index_dir)
    layers = list(dict.fromkeys(layer or [None]))
    if mode is not None and len(layers) > 1:
        raise UserError("--mode makes one map: give at most one --layer (the layer whose units explain its groups).")
    for name in layers:
        if name is not None:
            idx.check_layer(name)   # every layer checked before the first layout starts
    params = LayoutParams(pca=pca, neighbors=neighbors, min_dist=min_dist, seed=seed)
    for name in layers:
        result = build_map(idx, name, mode=mode, params=params, clusters=clusters, refit=refit)
        console.print(result.summary())
        out = result.folder
        if html:
            from imagemachines.collection_map.page import write_map_page

            out = write_map_page(idx, result.name, result.folder)
        typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add `map` to the main app."""
    app.command("map")(map_command)
