"""`dilemma serve`: an OpenAI-compatible endpoint over any model spec (optionally defended)."""

from __future__ import annotations

import ipaddress
import socket

import typer

from dilemmakit.cli.app import app, err
from dilemmakit.errors import UserError
from dilemmakit.serve.guard import API_KEY_ENV


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise typer.BadParameter(f"{text} is not a positive number")
    return value


@app.command()
def serve(
    model: str = typer.Option(..., "--model", help="Model spec: embedded | embedded-err | hf:<path> | openai:..."),
    defense: str | None = typer.Option(None, "--defense", help="A defense directory (or aligned|err) to install"),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; one other than loopback needs --api-key (or --no-auth)"
    ),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on", min=1, max=65535),
    served_name: str | None = typer.Option(
        None, "--served-name", help="Model id reported by /v1/models (default: the spec's model name, no URL)"
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        show_default=False,
        help="Require `Authorization: Bearer KEY` on every request (401 otherwise)",
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Serve a non-loopback --host without a key: anyone who reaches it can use the model"
    ),
    max_body_mb: float = typer.Option(
        4.0,
        "--max-body-mb",
        help="Largest request body accepted (413 beyond)",
        parser=_positive,
        metavar="FLOAT",
    ),
) -> None:
    """Serve /v1/chat/completions (streaming, n, stop) and /v1/models; the gate score rides in X-Dilemma-Gate."""
    if api_key is not None and not api_key.strip():
        raise UserError(f"--api-key (or ${API_KEY_ENV}) is empty")
    if api_key is None and not no_auth and not _is_loopback(host):
        raise UserError(
            f"--host {host} is reachable from other machines: give --api-key KEY (or set ${API_KEY_ENV}) "
            "so only clients with the key can use the model, or --no-auth to serve it to anyone"
        )
    listener = _bind(host, port)  # a port in use fails at once, not after minutes of loading
    import uvicorn

    from dilemmakit.defense.loading import resolve_defense
    from dilemmakit.loading import load_model
    from dilemmakit.models.spec import parse_spec, with_defense
    from dilemmakit.serve import build_app
    from dilemmakit.serve.app import public_model_id

    spec = with_defense(model, defense)
    parsed = parse_spec(spec)
    if parsed.options.get("defense"):
        resolve_defense(parsed.options["defense"])  # a bad path fails before minutes of loading
    name = served_name or public_model_id(spec)
    err.print(f"loading {parsed} ...", highlight=False)
    chat_model = load_model(spec)
    err.print(
        f"serving {name} on http://{_url_host(host)}:{port}/v1 (requests name the model {name!r})", highlight=False
    )
    if api_key is not None:
        err.print("requests need `Authorization: Bearer <the API key>`", highlight=False)
    else:
        err.print(
            "serving without authentication: anyone who can reach this address can use the model"
            + (" (loopback only)" if _is_loopback(host) else ""),
            highlight=False,
        )
    app_ = build_app(
        chat_model,
        served_name=name,
        aliases=(model, spec),
        api_key=api_key,
        max_body_bytes=int(max_body_mb * 2**20),
    )
    uvicorn.Server(uvicorn.Config(app_, log_level="warning")).run(sockets=[listener])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket's address, bound (uvicorn listens on it), or one line saying why it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
