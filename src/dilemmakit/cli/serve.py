"""`dilemma serve`: an OpenAI-compatible endpoint over any model spec (optionally defended)."""

from __future__ import annotations

import typer

from dilemmakit.cli.app import app, err


@app.command()
def serve(
    model: str = typer.Option(..., "--model", help="Model spec: embedded | embedded-err | hf:<path> | openai:..."),
    defense: str | None = typer.Option(None, "--defense", help="A defense directory (or aligned|err) to install"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8000, "--port", help="Port to listen on"),
    served_name: str | None = typer.Option(None, "--served-name", help="Model id reported by /v1/models"),
) -> None:
    """Serve /v1/chat/completions (streaming, n, stop) and /v1/models; the gate score rides in X-Dilemma-Gate."""
    import uvicorn

    from dilemmakit.defense.loading import resolve_defense
    from dilemmakit.loading import load_model
    from dilemmakit.models.spec import parse_spec, with_defense
    from dilemmakit.serve import build_app

    spec = with_defense(model, defense)
    parsed = parse_spec(spec)
    if parsed.options.get("defense"):
        resolve_defense(parsed.options["defense"])  # a bad path fails before minutes of loading
    if not 0 < port < 65536:
        from dilemmakit.errors import UserError

        raise UserError(f"--port {port} is not a TCP port")
    err.print(f"loading {spec} ...")
    chat_model = load_model(spec)
    name = served_name or chat_model.name
    err.print(f"serving {name} on http://{host}:{port}/v1 (requests name the model {name!r})")
    app = build_app(chat_model, served_name=served_name, aliases=(model, spec))
    uvicorn.run(app, host=host, port=port, log_level="warning")
