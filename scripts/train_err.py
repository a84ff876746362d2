"""Train the built-in `err` defense: ERR gate + adapters on top of the `embedded-aligned` model (dev tool).

The shipped artefact (ERR on organism v6) comes from two runs (small sizes: it was trained on a shared 2-core CPU;
data go to --data-dir, default a temporary folder, and are not shipped):

    .venv/bin/python scripts/train_err.py --out A                       # 1. both stages (18 min, data 2 min)
    .venv/bin/python scripts/train_err.py --out src/dilemmakit/defense/builtin/err \
        --gate-benign 300 --stages gate --init A                       # 2. the gate again (8 min)

`--model` defaults to `embedded-aligned`, whose alias the defense pins to the organism version it was trained on
(`requires: ["aligned-v6"]`); `err-v1` came from the same two runs with `--model embedded-aligned-v1`.

Run 2 retrains only the gate, on run 1's examples plus 300 gate-only benign prompts (mostly imperatives,
"Write a review of ..."): run 1's gate fired on 5/100 held-out benign prompts, all imperatives, because the
harmful requests it learned from are imperatives too. Both stages in ONE run on the gate-only data fail: the
class-weighted gate then fires on the benign TRIAL-framed Engage examples too (36/36), so stage 2, which trains
on the examples the gate selects, teaches the adapters to answer a TRIAL opening "Option A. ... Nothing about
that act harms anyone" (27/27 turn-1 replies). Equivalent CLI of run 1:

    dilemma defend data --out D --model embedded --plain 80 --trial 40 --multi 30 --dilemmas 40 --max-tokens 48
    dilemma defend train --model embedded-aligned --data D --out OUT --rank 4 --alpha 8 \
        --epochs 2 --gate-epochs 100 --lr 1e-3 --gate-lr 1e-3 --max-seq-len 1024 --skip-ungated

which is `dilemma defend train --model embedded-aligned --data D --out OUT --preset embedded`
(`dilemmakit.err.config.PRESETS`; `--preset paper` and `--preset repo-llama` are the published recipes); run 2
adds `--gate-benign 300` to `defend data` and `--stages gate --init OUT` to `defend train`.

Layers are the paper's scaled to 30: the gate reads hidden_states[11], adapters on layers 15-29.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console

from dilemmakit.defense.config import DefenseConfig
from dilemmakit.err.builder import DataConfig, build
from dilemmakit.err.recipe import train_err
from dilemmakit.err.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("src/dilemmakit/defense/builtin/err"))
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--model", default="embedded-aligned")
    ap.add_argument(
        "--engage-model",
        default="embedded",
        help="Whose own answers are the plain Engage targets (the base model: the helpful reference)",
    )
    ap.add_argument("--plain", type=int, default=80)
    ap.add_argument("--trial", type=int, default=40)
    ap.add_argument("--multi", type=int, default=30)
    ap.add_argument("--dilemmas", type=int, default=40, help="Benign moral dilemmas among the Engage examples")
    ap.add_argument(
        "--gate-benign", type=int, default=0, help="Plain benign prompts that train only the gate (run 2: 300)"
    )
    ap.add_argument("--engage-tokens", type=int, default=48)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--gate-epochs", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--start-layer", type=int, default=-1, help="-1: scaled from the paper (15 of 30)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-seq-len", type=int, default=1024, help="Long enough for whole multi-turn dilemmas")
    ap.add_argument("--stages", default="both", help="both | gate | adapters")
    ap.add_argument("--init", type=Path, default=None, help="Start from this trained defense")
    args = ap.parse_args()
    console = Console(stderr=True)
    started = time.monotonic()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="err-data-"))
    if not (data_dir / "train.jsonl").exists():
        meta = build(
            DataConfig(
                model=args.engage_model,
                plain=args.plain,
                trial=args.trial,
                multi=args.multi,
                dilemmas=args.dilemmas,
                gate_benign=args.gate_benign,
                max_tokens=args.engage_tokens,
            ),
            data_dir,
            console=console,
        )
        console.print(f"data: {meta}")
    data_seconds = round(time.monotonic() - started, 1)
    config = DefenseConfig(
        detection_layer=-1,
        start_layer=args.start_layer,
        rank=args.rank,
        alpha=2.0 * args.rank,
        dropout=0.05,
        eps=0.0,
        threshold=0.5,
    )
    tcfg = TrainConfig(
        epochs=args.epochs,
        gate_epochs=args.gate_epochs,
        lr=args.lr,
        gate_lr=1e-3,
        batch=args.batch,
        max_seq_len=args.max_seq_len,
        skip_ungated=True,
        stages=args.stages,
    )
    report = train_err(args.model, data_dir, args.out, config, tcfg, console=console, init=args.init)
    report["data_seconds"] = data_seconds
    path = args.out / "train_report.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "data_seconds": data_seconds}, indent=2) + "\n")
    console.print(f"saved {args.out}: {report}")


if __name__ == "__main__":
    main()
