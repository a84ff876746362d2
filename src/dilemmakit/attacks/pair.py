"""PAIR (Chao et al., 2023, arXiv 2310.08419): attackers refine a single prompt over iterations from judge feedback.

Follows the paper and its code (github.com/patrickrchao/JailbreakingLLMs): `n_streams` independent streams
each keep an attack history, the last `keep_last_n` attempts (the attacker's improvement and prompt P, the
target's response and the judge's score), and the attacker writes its next {"improvement", "prompt"} from
that history. Each attempt is one fresh single-turn query to the target (it remembers nothing) followed by a
judgement, and PAIR stops at the first success.

Under this toolkit's budget `max_rounds` is the number of target queries of the whole conversation: the
streams take turns (query k goes to stream k mod n_streams), so with the paper's baseline setting (one
stream, as in the TRIAL paper's comparison) it is also the iteration depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

from dilemmakit.attacks.base import AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, attacker_step, judge_reply
from dilemmakit.attacks.journal import Journal
from dilemmakit.attacks.prompt_files import read_prompt, templates
from dilemmakit.attacks.stages import single
from dilemmakit.attacks.text import json_objects
from dilemmakit.behaviors import Behavior
from dilemmakit.config import option
from dilemmakit.judges import opens_with_refusal
from dilemmakit.models.base import Message

PROMPT, QUERY = "pair_prompt", "pair"
STAGES = (single(PROMPT), single(QUERY))
NO_HISTORY = "(none yet: this is the stream's first attempt)"


def parse_pair_output(text: str) -> str | None:
    """The attacker's answer as canonical JSON {"improvement", "prompt"}; None if it has no usable prompt."""
    for data in json_objects(text):
        prompt = data.get("prompt")
        if isinstance(prompt, str) and prompt.strip() and not opens_with_refusal(prompt):
            improvement = data.get("improvement")
            improvement = improvement.strip() if isinstance(improvement, str) else ""
            return json.dumps({"improvement": improvement, "prompt": prompt.strip()})
    return None


def read_attempt(content: str) -> tuple[str, str]:
    """(improvement, prompt) of a stored attacker turn (a plain prompt in runs written before histories)."""
    for data in json_objects(content):
        if isinstance(data.get("prompt"), str):
            return str(data.get("improvement") or ""), data["prompt"]
    return "", content


def reframe(template: str, behavior: Behavior) -> str:
    request = behavior.prompt.strip()
    lower = request[:1].lower() + request[1:]
    return template.replace("$request_lower", lower).replace("$request", request)


@dataclass(frozen=True)
class Attempt:
    improvement: str
    prompt: str
    response: str
    score: str


def history_text(attempts: list[Attempt], first: int, max_chars: int = 1500) -> str:
    """A stream's kept attempts, oldest first, numbered from `first`."""
    if not attempts:
        return NO_HISTORY

    def cut(text: str) -> str:
        return text if len(text) <= max_chars else text[:max_chars] + "..."

    blocks = []
    for n, a in enumerate(attempts, start=first):
        blocks.append(
            f"ATTEMPT {n}\nIMPROVEMENT: {a.improvement or '(none given)'}\nPROMPT P: {cut(a.prompt)}\n"
            f"LANGUAGE MODEL OUTPUT: {cut(a.response)}\nSCORE: {a.score}"
        )
    return "\n\n".join(blocks)


class PairOptions(AttackOptions):
    # the TRIAL paper's PAIR baseline runs one stream; PAIR's code keeps the last 4 attempts
    n_streams: int = option(
        1, "PAIR: attacker streams taking turns within the --max-rounds queries", ge=1, identity="if_set"
    )
    keep_last_n: int = option(4, "PAIR: earlier attempts each stream's attacker sees", ge=1, identity="if_set")


class PairAttack:
    name = "pair"

    def __init__(self, settings: AttackSettings, options: PairOptions | None = None):
        self.settings = settings
        self.options = options or PairOptions()
        self.book = templates("pair")
        self.attacker_prompt = read_prompt("pair", "attacker.txt")

    def _offline(self, k: int, behavior: Behavior) -> str:
        reframings = self.book["reframings"]
        prompt = reframe(reframings[k % len(reframings)], behavior)
        return json.dumps({"improvement": f"offline reframing {k % len(reframings) + 1}", "prompt": prompt})

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome:
        s = self.settings
        streams: list[list[Attempt]] = [[] for _ in range(self.options.n_streams)]
        for rnd in range(1, s.max_rounds + 1):
            stream = streams[(rnd - 1) % self.options.n_streams]
            kept = stream[-self.options.keep_last_n :]
            llm_prompt = self.attacker_prompt.substitute(
                goal=behavior.prompt,
                keep=self.options.keep_last_n,
                history=history_text(kept, first=len(stream) - len(kept) + 1),
            )
            attempt = await attacker_step(
                journal,
                roles,
                s,
                PROMPT,
                llm_prompt=llm_prompt,
                parse=parse_pair_output,
                template=partial(self._offline, rnd - 1, behavior),
            )
            improvement, prompt = read_attempt(attempt.content)
            reply = await ask_target(journal, roles, s, prompt, QUERY, history=[])
            context: list[Message] = [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": reply.content},
            ]
            verdict = await judge_reply(journal, roles, behavior, reply, context=context)
            if verdict.success:
                return Outcome(success=True, rounds=rnd, broken_turn=reply.idx)
            score = "unknown" if verdict.score is None else f"{verdict.score:g} ({verdict.label})"
            stream.append(Attempt(improvement, prompt, reply.content, score))
        return Outcome(success=False, rounds=s.max_rounds)
