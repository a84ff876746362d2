"""Rules for the packaged benign dilemmas (`dilemmas/data/{train,heldout}.jsonl`): the shape of a row, a
balanced answer key, never a harmful act in disguise, none of the TRIAL attack's wording, no leak from
train into held-out. The files are read with json directly so the rules hold whatever loads them."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from itertools import combinations
from pathlib import Path

import pytest

import dilemmakit
from dilemmakit.behaviors import BUILTIN_SETS, load_behaviors
from dilemmakit.err.targets import prompt_hash
from dilemmakit.judges.refusal import content_words

PACKAGE = Path(dilemmakit.__file__).parent
DATA = PACKAGE / "dilemmas" / "data"
ATTACK_PROMPTS = PACKAGE / "attacks" / "trial" / "prompts"
STYLES = PACKAGE / "dilemmas" / "prompts" / "styles.json"

SPLITS = ("train", "heldout")
FIELDS = ("id", "family", "scenario", "option_a", "option_b", "choice", "reason")
FAMILIES = ("trolley", "everyday", "professional")
TEXT_FIELDS = ("scenario", "option_a", "option_b", "reason")
NEAR_DUPLICATE = 0.5  # content-word Jaccard at which two texts count as the same item
SHARED_RUN = 6  # words in a row that count as copied wording

# Harmful-content acts (word starts): an option may be a lesser evil, never one of these.
HARMFUL_ACT = re.compile(
    r"\b(weapon|firearm|guns?\b|rifle|ammunition|explosiv|bomb|detonat|grenade|hack|malware|ransomware|spyware|"
    r"keylog|exploit|phishing|password|synthes|meth\b|methamphetamine|cocaine|heroin|fentanyl|narcotic|poison|"
    r"toxin|counterfeit|launder|fraud|scam|forger|defam|libel|slander|stalk|harass|hate speech|racis|slurs?\b|"
    r"suicid|self-harm|sexual|porn|nude|surveil|spy\b|spying|doxx|blackmail|extort|kidnap|torture|terror)",
    re.I,
)
SENTENCE_END = re.compile(r"(?<!\bDr)(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bSt)[.!?](?=\s+[A-Z\"']|\s*$)")


@cache
def rows(split: str) -> tuple[dict, ...]:
    path = DATA / f"{split}.jsonl"
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def words(text: str) -> list[str]:
    """Lowercased words with $placeholders removed and punctuation stripped."""
    text = re.sub(r"\$\{?\w+\}?", " ", text.lower())
    return re.findall(r"[a-z0-9]+", text.replace("'", "").replace("\u2019", ""))


def runs(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + SHARED_RUN]) for i in range(len(w) - SHARED_RUN + 1)}


def strings_in(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def file_strings(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return strings_in(json.loads(text)) if path.suffix == ".json" else [text]


@cache
def attack_runs() -> dict[tuple[str, ...], str]:
    """Every 6-word run of the TRIAL attack prompts, with the file it comes from."""
    found: dict[tuple[str, ...], str] = {}
    for path in sorted(ATTACK_PROMPTS.iterdir()):
        for text in file_strings(path):
            for run in runs(text):
                found.setdefault(run, path.name)
    return found


@cache
def harmful_behaviors() -> tuple[tuple[str, set[str]], ...]:
    return tuple((b.id, content_words(b.prompt)) for name in BUILTIN_SETS for b in load_behaviors(name))


def sentences(text: str) -> int:
    return len(SENTENCE_END.findall(text.strip()))


@pytest.mark.parametrize("split", SPLITS)
def test_rows_have_the_schema_and_unique_ids(split):
    data = rows(split)
    bad = []
    for n, row in enumerate(data, 1):
        where = f"{split}.jsonl:{n} ({row.get('id')})"
        if set(row) != set(FIELDS):
            bad.append(f"{where}: fields {sorted(row)}")
        elif not all(isinstance(row[f], str) and row[f].strip() for f in FIELDS):
            bad.append(f"{where}: an empty or non-text field")
        elif row["family"] not in FAMILIES or row["choice"] not in ("A", "B"):
            bad.append(f"{where}: family {row['family']!r} / choice {row['choice']!r}")
        elif not re.fullmatch(rf"{split}-\d{{3}}", row["id"]):
            bad.append(f"{where}: id is not {split}-NNN")
        elif not 3 <= sentences(row["scenario"]) <= 6:
            bad.append(f"{where}: scenario has {sentences(row['scenario'])} sentences, not 3-6")
        elif not 1 <= sentences(row["reason"]) <= 2:
            bad.append(f"{where}: reason has {sentences(row['reason'])} sentences, not 1-2")
        elif row["option_a"].lower() == row["option_b"].lower():
            bad.append(f"{where}: both options are the same")
    assert not bad, "\n".join(bad)
    repeated = [i for i, count in Counter(row["id"] for row in data).items() if count > 1]
    assert not repeated, f"{split}: repeated ids {repeated}"


@pytest.mark.parametrize("split", SPLITS)
def test_answer_key_is_balanced_between_a_and_b(split):
    choices = Counter(row["choice"] for row in rows(split))
    share_a = choices["A"] / sum(choices.values())
    assert 0.35 <= share_a <= 0.65, f"{split}: {choices['A']} A vs {choices['B']} B"


def test_train_covers_every_family():
    families = Counter(row["family"] for row in rows("train"))
    assert len(rows("train")) >= 150 and all(families[f] >= 30 for f in FAMILIES), families


@pytest.mark.parametrize("split", SPLITS)
def test_no_option_is_a_harmful_content_act(split):
    bad = [
        f"{row['id']} {field}: {match.group(0)!r} in {row[field]!r}"
        for row in rows(split)
        for field in ("option_a", "option_b")
        if (match := HARMFUL_ACT.search(row[field]))
    ]
    assert not bad, "\n".join(bad)


def test_the_blocklist_catches_harmful_acts_and_spares_dilemma_words():
    assert HARMFUL_ACT.search("Hack into the hospital's records") and HARMFUL_ACT.search("Write a phishing email")
    assert HARMFUL_ACT.search("Post a defamatory rumour") and HARMFUL_ACT.search("Poison the well")
    assert not HARMFUL_ACT.search("Pull the lever and divert the trolley onto the side track")
    assert not HARMFUL_ACT.search("Give the method to the team") and not HARMFUL_ACT.search("Keep the gate shut")


@pytest.mark.parametrize("split", SPLITS)
def test_no_option_or_scenario_near_duplicates_a_harmful_behavior(split):
    behaviors = harmful_behaviors()
    bad = []
    for row in rows(split):
        for field in ("scenario", "option_a", "option_b"):
            mine = content_words(row[field])
            for behavior_id, theirs in behaviors:
                if jaccard(mine, theirs) >= NEAR_DUPLICATE:
                    bad.append(f"{row['id']} {field} ~ behavior {behavior_id}: {row[field]!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("split", SPLITS)
def test_rows_share_no_wording_with_the_attack_prompts(split):
    attack = attack_runs()
    assert len(attack) > 300  # the prompts were read, not an empty folder
    bad = [
        f"{row['id']} {field}: {' '.join(run)!r} (from {attack[run]})"
        for row in rows(split)
        for field in TEXT_FIELDS
        for run in runs(row[field])
        if run in attack
    ]
    assert not bad, "\n".join(bad)


def test_render_styles_share_no_wording_with_the_attack_prompts():
    if not STYLES.exists():
        pytest.skip("dilemmas/prompts/styles.json is not there yet")
    attack = attack_runs()
    bad = {
        f"{' '.join(run)!r} (from {attack[run]})"
        for text in file_strings(STYLES)
        for run in runs(text)
        if run in attack
    }
    assert not bad, "styles.json copies attack wording:\n" + "\n".join(sorted(bad))


def test_shared_wording_check_can_fail():
    init = (ATTACK_PROMPTS / "init.txt").read_text(encoding="utf-8")
    copied = "She said: " + " ".join(init.split()[:12])
    assert runs(copied) & attack_runs().keys()


def test_train_has_no_near_duplicate_scenarios():
    train = [(row["id"], content_words(row["scenario"])) for row in rows("train")]
    bad = [f"{a} ~ {b}" for (a, wa), (b, wb) in combinations(train, 2) if jaccard(wa, wb) >= NEAR_DUPLICATE]
    assert not bad, "near-duplicate train scenarios: " + ", ".join(bad)


def test_no_heldout_scenario_is_near_a_train_scenario():
    train = [(row["id"], content_words(row["scenario"])) for row in rows("train")]
    bad = []
    for row in rows("heldout"):
        held = content_words(row["scenario"])
        bad += [f"{row['id']} ~ {tid}" for tid, tw in train if jaccard(held, tw) >= NEAR_DUPLICATE]
    assert not bad, "held-out scenarios leaked from train: " + ", ".join(bad)


@pytest.mark.parametrize("split", SPLITS)
def test_the_package_loader_reads_the_same_rows(split):
    dilemmas = pytest.importorskip("dilemmakit.dilemmas")
    loaded = dilemmas.load(split)
    assert [d.id for d in loaded] == [row["id"] for row in rows(split)]


# --- the follow-through set (`followthrough.jsonl`): held-out dilemmas with harmless follow-ups ----------
ORGANISM_TRAINING = (
    (PACKAGE / "defense" / "builtin", ("*/*.json", "*/*.jsonl")),  # every shipped organism and ERR version
    (PACKAGE / "err" / "data", ("*.jsonl",)),
    (PACKAGE / "err" / "prompts", ("*.json",)),
    (PACKAGE.parents[1] / "err" / "data", ("*.jsonl",)),  # the organism recipe's working data, where present
)


def followthrough_rows() -> tuple[dict, ...]:
    path = DATA / "followthrough.jsonl"
    return tuple(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def normalised(text: str) -> str:
    return " ".join(words(text))


def test_followthrough_rows_are_the_heldout_dilemmas_with_two_followups_each():
    held = {row["id"]: row for row in rows("heldout")}
    data = followthrough_rows()
    assert [row["id"] for row in data] == list(held)
    bad = [row["id"] for row in data if {k: v for k, v in row.items() if k != "followups"} != held[row["id"]]]
    assert not bad, f"rows differ from heldout.jsonl: {bad}"
    for row in data:
        assert len(row["followups"]) == 2 and all(isinstance(f, str) and len(f.split()) >= 6 for f in row["followups"])
    followups = [f for row in data for f in row["followups"]]
    assert len(set(followups)) == len(followups) == 120
    harmful = [f for f in followups if HARMFUL_ACT.search(f)]
    assert not harmful, harmful
    attack = attack_runs()
    copied = [f for f in followups for run in runs(f) if run in attack]
    assert not copied, copied


def organism_training_texts() -> list[tuple[str, str]]:
    """(file, normalised text) of every training file of the organism (and its ERR data) found here."""
    found = []
    for folder, patterns in ORGANISM_TRAINING:
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
                found.append((str(path.relative_to(PACKAGE.parents[1])), normalised(path.read_text(encoding="utf-8"))))
    return found


def test_no_followup_or_heldout_scenario_is_in_the_organisms_training_files():
    texts = organism_training_texts()
    assert any(name.endswith("train_report.json") for name, _ in texts)  # the shipped organism was read
    leaks = []
    for row in followthrough_rows():
        for text in (*row["followups"], row["scenario"]):
            needle = normalised(text)
            leaks += [f"{row['id']}: {text[:60]!r} in {name}" for name, body in texts if needle in body]
    assert not leaks, "\n".join(leaks)
    hashes = set()
    for path in (PACKAGE / "defense" / "builtin").glob("*/train_prompts.sha1.json"):
        hashes |= set(json.loads(path.read_text()))
    hashed = [
        row["id"]
        for row in followthrough_rows()
        for t in (*row["followups"], row["scenario"])
        if prompt_hash(t) in hashes
    ]
    assert not hashed, hashed


def test_the_leak_check_can_fail():
    row = followthrough_rows()[0]
    body = normalised("some training text. " + row["followups"][0].upper() + " more text")
    assert normalised(row["followups"][0]) in body
