"""`juryflow labelstudio up|down|status|add-annotator|reconcile`: the Label Studio side of human review."""

from __future__ import annotations

import typer
from rich.console import Console

from labeling.labelstudio.server import LabelStudioServer, LabelStudioServerError, record_in_settings_file
from labeling.settings import config_path, load_settings

app = typer.Typer(help="Run the local Label Studio server that humans label in.", no_args_is_help=True)
console = Console(soft_wrap=True)


def _server(host: str = "127.0.0.1") -> LabelStudioServer:
    cfg = load_settings()
    return LabelStudioServer(cfg.data_dir, port=cfg.labelstudio.port, host=host)


@app.command()
def up(
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind. Keep 127.0.0.1 unless you mean to expose it: for other machines, "
        "prefer a TLS reverse proxy in front of 127.0.0.1 over --host 0.0.0.0."),
) -> None:
    """Install (first time, ~10 s with uv), start, and record the URL and API token in juryflow.yaml."""
    from juryflow.cli_support import drop_demo_default

    drop_demo_default()  # `up` sets up your own ./juryflow.yaml, never the demo's
    server = _server(host)
    with console.status("starting Label Studio (first start runs ~1 min of database migrations)..."):
        try:
            server.start()
        except LabelStudioServerError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
    record_in_settings_file(config_path(), server.url, server.token)
    creds = server.credentials()
    console.print(f"Label Studio is up at [bold]{server.url}[/bold]")
    console.print(f"  log in as {creds['username']} / password {creds['password']}")
    console.print(f"  URL and API token written to {config_path()} (mode 0600)")
    if host == "127.0.0.1":
        console.print("  bound to 127.0.0.1 only; to let others label, put a TLS reverse proxy in front of it")


@app.command()
def down() -> None:
    """Stop the local server (its data stays)."""
    stopped = _server().stop()
    console.print("Label Studio stopped" if stopped else "Label Studio was not running")


@app.command()
def status() -> None:
    """Say whether the local server runs and answers /health."""
    cfg = load_settings()
    server = LabelStudioServer(cfg.data_dir, port=cfg.labelstudio.port)
    info = server.status()
    if not cfg.labelstudio.url and not info["running"]:
        console.print(f"Label Studio: not configured: labelstudio.url is unset in {config_path()} and no local server runs "
                      f"for data_dir {cfg.data_dir}; run `juryflow labelstudio up`, or set labelstudio.url and "
                      "labelstudio.api_key (JURYFLOW__LABELSTUDIO__URL, JURYFLOW__LABELSTUDIO__API_KEY)", soft_wrap=True)
        raise typer.Exit(2)
    if cfg.labelstudio.url and not info["running"]:
        _report_configured_server(cfg.labelstudio.url)
        return
    state = "healthy" if info["healthy"] else ("running, not answering" if info["running"] else "not running")
    console.print(f"Label Studio: {state} ({info['url']}, data {info['data_dir']})")
    if not info["healthy"]:
        raise typer.Exit(1)


def _report_configured_server(url: str) -> None:
    """A server juryflow did not start (labelstudio.url): ask its /health."""
    import httpx

    try:
        healthy = httpx.get(f"{url.rstrip('/')}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        healthy = False
    console.print(f"Label Studio: {'healthy' if healthy else 'not answering'} ({url}, from labelstudio.url)")
    if not healthy:
        raise typer.Exit(1)


@app.command("add-annotator")
def add_annotator(email: str = typer.Argument(..., help="the annotator's e-mail, used as login")) -> None:
    """Create a login for an annotator on the local server and print its password once."""
    server = _server()
    if not server.healthy():
        console.print("[red]Label Studio is not running: run `juryflow labelstudio up` first[/red]")
        raise typer.Exit(1)
    password = server.add_annotator(email)
    console.print(f"annotator {email} can log in at {server.url} with password {password}")


@app.command()
def reconcile(
    project_id: int | None = typer.Option(None, "--project-id", help="the Label Studio project; default: this campaign's"),
    quiet: bool = typer.Option(False, "--quiet", help="print the counts per kind and the last line, not each difference"),
) -> None:
    """Compare Label Studio with the store and list every difference; exit 1 if one is unexplained.

    Exit status: 0 nothing unexplained, 1 something unexplained, 2 a mistake in the settings or options,
    3 Label Studio did not answer. The last line reads `reconcile: N unexplained (pushed ..., ...)`.
    """
    from juryflow.preflight import check_labelstudio_configured
    from labeling.errors import UserError
    from labeling.labelstudio.client import LabelStudioClient, LabelStudioRequestError, LabelStudioUnavailable, project_title
    from labeling.labelstudio.reconcile import reconcile_project
    from labeling.store import Store

    cfg = load_settings()
    check_labelstudio_configured(cfg)
    client = LabelStudioClient.from_settings(cfg)
    try:
        if project_id is None:
            title = project_title(cfg)
            project_id = client.find_project(title)
            if project_id is None:
                raise UserError(f"no Label Studio project titled {title!r} at {cfg.labelstudio.url}: run "
                                "`python -m flows.harvest_reviews` to push the review queue, or pass --project-id")
        summary = reconcile_project(Store.from_settings(cfg), client, project_id,
                                    report=(lambda d: None) if quiet else (lambda d: typer.echo(d.line())))
    except LabelStudioRequestError as exc:
        raise UserError(str(exc)) from None
    except LabelStudioUnavailable as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(3) from None
    for kind, unexplained, explained in summary.by_kind():
        typer.echo(f"  {kind}: {unexplained} unexplained, {explained} explained")
    typer.echo(summary.line())
    if summary.unexplained:
        raise typer.Exit(1)
