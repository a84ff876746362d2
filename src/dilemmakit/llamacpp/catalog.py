"""The models `dilemma models install` knows, as data (`models.json`): adding a model is adding an entry.

Each entry names the upstream file the joined bytes must equal (size and SHA-256), its license, how the
bytes are packaged (numbered registry packages, each holding one chunk), the chat template the server uses
and the spec alias that serves it (`real-qwen`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dilemmakit import resources
from dilemmakit.errors import UserError


@dataclass(frozen=True)
class PartsPackaging:
    """Chunks shipped as registry packages: part n is distribution `distribution.format(n=n)` at `version`,
    importable as `module.format(n=n)`, with its bytes in the file `chunk.format(n=n)` below the module."""

    count: int
    distribution: str
    version: str
    module: str
    chunk: str

    def requirement(self, n: int) -> str:
        return f"{self.distribution.format(n=n)}=={self.version}"

    def describe(self) -> str:
        return (
            f"{self.count} PyPI packages {self.distribution.format(n=1)} .. {self.distribution.format(n=self.count)} "
            f"version {self.version}, one chunk each, joined in order"
        )


@dataclass(frozen=True)
class CatalogModel:
    name: str  # what `dilemma models install` takes
    spec: str  # the model-spec alias that serves it (`real-qwen`)
    title: str
    upstream: str  # where the original file is published
    upstream_file: str  # its file name there; also the installed file's name
    license: str
    size: int  # bytes of the joined file
    sha256: str
    chat_format: str  # llama-cpp-python's --chat_format; `chat_template.default`: the GGUF's own template
    n_ctx: int  # the server's context window
    parts: PartsPackaging


def _entry(name: str, raw: dict) -> CatalogModel:
    return CatalogModel(name=name, **{**raw, "parts": PartsPackaging(**raw["parts"])})


@cache
def catalog() -> dict[str, CatalogModel]:
    raw = json.loads(resources.read_text("dilemmakit.llamacpp", "models.json"))
    return {name: _entry(name, entry) for name, entry in raw.items()}


def load_catalog(path: Path) -> dict[str, CatalogModel]:
    """A catalog from another file in the same format (tests, a private mirror)."""
    return {name: _entry(name, entry) for name, entry in json.loads(path.read_text(encoding="utf-8")).items()}


def spec_aliases() -> dict[str, str]:
    """Spec alias -> catalog name (`real-qwen` -> `qwen-coder-1.5b`)."""
    return {m.spec: m.name for m in catalog().values()}


def get_model(name: str) -> CatalogModel:
    models = catalog()
    if name not in models:
        raise UserError(f"unknown model {name!r}: known models are {', '.join(sorted(models))}")
    return models[name]
