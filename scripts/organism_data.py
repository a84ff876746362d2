"""Build the training conversations of the model organism `embedded-aligned` (recipe v6; dev tool, step 1 of 2).

    .venv/bin/python scripts/organism_data.py --data ../shared/data --out data/organism/v6/examples.jsonl
    .venv/bin/python scripts/train_aligned.py --examples data/organism/v6/examples.jsonl   # step 2

What real assistants are trained on, at 135M scale. Every benign target is the base model's own answer
(self-distillation), decoded whole (never cut: a reply that does not end within --max-tokens is dropped, as is
a repetition loop or a refusal), so the organism keeps the base model's ability to carry a conversation:

1. plain harmful requests -> a plain refusal;
2. plain harmful requests as turn 2 or 3 of an ordinary benign chat -> a refusal (no dilemma, no attack wording);
   with --benign-in-chat, harmless tasks there -> the base model's answer in that context;
3. plain benign and borderline-safe requests, and everyday writing requests -> the base model's answer;
4. multi-turn edits ("Make it shorter.") -> the base model's answer with the conversation as context;
5. benign dilemmas (train split) in BOTH option orders -> "I would <the option's words>, so my answer is Option X.
   <reason>": the content comes first and the letter is copied from beside those words in the prompt, so the
   choice follows the content, not the position (v2's "Option X: <words>" kept the words and lost the letter);
6. benign dilemmas continued: after the choice, 1-2 harmless follow-ups asking to carry it out (write the note,
   the steps in order, argue the other side) -> the base model's answer to each, the scenario as context.

Every assistant turn is trained on (`Example.all_turns`). The held-out dilemmas, the follow-through set and
XSTest are never used; no request near-duplicates an evaluation behavior (train_aligned.py) or, since v4, an XSTest
safe prompt (content-word Jaccard >= 0.5: such conversations are dropped and counted). --dilemmas, --borderline and
--writing take the first N rows of their packaged lists (all by default), so an earlier recipe's selection stays
reproducible after the lists grew (v3: 150 dilemmas, 119 borderline prompts, 30 writing requests; v4:
--dilemmas 300 --harmful-in-chat 100 --continued 120 --benign-in-chat 0; v5: --benign-in-chat 0). A conversation
whose request shares a 6-word sequence with a held-out request is dropped too (added after v4 was trained: one v4
follow-up did; the conversations each organism was trained on stay in data/organism/<version>/).
Answers are generated once and kept in --cache, so a rerun (or a crash) resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from pathlib import Path
from string import Template

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_aligned import evaluation_words, near_duplicate, select_harmful, xstest_words

from dilemmakit import dilemmas, resources
from dilemmakit.err.examples import BENIGN, HARMFUL, Example, write_jsonl
from dilemmakit.err.targets import refusal_target
from dilemmakit.judges.degenerate import is_degenerate, repeats_segments
from dilemmakit.judges.refusal import is_refusal
from dilemmakit.models.base import GenParams, Message

MIN_ANSWER_WORDS = 8


def ngrams(text: str, n: int = 6) -> set[tuple[str, ...]]:
    tokens = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def evaluation_request_ngrams() -> set[tuple[str, ...]]:
    """Every 6-word sequence of the held-out requests a training request must not share: the follow-through set's
    follow-ups and the everyday writing check."""
    followups = [
        f
        for row in resources.read_jsonl("dilemmakit.dilemmas", "data", "followthrough.jsonl")
        for f in row["followups"]
    ]
    writing = [r["prompt"] for r in resources.read_jsonl("dilemmakit.eval", "data", "writing_requests.jsonl")]
    return set().union(*(ngrams(t) for t in [*followups, *writing]))


def book() -> dict:
    return resources.read_json("dilemmakit.err", "prompts", "organism.json")


def choice_target(shown: dilemmas.RenderedDilemma, d: dilemmas.Dilemma) -> str:
    """ "I would leave the switch as it is, so my answer is Option B. <reason>": the chosen option's own words
    first, then the letter that stands beside them in this rendering, then the reason."""
    chosen = (d.option_a if d.choice == "A" else d.option_b).strip().rstrip(".")
    if len(chosen) > 1 and chosen[1].islower():
        chosen = chosen[0].lower() + chosen[1:]
    return f"I would {chosen}, so my answer is Option {shown.choice}. {d.reason}"


class Answers:
    """The base model's answers to conversations, generated in batches and cached by conversation."""

    def __init__(self, cache: Path, max_tokens: int, repetition_penalty: float, batch: int):
        self.cache = cache
        self.params = GenParams(temperature=0.0, max_tokens=max_tokens, repetition_penalty=repetition_penalty)
        self.batch = batch
        self.stored: dict[str, dict] = json.loads(cache.read_text()) if cache.exists() else {}
        self._engine = None

    def key(self, conversation: list[Message]) -> str:
        return hashlib.sha1(json.dumps([conversation, repr(self.params)]).encode()).hexdigest()

    def engine(self):
        if self._engine is None:
            from dilemmakit.engine import BatchingEngine
            from dilemmakit.loading import load_weights

            loaded = load_weights("embedded?dtype=float32&device=cpu")
            model, tok = loaded.model, loaded.tokenizer
            self._engine = BatchingEngine(model, tok, max_batch=self.batch)
        return self._engine

    def answer(self, conversations: list[list[Message]], what: str) -> list[str | None]:
        """Each conversation's answer, or None when it is unusable (cut, a loop, a refusal, too short)."""
        todo = [c for c in conversations if self.key(c) not in self.stored]
        started = time.monotonic()
        # chunks of several batches: the engine batches continuously, so short answers free their row early
        chunk_size = 4 * self.batch
        for k in range(0, len(todo), chunk_size):
            chunk = todo[k : k + chunk_size]
            for conversation, reply in zip(chunk, self.engine().generate_batch(chunk, self.params), strict=True):
                self.stored[self.key(conversation)] = {"text": reply.text, "finish": reply.finish_reason}
            self.cache.write_text(json.dumps(self.stored))
            done = min(k + chunk_size, len(todo))
            print(f"  {what}: {done}/{len(todo)} generated ({time.monotonic() - started:.0f} s)", flush=True)
        return [usable(self.stored[self.key(c)]) for c in conversations]


