"""A new backend is one registration: its kind (how the spec reads, its options with their help) and its builder.
The README's recipe, run as written: a spec of the new kind parses with its own option, an unknown option is one
line naming what the kind accepts, the identity drops transport options, and `load_model` builds it."""

import pytest

from dilemmakit.errors import UserError
from dilemmakit.loading import BACKENDS, load_model, register_backend
from dilemmakit.loading.backends import BackendDefaults
from dilemmakit.models.spec import KINDS, SAMPLING_OPTIONS, ModelSpec, SpecKind, parse_spec, spec_help


class EchoModel:
    def __init__(self, name: str, greeting: str, concurrency: int):
        self.name, self.greeting, self.concurrency = name, greeting, concurrency


def read_echo(text: str) -> ModelSpec | None:
    if not text.startswith("echo:"):
        return None
    head, _, query = text[len("echo:") :].partition("?")
    options = dict(p.split("=", 1) for p in query.split("&") if p)
    return ModelSpec(kind="echo", model=head, options=options, text=text)


@pytest.fixture
def echo_kind():
    kind = SpecKind(
        "echo",
        read_echo,
        {"greeting": "what the model says first", "concurrency": "requests in flight", **SAMPLING_OPTIONS},
        "'echo:<name>'",
    )

    @register_backend(kind)
    def build_echo(spec: ModelSpec, defaults: BackendDefaults):
        return EchoModel(spec.identity, spec.options.get("greeting", "hi"), spec.int_option("concurrency", 1))

    yield kind
    del KINDS["echo"], BACKENDS["echo"]
    parse_spec.cache_clear()


def test_a_registered_kind_parses_builds_and_names_itself(echo_kind):
    spec = parse_spec("echo:parrot?greeting=hello&concurrency=4&top_k=5")
    assert spec.kind == "echo" and spec.options["greeting"] == "hello"
    assert spec.identity == "echo:parrot?greeting=hello&top_k=5"  # concurrency is transport
    model = load_model(spec)
    assert isinstance(model, EchoModel) and model.greeting == "hello" and model.concurrency == 4
    assert "'echo:<name>'" in spec_help()


def test_an_unknown_option_names_what_the_kind_accepts(echo_kind):
    with pytest.raises(UserError, match="unknown option.*colour.*echo accepts.*greeting"):
        parse_spec("echo:parrot?colour=red")


def test_without_its_registration_the_spec_is_unknown():
    with pytest.raises(UserError, match="unknown model spec"):
        parse_spec("echo:parrot")


def test_every_option_of_the_built_in_kinds_has_help():
    for kind in ("embedded", "hf", "openai", "llamacpp"):
        assert all(help.strip() for help in KINDS[kind].options.values()), kind
        assert set(BACKENDS) >= {"embedded", "hf", "openai", "llamacpp"}
