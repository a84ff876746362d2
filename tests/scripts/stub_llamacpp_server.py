"""A stand-in for `python -m llama_cpp.server` in lifecycle tests: takes its flags, serves the scripted
OpenAI-compatible server on --port (every model echoes the last user message), and can misbehave.

    --fail      print an error and exit 1 before listening
    --hang      never listen
    --child F   start a grandchild (`sleep`) and write its pid to F (is the whole group stopped?)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

from dilemmakit.testing import ScriptedServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--fail", action="store_true")
parser.add_argument("--hang", action="store_true")
parser.add_argument("--child")
args, _ = parser.parse_known_args()
if args.fail:
    print("loading model ...", file=sys.stderr)
    print("error: failed to load model from file: not a GGUF", file=sys.stderr, flush=True)
    sys.exit(1)
if args.hang:
    time.sleep(3600)
if args.child:
    grandchild = subprocess.Popen(["sleep", "3600"])
    Path(args.child).write_text(str(grandchild.pid))
with ScriptedServer(port=args.port) as server:
    server.script("stub", lambda messages: f"echo: {messages[-1]['content']}")
    print("stub serving", server.base_url, flush=True)
    threading.Event().wait()
