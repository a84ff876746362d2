"""TRIAL's turns against the Inspect model under test, with the attack's own opening, follow-up and
judging policy (`attacks/trial`), in its offline form: the rule-based clue, a template scenario and
template follow-ups (`dilemma attack --attacker template`). The conversation stops at the first turn
the judge calls a success, as the attack does."""

from __future__ import annotations

from inspect_ai.model import ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from dilemmakit.attacks.base import AttackSettings
from dilemmakit.attacks.trial import offline_opening, prompt_book, template_followup
from dilemmakit.attacks.trial.attack import play_rounds, step_rng
from dilemmakit.inspect.dataset import behavior_of
from dilemmakit.inspect.judging import judge_for, judge_turn
from dilemmakit.judges.registry import parse_judge_spec

TURN = "trial"  # an assistant message's metadata: {"round", "stage", "judged"}


@solver
def trial_turns(
    judge: str = "instrumental",
    max_rounds: int = AttackSettings.max_rounds,
    judge_skip_rounds: int = AttackSettings.judge_skip_rounds,
    framework: str = AttackSettings.framework,
    seed: int = AttackSettings.seed,
    max_pullbacks: int = 1,
) -> Solver:
    parse_judge_spec(judge)
    settings = AttackSettings(
        max_rounds=max_rounds, judge_skip_rounds=judge_skip_rounds, framework=framework, seed=seed
    )
    book = prompt_book()
    book.framework(framework)  # an unknown framework fails here, before any sample runs

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        behavior = behavior_of(state)
        opening = offline_opening(behavior, framework=framework, rng=step_rng(seed, behavior, "scenario"), book=book)
        the_judge = judge_for(judge)
        state.messages = []  # TRIAL never sends the request itself

        class Turns:
            async def followup(self, case: str, rnd: int, question: str, answer: str) -> tuple[str, str]:
                return f"followup_{case}", template_followup(
                    book,
                    case,
                    clue=opening.clue,
                    scenario_meta=opening.scenario_meta,
                    last_answer=answer,
                    behavior_prompt=behavior.prompt,
                    rng=step_rng(seed, behavior, f"followup{rnd}"),
                )

            async def ask(self, rnd: int, stage: str, question: str) -> str:
                nonlocal state
                state.messages.append(
                    ChatMessageUser(content=question, metadata={TURN: {"round": rnd, "stage": stage}})
                )
                state = await generate(state)
                return state.output.completion

            async def judge(self, rnd: int, stage: str, judged: bool) -> bool:
                reply = state.messages[-1]
                reply.metadata = {**(reply.metadata or {}), TURN: {"round": rnd, "stage": stage, "judged": judged}}
                return (
                    judged and (await judge_turn(the_judge, behavior, state.messages, len(state.messages) - 1)).success
                )

        await play_rounds(Turns(), opening.message, book, settings, max_pullbacks=max_pullbacks)
        return state

    return solve
