"""The Inspect tasks: `dilemmakit/trial` and, for comparison, `dilemmakit/direct` (the request asked plainly).

inspect eval dilemmakit/trial --model openai/gpt-4o-mini -T limit=10 -T judge=instrumental
"""

from __future__ import annotations

from inspect_ai import Task, task
from inspect_ai.model import GenerateConfig
from inspect_ai.solver import generate

from dilemmakit.attacks.base import AttackSettings
from dilemmakit.inspect.dataset import behavior_dataset
from dilemmakit.inspect.scorer import judged_turns
from dilemmakit.inspect.solver import trial_turns

# The target's sampling as our attacks use it (paper, section E.8); `--temperature` etc. override it.
TARGET_CONFIG = GenerateConfig(
    temperature=AttackSettings.target_params.temperature, max_tokens=AttackSettings.target_params.max_tokens
)


@task
def trial(
    behaviors: str = "jbb",
    limit: int | None = None,
    category: str | None = None,
    max_rounds: int = AttackSettings.max_rounds,
    judge_skip_rounds: int = AttackSettings.judge_skip_rounds,
    judge: str = "instrumental",
    framework: str = AttackSettings.framework,
    seed: int = AttackSettings.seed,
) -> Task:
    """TRIAL against the model under test; `judge`: a judge spec (`refusal`, `classifier`,
    `jbb:<model spec>`, ...), which also decides when the conversation stops."""
    return Task(
        dataset=behavior_dataset(behaviors, limit=limit, category=category, seed=seed),
        solver=trial_turns(
            judge=judge, max_rounds=max_rounds, judge_skip_rounds=judge_skip_rounds, framework=framework, seed=seed
        ),
        scorer=judged_turns(judge),
        config=TARGET_CONFIG,
    )


@task
def direct(
    behaviors: str = "jbb",
    limit: int | None = None,
    category: str | None = None,
    judge: str = "instrumental",
    seed: int = AttackSettings.seed,
) -> Task:
    """Each behavior's request asked plainly in one turn: the baseline TRIAL is compared with."""
    return Task(
        dataset=behavior_dataset(behaviors, limit=limit, category=category, seed=seed),
        solver=generate(),
        scorer=judged_turns(judge),
        config=TARGET_CONFIG,
    )