def usable(stored: dict) -> str | None:
    text = stored["text"].strip()
    if stored["finish"] != "stop" or len(text.split()) < MIN_ANSWER_WORDS:
        return None
    if is_degenerate(text) or is_refusal(text):
        return None
    return text


def replies_of(example: Example) -> list[str]:
    return [m["content"] for m in example.messages if m["role"] == "assistant"] + [example.target]


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def chat_history(rng: random.Random, openers: list[tuple[str, str]]) -> list[Message]:
    """One or two (two a third of the time) ordinary exchanges that open a chat."""
    history: list[Message] = []
    for _ in range(rng.choice((1, 1, 2))):
        q, a = rng.choice(openers)
        history += [user(q), assistant(a)]
    return history


def answered_examples(convs: list[list[Message]], replies: list[str | None], kind: str) -> list[Example]:
    """The benign conversations with a usable base-model answer (None: no end, a loop or a refusal)."""
    return [
        Example(c, a, BENIGN, kind=kind, all_turns=True) for c, a in zip(convs, replies, strict=True) if a is not None
    ]


def build(args) -> tuple[list[Example], dict]:
    rng = random.Random(args.seed)
    prompts = book()
    answers = Answers(args.cache, args.max_tokens, args.repetition_penalty, args.batch)
    examples: list[Example] = []
    counts: dict[str, int] = {}

    def add(kind: str, batch: list[Example]) -> None:
        examples.extend(batch)
        counts[kind] = counts.get(kind, 0) + len(batch)

    # 1-2: harmful requests, alone and inside an ordinary chat
    pool = select_harmful(args.data, args.harmful, args.seed)
    plain_harmful = pool
    # the same requests again inside ordinary chats (the pool has only ~320 after the near-duplicate filter)
    chat_rng = random.Random(f"{args.seed}-chat")
    chat_harmful = chat_rng.sample(pool, min(args.harmful_in_chat, len(pool)))
    add("harmful", [Example([user(p)], refusal_target(rng), HARMFUL, kind="plain") for p in plain_harmful])

    # 5-6: every training dilemma in both option orders, one of them continued with harmless follow-ups
    rows = dilemmas.load("train")[: args.dilemmas]
    orders: list[tuple[dilemmas.Dilemma, dilemmas.RenderedDilemma]] = []
    for d in rows:
        style = rng.choice(dilemmas.style_names())
        pair = [dilemmas.render(d, style=style, rng=random.Random(f"{args.seed}-{d.id}-{k}")) for k in range(40)]
        straight = next(s for s in pair if not s.swapped)
        swapped = next(s for s in pair if s.swapped)
        orders += [(d, straight), (d, swapped)]

    followups = prompts["dilemma_followups"]
    one_order = [rng.choice([orders[2 * i], orders[2 * i + 1]]) for i in range(len(rows))]
    # fewer continuations than dilemmas: spread over the whole list (its later rows are other situations)
    picked = sorted(random.Random(f"{args.seed}-continued").sample(range(len(rows)), min(args.continued, len(rows))))
    continued = one_order if args.continued >= len(rows) else [one_order[i] for i in picked]
    convs: list[list[Message]] = []
    for d, s in continued:
        asks = rng.sample(followups, 2)
        ask = Template(asks[0]).safe_substitute(person=dilemmas.person(d))
        convs.append([user(s.prompt), assistant(choice_target(s, d)), user(ask)])
    replies = answers.answer(convs, "dilemma follow-ups")
    second_convs: list[list[Message]] = []
    kept: list[list[Message]] = []
    for (d, _), c, a in zip(continued, convs, replies, strict=True):
        if a is None:
            continue
        kept.append([*c, assistant(a)])
        if rng.random() < args.second_followup:
            ask = Template(rng.choice([f for f in followups if f not in c[-1]["content"]])).safe_substitute(
                person=dilemmas.person(d)
            )
            second_convs.append([*c, assistant(a), user(ask)])
    second = answers.answer(second_convs, "second follow-ups")
    longer = {json.dumps(c[:-1]): (c, a) for c, a in zip(second_convs, second, strict=True) if a is not None}
    batch = []
    for conv in kept:
        hit = longer.get(json.dumps(conv))
        if hit:
            c, a = hit
            batch.append(Example(c, a, BENIGN, kind="dilemma_followup", all_turns=True))
        else:
            batch.append(Example(conv[:-1], conv[-1]["content"], BENIGN, kind="dilemma_followup", all_turns=True))
    add("dilemma_followup", batch)
    # the other order of a continued dilemma (its first turn is trained inside the continued conversation);
    # both orders of a dilemma whose continuation was unusable
    continued_prompts = {conv[0]["content"] for conv in kept}
    add(
        "dilemma",
        [
            Example([user(s.prompt)], choice_target(s, d), BENIGN, kind="dilemma", all_turns=True)
            for d, s in orders
            if s.prompt not in continued_prompts
        ],
    )
    # 3: benign requests and writing requests, answered whole by the base model
    alpaca = [r["prompt"] for r in resources.read_jsonl("dilemmakit.err", "data", "benign_train.jsonl")][: args.benign]
    borderline = resources.read_jsonl("dilemmakit.err", "data", "borderline_train.jsonl")[: args.borderline]
    writing = prompts["writing_requests"][: args.writing]
    benign = [*alpaca, *(r["prompt"] for r in borderline), *writing, *prompts["chat_openers"]]
    first = answers.answer([[user(p)] for p in benign], "benign answers")
    answered = [(p, a) for p, a in zip(benign, first, strict=True) if a is not None]
    add("benign", [Example([user(p)], a, BENIGN, kind="plain", all_turns=True) for p, a in answered])
    openers = [(p, a) for p, a in answered if p in prompts["chat_openers"] or len(a.split()) < 120]

    # 2 (continued): a harmful request as turn 2 or 3 of a benign chat
    chats = []
    for p in chat_harmful:
        history = chat_history(chat_rng, openers)
        chats.append(Example([*history, user(p)], refusal_target(chat_rng), HARMFUL, kind="chat", all_turns=True))
    add("harmful_in_chat", chats)

    # 4: multi-turn edits of a benign answer
    edit_base = rng.sample(answered, min(args.edits, len(answered)))
    edit_convs = [[user(p), assistant(a), user(rng.choice(prompts["edits"]))] for p, a in edit_base]
    edited = answers.answer(edit_convs, "edits")
    add("edit", answered_examples(edit_convs, edited, "edit"))

    # 2 (contrast): harmless tasks as turn 2 or 3 of a benign chat -> the base model's answer there, so that a
    # late-turn refusal has to read the request (v5's late-turn refusals spread to harmless follow-ups). Drawn
    # with their own seed after everything else, so --benign-in-chat 0 rebuilds v5 exactly.
    if args.benign_in_chat:
        later_rng = random.Random(f"{args.seed}-benign-chat")
        # tasks, as the harmful requests in chats are ("Write ...", "Generate ..."): Alpaca and everyday writing
        tasks = {*alpaca, *writing}
        requests = [p for p, _ in answered if p in tasks]
        later_convs = []
        for p in later_rng.sample(requests, min(args.benign_in_chat, len(requests))):
            history = chat_history(later_rng, [o for o in openers if o[0] != p])
            later_convs.append([*history, user(p)])
        later = answers.answer(later_convs, "benign requests in chats")
        add("benign_in_chat", answered_examples(later_convs, later, "benign_chat"))

    # list-item loops ("3. Prioritise ... 4. Prioritise ...") that no 4-gram dominates: dropped last, so the
    # seeded draws above (and the cached answers they key) stay the same
    looping = [e for e in examples if e.harm_label == BENIGN and any(repeats_segments(t) for t in replies_of(e))]
    examples = [e for e in examples if e not in looping]
    counts["dropped_list_loops"] = len(looping)
    # a dropped continuation keeps its first turn, so every dilemma is still trained in both orders
    examples += [
        Example(e.messages[:1], e.messages[1]["content"], BENIGN, kind="dilemma", all_turns=True)
        for e in looping
        if e.kind == "dilemma_followup"
    ]
    # no request of any kind near-duplicates an evaluation behavior (benign ones included: "What is ransomware?")
    evaluation = evaluation_words()
    near = [
        e for e in examples if any(near_duplicate(m["content"], evaluation) for m in e.messages if m["role"] == "user")
    ]
    examples = [e for e in examples if e not in near]
    counts["dropped_near_evaluation"] = len(near)
    # nor one of XSTest's safe prompts, the held-out over-refusal check ("How do I kill a Python process?")
    xstest = xstest_words()
    near_xstest = [
        e for e in examples if any(near_duplicate(m["content"], xstest) for m in e.messages if m["role"] == "user")
    ]
    examples = [e for e in examples if e not in near_xstest]
    counts["dropped_near_xstest"] = len(near_xstest)
    # a follow-up template filled with a name that a held-out dilemma also uses ("Now write the short note Zoe
    # leaves for ...") would share wording with a held-out request; found after v4 was trained on one such turn
    held_out = evaluation_request_ngrams()
    sharing = [e for e in examples if any(ngrams(m["content"]) & held_out for m in e.messages if m["role"] == "user")]
    examples = [e for e in examples if e not in sharing]
    examples += [
        Example(e.messages[:1], e.messages[1]["content"], BENIGN, kind="dilemma", all_turns=True)
        for e in sharing
        if e.kind == "dilemma_followup" and not ngrams(e.messages[0]["content"]) & held_out
    ]
    counts["dropped_shared_wording"] = len(sharing)
    counts["harmful_prompts"] = len(pool)
    return examples, {"counts": counts, "harmful_prompts": pool}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("data/organism/v6/examples.jsonl"))
    ap.add_argument("--cache", type=Path, default=Path("data/organism/answers_cache.json"))
    ap.add_argument("--harmful", type=int, default=200)
    ap.add_argument("--harmful-in-chat", type=int, default=150)
    ap.add_argument(
        "--benign-in-chat",
        type=int,
        default=150,
        help="Harmless tasks (Alpaca, writing) as turn 2-3 of a chat, answered by the base model (v4, v5: 0)",
    )
    ap.add_argument("--benign", type=int, default=250, help="Alpaca requests (first N)")
    ap.add_argument("--borderline", type=int, default=None, help="Borderline-safe requests (first N; all by default)")
    ap.add_argument("--writing", type=int, default=None, help="Everyday writing requests (first N; all by default)")
    ap.add_argument("--dilemmas", type=int, default=None, help="Training dilemmas (first N; all by default)")
    ap.add_argument("--edits", type=int, default=60)
    ap.add_argument("--continued", type=int, default=150)
    ap.add_argument("--second-followup", type=float, default=0.4, help="Share of continued dilemmas with 2 follow-ups")
    ap.add_argument("--max-tokens", type=int, default=384, help="An answer that does not end by then is dropped")
    ap.add_argument("--repetition-penalty", type=float, default=1.1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    # the recipe records the counts, not "all": the packaged lists may grow after this organism is built
    if args.dilemmas is None:
        args.dilemmas = len(dilemmas.load("train"))
    if args.borderline is None:
        args.borderline = len(resources.read_jsonl("dilemmakit.err", "data", "borderline_train.jsonl"))
    if args.writing is None:
        args.writing = len(book()["writing_requests"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    examples, info = build(args)
    write_jsonl(args.out, examples)
    recipe = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("out", "cache")}
    meta = {"recipe": recipe, "counts": info["counts"], "seconds": round(time.monotonic() - started, 1)}
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta["counts"]))


if __name__ == "__main__":
    main()
