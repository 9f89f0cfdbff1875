"""`imagemachines explain MODEL IMAGE`: unit maps, class attributions, or the units a painting drives most."""

from __future__ import annotations

from pathlib import Path

import typer

MODEL_HELP = "A torchvision model name (e.g. mobilenet_v2) or a run directory from `train`."
WEIGHTS_HELP = "imagenet (first ImageNet weights), DEFAULT (torchvision's default), none, or a state-dict file."


def explain_command(
    model: str = typer.Argument(..., help=MODEL_HELP),
    image: Path = typer.Argument(..., help="The painting: a JPEG, PNG, TIFF or WebP file."),
    unit: list[str] = typer.Option([], "--unit", "-u", help="LAYER:CHANNEL: that unit's activation map over the "
                                                            "painting (repeatable)."),
    class_: list[str] = typer.Option([], "--class", "-c", help="A class name or number: where its evidence lies "
                                                               "(repeatable)."),
    method: list[str] = typer.Option([], "--method", "-m", help="Attribution method for --class: gradcam, gradcam++, "
                                                                "ig (repeatable; default: all three)."),
    cam_layer: str = typer.Option(None, help="Layer of the Grad-CAM maps (default: the deepest block with a map)."),
    ig_steps: int = typer.Option(32, help="Integrated gradients: points on the path from the baseline."),
    baseline: str = typer.Option("black", help="Integrated gradients' baseline: black or blur."),
    layer: str = typer.Option(None, "--layer", "-l", help="Reverse lookup and similar paintings: the layer (default: "
                                                          "the deepest block; with --index, the deepest indexed one)."),
    index: Path = typer.Option(None, "--index", help="A collection index (`imagemachines index`) made with this "
                                                     "model: percentiles and similar paintings."),
    k: int = typer.Option(12, "--k", help="Reverse lookup: units shown per ranking."),
    similar: int = typer.Option(12, help="Similar paintings shown (needs --index; with --unit and --class too)."),
    mode: str = typer.Option("content", "--mode", help="Similar paintings by content (what is in it), style (how it "
                                                       "is painted), composition (where things are), or a mix: "
                                                       "content:0.5,style:0.5."),
    renders: int = typer.Option(None, help="Reverse lookup: units that get a render thumbnail (0: none; default "
                                           "12 on a GPU, 6 on a CPU)."),
    render_steps: int = typer.Option(None, help="Steps per render thumbnail (default 128 on a GPU, 48 on a CPU)."),
    out: Path = typer.Option(None, help="Output folder (default: out/explain-<image name>)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout (files are written too)."),
    weights: str = typer.Option("imagenet", help=WEIGHTS_HELP),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
) -> None:
    """Explain one painting: a unit's map (--unit), a class's attribution maps (--class), or, without either,
    the units of a layer it drives most (with --index: their percentiles). With --index, also the collection's
    most similar paintings, whatever is explained."""
    import json

    from imagemachines.attribution import check_method, open_image, spatial_layer
    from imagemachines.attribution.integrated import BASELINES
    from imagemachines.errors import UserError
    from imagemachines.explain.lookup import check_index_model, lookup_layer
    from imagemachines.explain.page import Options, find_in_index, write_explanation
    from imagemachines.explain.targets import parse_class, parse_unit
    from imagemachines.index.similarity_vectors import parse_mode
    from imagemachines.models import load_model

    parse_mode(mode)  # an unknown mode fails before anything loads
    painting = open_image(image)  # a missing or broken file fails before the model loads
    if baseline not in BASELINES:
        raise UserError(f"Unknown --baseline {baseline!r}: use {' or '.join(BASELINES)}.")
    methods = [check_method(m) for m in method] or ["gradcam", "gradcam++", "ig"]
    for name, value in (("--k", k), ("--ig-steps", ig_steps - 1)):
        if value < 1:
            raise UserError(f"{name} is too small.")
    if similar < 0 or (renders is not None and renders < 0) or (render_steps is not None and render_steps < 1):
        raise UserError("--similar and --renders cannot be negative, --render-steps must be at least 1.")
    collection = None
    if index is not None:
        from imagemachines.index import open_index

        collection = open_index(index)
    m = load_model(model, weights=weights, device=device)
    gpu = m.device.type != "cpu"
    options = Options(
        units=[parse_unit(m, u) for u in unit], classes=[parse_class(m, c) for c in class_], methods=methods,
        cam_layer=cam_layer, ig_steps=ig_steps, baseline=baseline, layer=layer, k=k, similar=similar, mode=mode,
        renders=renders if renders is not None else (12 if gpu else 6),
        render_steps=render_steps or (128 if gpu else 48), render_size=128 if gpu else 96,
    )
    # every remaining check before anything is written
    if options.classes and any(mm != "ig" for mm in methods):
        spatial_layer(m, cam_layer)
    if collection is not None:
        check_index_model(collection, m)
        if parse_mode(mode) != {"content": 1.0}:
            collection.similarity()  # an index made before the modes says how to add them
    if options.lookup or collection is not None:  # with an index, every explanation has similar paintings
        lookup_layer(m, layer, collection)
    in_collection = find_in_index(collection, image) if collection is not None else None
    target = out or Path("out") / f"explain-{image.stem}"
    doc = write_explanation(m, painting, target, options, image_name=image.name, index=collection,
                            in_collection=in_collection)
    doc["out"] = str(target)
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    from rich.console import Console

    from imagemachines.explain.page import tie_text
    from imagemachines.index.records import percentile_label

    console = Console(highlight=False)
    for u in doc["units"]:
        pct = f", {percentile_label(u['percentile'])}th percentile" if u["percentile"] is not None else ""
        console.print(f"{u['layer']}:{u['channel']}  strongest {u['value']:.3g} at cell {u['cell']}{pct}")
    for c in doc["classes"]:
        console.print(f"class {c['class']} {c['name'] or ''}: p={c['probability']:.3f}, rank {c['rank']}")
    if doc["lookup"]:
        lk = doc["lookup"]
        where = f" (ranked at {lk['ranked_at']}, before its closing {lk['clamp']})" if lk["clamp"] else ""
        console.print(f"{lk['layer']}{where}: top units " + ", ".join(
            f"{h['channel']} ({h['value']:.3g}" + (f", {percentile_label(h['percentile'])}th pct"
                                                  if h["percentile"] is not None else "") + ")"
            for h in lk["units"][:6]))
        for tie in lk["ties"]:
            console.print(tie_text(tie, lk["ranked_at"]))
        if lk["note"]:
            console.print(f"[yellow]note:[/] {lk['note']}")
    if doc["similar"]:
        console.print(f"similar paintings by {doc['similar_basis']}: "
                      + ", ".join(f"{s['path']} ({s['score']:.2f})" for s in doc["similar"][:5]))
    console.print(f"page: {target / 'explain.html'}")


def register(app: typer.Typer) -> None:
    """Add `explain` to the main app."""
    app.command("explain")(explain_command)
