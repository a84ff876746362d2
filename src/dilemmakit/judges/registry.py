"""Judge specs by prefix: offline `instrumental` (the default), `refusal`, `compliance` (over-refusal), `classifier`;
LLM `jbb|harmbench|strongreject|clas:<model spec>`.

An LLM judge's own options ride in the model spec's query string and are taken out before the model
spec is parsed: `strongreject:openai:gpt-4o@https://host/v1?threshold=0.75`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from dilemmakit.errors import UserError
from dilemmakit.judges.base import Judge
from dilemmakit.judges.instrumental import InstrumentalJudge
from dilemmakit.judges.llm import RUBRICS, LLMJudge
from dilemmakit.judges.refusal import ComplianceJudge, RefusalJudge
from dilemmakit.models.base import ChatModel
from dilemmakit.models.secrets import redact
from dilemmakit.models.spec import ModelSpec, parse_spec


def _classifier() -> Judge:
    from dilemmakit.judges.classifier import ClassifierJudge  # loads torch/transformers only when used

    return ClassifierJudge()


OFFLINE_JUDGES: dict[str, Callable[[], Judge]] = {
    "instrumental": InstrumentalJudge,
    "refusal": RefusalJudge,
    "compliance": ComplianceJudge,
    "classifier": _classifier,
}
LLM_JUDGE_PREFIXES = tuple(RUBRICS)
JUDGE_OPTIONS = ("threshold",)
JUDGE_HELP = (
    "use "
    + ", ".join(f"'{name}'" for name in OFFLINE_JUDGES)
    + " or '<"
    + "|".join(LLM_JUDGE_PREFIXES)
    + ">:<model spec>'"
)


def judges_help(*, over_refusal: bool = False) -> str:
    """The judge choices for a `--judge` help text. `compliance` judges over-refusal replies (is the safe
    prompt answered?), so only the judges that rate those list it."""
    offline = [name for name in OFFLINE_JUDGES if over_refusal or name != "compliance"]
    return " | ".join(offline) + " | <" + "|".join(LLM_JUDGE_PREFIXES) + ">:<model spec>"


def _take_judge_options(model_spec: str) -> tuple[str, dict[str, str]]:
    if "?" not in model_spec:
        return model_spec, {}
    head, _, query = model_spec.rpartition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    options = {k: v for k, v in pairs if k in JUDGE_OPTIONS}
    rest = [(k, v) for k, v in pairs if k not in JUDGE_OPTIONS]
    return (f"{head}?{urlencode(rest)}" if rest else head), options


def parse_judge_spec(text: str) -> tuple[str, str | None, dict[str, str]]:
    """(prefix, model spec or None, judge options); validates the prefix and options."""
    raw = (text or "").strip()
    if raw in OFFLINE_JUDGES:
        return raw, None, {}
    prefix, sep, model_spec = raw.partition(":")
    if prefix not in RUBRICS:
        raise UserError(f"unknown judge {redact(raw)!r}: {JUDGE_HELP}")
    if not sep or not model_spec:
        raise UserError(f"judge {redact(raw)!r} names no model: write {prefix}:<model spec>")
    model_spec, options = _take_judge_options(model_spec)
    if "threshold" in options:
        try:
            float(options["threshold"])
        except ValueError:
            raise UserError(
                f"judge {redact(raw)!r}: threshold must be a number, got {options['threshold']!r}"
            ) from None
    return prefix, model_spec, options


def split_judge_spec(text: str) -> tuple[str, str | None]:
    """('refusal', None) or ('jbb', '<model spec>'): what campaigns need to load the judge model."""
    prefix, model_spec, _ = parse_judge_spec(text)
    return prefix, model_spec


@dataclass(frozen=True)
class JudgeSpec:
    """A judge spec read whole: its prefix, its model's parsed spec (None for an offline judge; the judge's own
    options taken out of it) and those options."""

    prefix: str
    model: ModelSpec | None = None
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def identity(self) -> str:
        """The judge as runs record it (its verdicts are stored under this name): the model spec's identity
        (`ModelSpec.identity`: no transport options) with the judge's own options."""
        if self.model is None:
            return self.prefix
        identity = self.model.identity
        if self.options:
            identity += ("&" if "?" in identity else "?") + urlencode(sorted(self.options.items()))
        return f"{self.prefix}:{identity}"


def read_judge_spec(text: str) -> JudgeSpec:
    """Parse a judge spec and its model spec (`parse_judge_spec`, `parse_spec`): UserError when either is bad."""
    prefix, model_spec, options = parse_judge_spec(text)
    return JudgeSpec(prefix, None if model_spec is None else parse_spec(model_spec), options)


def judge_identity(text: str) -> str:
    """The identity of a judge spec string (see `JudgeSpec.identity`)."""
    return read_judge_spec(text).identity


def build_judge(spec: JudgeSpec | str, model: ChatModel | None) -> Judge:
    """The judge a spec names; `model` is its loaded model (None for an offline judge)."""
    spec = read_judge_spec(spec) if isinstance(spec, str) else spec
    if spec.model is None:
        return OFFLINE_JUDGES[spec.prefix]()
    assert model is not None
    threshold = float(spec.options["threshold"]) if "threshold" in spec.options else None
    return LLMJudge(model, RUBRICS[spec.prefix], name=spec.identity, threshold=threshold)
