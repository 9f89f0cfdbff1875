"""`imagemachines serve`."""

from __future__ import annotations

from pathlib import Path

import typer

from imagemachines.errors import UserError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imagemachines")) / "renders"


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_bytes(text: str, option: str) -> int:
    """``500M`` -> 524288000; a clear error for anything else."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, flags=re.IGNORECASE)
    if not match or float(match[1]) * _UNITS[match[2].upper()] < 1024**2:
        raise UserError(f"{option} {text!r}: give a size of at least 1M, such as 500M or 2G.")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def check_port_free(host: str, port: int) -> None:
    """A clear error now, rather than a traceback from uvicorn later.

    Binds as uvicorn will (``SO_REUSEADDR``), so the closing connections of a server just stopped do not count.
    """
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}). Is another server running there? "
                f"Choose another port with --port {port + 1}, or check --host."
            ) from None


def open_indexes(paths: list[Path], console) -> list:
    """Open every ``--index`` now, so a missing or broken one stops the start with a clear message."""
    if not paths:
        return []
    from imagemachines.index import open_index

    opened = []
    for path in paths:
        idx = open_index(path.expanduser())
        console.print(f"[green]✓[/] index {idx.path} ({idx.n_images} images, {idx.model_name} {idx.weights_id})")
        opened.append(idx)
    return opened


def serve(
    models: list[str] = typer.Argument(
        None, metavar="MODEL",
        help="Registry names or run directories to serve (default: the engine's default, mobilenet_v2).",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Other machines can connect only if you "
                                                "change it (e.g. 0.0.0.0); there is no login."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N or mps."),
    cache_dir: Path = typer.Option(None, help="Where finished renders are kept (default: the user cache)."),
    allow_origin: list[str] = typer.Option(None, help="Allow browser pages from this origin (CORS); repeatable."),
    allowed_host: list[str] = typer.Option(None, help="Also answer requests for this host name (loopback names "
                                                      "and --host always work); repeatable; '*' for any."),
    cache_size: str = typer.Option("2G", help="Most disk space for cached renders (e.g. 500M, 2G); the least "
                                              "recently used go first."),
    max_size: int = typer.Option(1024, min=16, max=2048, help="Largest image side a request may ask for."),
    max_steps: int = typer.Option(4096, min=1, max=10_000, help="Most optimization steps a request may ask for."),
    max_batch: int = typer.Option(16, min=1, max=256, help="Most units rendered together in one engine call."),
    max_queue: int = typer.Option(128, min=1, max=100_000, help="Waiting requests before new ones get 429."),
    index: list[Path] = typer.Option(None, help="A collection index (`imagemachines index`) to browse; repeatable. "
                                                "It must have been made with a served model's weights."),
    max_upload_mb: int = typer.Option(20, min=1, max=200, help="Largest painting upload, in MB."),
    render_processes: int = typer.Option(2, min=0, max=64, help="On a CPU, render in this many processes of "
                                                                "their own, which share the CPU threads "
                                                                "(faster); 0 renders in the server's thread."),
) -> None:
    """Start the web interface and REST API (OpenAPI docs at /docs)."""
    from rich.console import Console

    console = Console(stderr=True)
    check_port_free(host, port)
    cache_bytes = parse_bytes(cache_size, "--cache-size")

    from imagemachines.models import DEFAULT_MODEL, load_model, resolve_device
    from imagemachines.serve.app import create_app
    from imagemachines.serve.guard import allowed_host_names
    from imagemachines.serve.schemas import Limits

    dev = resolve_device(device)
    loaded = {}
    for name in models or [DEFAULT_MODEL]:
        with console.status(f"Loading {name} on {dev}…"):
            model = load_model(name, device=dev)
        if model.name in loaded:
            raise UserError(f"Two of the models given are both called {model.name!r}; serve each name once.")
        loaded[model.name] = model
        console.print(f"[green]✓[/] {model.name} ({model.weights_id}) on {dev}")
    cache = (cache_dir or default_cache_dir()).expanduser()
    limits = Limits(max_size=max_size, max_steps=max_steps, max_batch=max_batch, max_queue=max_queue,
                    max_cache_bytes=cache_bytes)
    from imagemachines.serve.uploads import UploadLimits

    indexes = open_indexes(index or [], console)
    renderer = None
    if render_processes and dev.type == "cpu":
        from imagemachines.serve.render_process import RenderProcesses

        renderer = RenderProcesses(loaded, processes=render_processes)
    try:
        app = create_app(loaded, cache_dir=cache, allow_origins=tuple(allow_origin or ()), limits=limits,
                         allowed_hosts=allowed_host_names(host, allowed_host or ()), indexes=indexes,
                         upload_limits=UploadLimits(max_bytes=max_upload_mb * 2**20), render_fn=renderer)
        if renderer is not None:
            renderer.start(wait=False)  # they import PyTorch while the server starts; meanwhile it renders itself
        _run(app, console, host, port, cache, allowed_host)
    finally:
        if renderer is not None:
            renderer.close()


def _run(app, console, host: str, port: int, cache: Path, allowed_host) -> None:
    from imagemachines.serve import server

    if host not in LOOPBACK:
        console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach this machine can use "
                      "the server (there is no login).")
        if host in ("0.0.0.0", "::") and not allowed_host:
            console.print("[yellow]note:[/] requests are answered only for loopback names; add "
                          "--allowed-host NAME for each name or address other machines use to reach this one.")
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Renders are cached in {cache}\nOpen [bold]http://{shown}:{port}/[/] (API docs at /docs). "
                  "Ctrl+C stops.")
    stopped_by = server.run_server(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3,
                                   **server.uvicorn_options())
    if stopped_by is not None:
        console.print("Stopped.")
        raise typer.Exit(128 + stopped_by)  # 130 for Ctrl+C, as a shell expects


def register(app: typer.Typer) -> None:
    """Add the serve command to the main app."""
    app.command("serve")(serve)
