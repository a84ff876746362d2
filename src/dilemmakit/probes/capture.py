"""Residual-stream capture: every layer's hidden state at the last prompt token, streamed to disk.

Layout under `<out>/activations/`:
    manifest.json                  model, pooling, layer count, refusal token ids, per-set batch plan
    <set>/shard-00000.safetensors  last [L+1, B, d], mean [L+1, B, d] (only with pooling=mean),
                                   act [L+1, B, d] (only with pooling=act: the request's last token),
                                   lens [L+1, B] (logit-lens refusal mass), index [B] (prompt index)

h^(l) is layer l as `dilemmakit.layers` numbers them: HF `output_hidden_states[l]` (0 = embeddings).
Each shard is written to a temporary name and renamed, so a shard either exists whole or not at all;
a rerun skips the shards already there. Peak memory is one batch, whatever the dataset size. Under `accelerate launch` every process captures its
own share of the batches on its own GPU and writes its own shards.

The tokens every prompt of a set starts with (the chat header; a wrapper's opening paragraphs) run once
per set: their KV cache is copied to each batch, which runs only the rest of its prompts, and their
hidden states join the pooling (`mean` averages over every prompt token, prefix included).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dilemmakit.errors import UserError
from dilemmakit.layers import layer_count

if TYPE_CHECKING:
    from dilemmakit.loading import Loaded

MANIFEST_VERSION = 1
POOLINGS = ("last", "act", "mean")
MIN_SHARED_PREFIX = 16  # tokens; a shorter common start is not worth its own forward pass

# Words whose probability mass the logit lens reads (paper eq. 9 lists "Sorry", "cannot", "unable",
# "illegal", "apologize"). Only spellings that are one whole token count, so a word never contributes
# a generic word piece such as "Sor".
REFUSAL_WORDS = (
    "Sorry",
    "sorry",
    "cannot",
    "unable",
    "apologize",
    "apologise",
    "apologies",
    "illegal",
    "unethical",
    "Unfortunately",
    "unfortunately",
    "refuse",
    "decline",
)


def refusal_token_ids(tokenizer, words=REFUSAL_WORDS) -> list[int]:
    ids: set[int] = set()
    for word in words:
        for variant in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            piece = tokenizer(variant, add_special_tokens=False)["input_ids"]
            if len(piece) == 1:
                ids.add(int(piece[0]))
    return sorted(ids)


def encode_chat(tokenizer, messages: list[dict[str, str]], max_len: int) -> list[int]:
    """Token ids of a chat prompt ending in the assistant header; the most recent `max_len` tokens."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(ids[-max_len:])


def encode_chat_act(tokenizer, content: str, act_end: int, max_len: int) -> tuple[list[int], int]:
    """(token ids of a one-message chat prompt, position of the last token of the act).

    `act_end` is the character offset in `content` where the request's action ends (-1: the end of the
    message); the act's last token is the last one that starts before that offset.
    """
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise UserError("--pool act needs a fast tokenizer (one that maps tokens to characters)") from None
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    start = text.find(content)
    if start < 0:  # the template rewrote the message: fall back to the last prompt token
        pos = len(ids) - 1
    else:
        end = start + (act_end if act_end >= 0 else len(content))
        pos = max((i for i, (s, _) in enumerate(offsets) if s < end), default=len(ids) - 1)
    cut = max(0, len(ids) - max_len)
    return ids[cut:], max(0, pos - cut)


@dataclass
class LensHead:
    """Decodes a residual vector into next-token probabilities (final norm, then unembedding)."""

    norm: Any | None
    unembed: Any
    last_is_normed: bool  # HF ties hidden_states[-1] to the final-norm output for most decoders

    def refusal_mass(self, hidden, layer: int, n_layers: int, token_ids):
        import torch

        x = hidden
        if self.norm is not None and not (self.last_is_normed and layer == n_layers - 1):
            x = self.norm(x)
        probs = torch.softmax(self.unembed(x).float(), dim=-1)
        return probs[:, token_ids].sum(-1)


@dataclass
class SharedPrefix:
    """Tokens that start every prompt of a set, run once: their KV cache and hidden states [L+1, P, d]."""

    ids: tuple[int, ...]
    cache: Any  # the model's KV cache after the prefix
    states: Any  # torch tensor, every layer's hidden state at every prefix token

    def expand(self, batch_size: int):
        """A fresh copy of the cache for a batch (the forward pass appends to it)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch_size)
        return cache


class ResidualReader:
    """Hidden states of every layer for batches of token id lists.

    The weights load on first use: a rerun whose shards are all on disk needs only the tokenizer and
    config, so re-analysing never reloads a large model.
    """

    def __init__(self, tokenizer, config, load: Callable[[], Loaded]):
        from dilemmakit.engine.decoder import context_length

        self.tokenizer = tokenizer
        self.config = config
        self._load = load
        self._model: Any = None  # transformers weights, loaded on first use
        self._defense: Any = None  # the defense `load` installed on them (a `Defense`), if any
        self.max_len = context_length(config)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.n_layers = layer_count(int(config.num_hidden_layers))
        self.hidden_size = int(config.hidden_size)
        self._prefix: SharedPrefix | None = None  # the last shared prefix run

    @property
    def model(self):
        if self._model is None:
            import torch

            loaded = self._load()
            self._model, self._defense = loaded.model, loaded.defense
            self.base = self._model.base_model
            self.device = next(self._model.parameters()).device
            norm = next(
                (
                    getattr(self.base, a)
                    for a in ("norm", "ln_f", "final_layernorm", "final_layer_norm")
                    if isinstance(getattr(self.base, a, None), torch.nn.Module)
                ),
                None,
            )
            self.lens = LensHead(norm, self._model.get_output_embeddings(), self._last_is_normed())
        return self._model

    def _last_is_normed(self) -> bool:
        import torch

        ids = encode_chat(self.tokenizer, [{"role": "user", "content": "Hello."}], self.max_len)
        with torch.inference_mode():
            out = self._model(
                input_ids=torch.tensor([ids], device=self.device), output_hidden_states=True, use_cache=False
            )
            direct = self._model.get_output_embeddings()(out.hidden_states[-1][:, -1]).float()
        return bool(torch.allclose(direct, out.logits[:, -1].float(), atol=1e-2, rtol=1e-3))

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        return encode_chat(self.tokenizer, messages, self.max_len)

    def prefix(self, ids: Sequence[int]) -> SharedPrefix | None:
        """`ids` run once (memoised), or None where this model cannot reuse a prefix's cache."""
        import torch

        self.model  # noqa: B018  (loads the weights on first use)
        from dilemmakit.engine.decoder import returned_cache

        defense = self._defense
        if not ids or (defense is not None and defense.gate is not None):
            # a harm gate reads the whole prompt's last token before its adapters touch the prefix
            return None
        key = tuple(ids)
        if self._prefix is None or self._prefix.ids != key:
            with torch.inference_mode():
                out = self.base(
                    input_ids=torch.tensor([key], device=self.device), output_hidden_states=True, use_cache=True
                )
            cache = returned_cache(out)
            if cache is None:
                return None
            self._prefix = SharedPrefix(key, cache, torch.stack(out.hidden_states)[:, 0])
        return self._prefix

    def hidden(
        self,
        batch_ids: list[list[int]],
        *,
        mean: bool = False,
        lens_ids=None,
        act_pos: list[int] | None = None,
        shared_prefix: Sequence[int] = (),
    ) -> dict[str, np.ndarray]:
        """{'last': [L+1, B, d], 'mean'?: [L+1, B, d], 'act'?: [L+1, B, d], 'lens'?: [L+1, B]} as float32 arrays.

        `shared_prefix`: tokens every prompt of the batch starts with (and goes on after); they run once
        and only the rest of each prompt runs on their cache, with the same results.
        """
        import torch

        self.model  # noqa: B018  (loads the weights on first use)
        prefix = self.prefix(shared_prefix)
        skip = len(prefix.ids) if prefix is not None else 0
        if prefix is not None and any(tuple(s[:skip]) != prefix.ids or len(s) <= skip for s in batch_ids):
            raise ValueError("every prompt of the batch must start with the shared prefix and go on after it")
        rests = [s[skip:] for s in batch_ids]
        lengths = torch.tensor([len(s) for s in rests])
        width = int(lengths.max())
        # Right padding: with causal attention the real tokens never see the pads, and positions stay 0..n-1.
        input_ids = torch.tensor([s + [self.pad_id] * (width - len(s)) for s in rests], device=self.device)
        mask = (torch.arange(width)[None, :] < lengths[:, None]).to(self.device)
        rows = torch.arange(len(batch_ids), device=self.device)
        last_pos = (lengths - 1).to(self.device)
        from dilemmakit.engine.decoder import cache_argument

        defense = self._defense
        # a harm gate reads each row's last prompt token, not the right padding after it
        gate_at = defense.pooled_at(last_pos) if defense is not None else contextlib.nullcontext()
        with torch.inference_mode(), gate_at:
            past = prefix.expand(len(batch_ids)) if prefix is not None else None
            full_mask = torch.cat([mask.new_ones(len(batch_ids), skip), mask], dim=1)
            out = self.base(
                input_ids=input_ids,
                attention_mask=full_mask.long(),
                **{cache_argument(self.base): past},
                output_hidden_states=True,
                use_cache=past is not None,
            )
            states = out.hidden_states  # the tokens after the prefix only
            result = {"last": torch.stack([h[rows, last_pos] for h in states]).float()}
            if act_pos is not None:
                at = torch.tensor(act_pos, device=self.device)
                picked = [h[rows, (at - skip).clamp(min=0)] for h in states]
                if prefix is not None:  # an act inside the prefix reads the prefix's states
                    inside = (at < skip)[:, None]
                    picked = [
                        torch.where(inside, prefix.states[layer, at.clamp(max=skip - 1)], h)
                        for layer, h in enumerate(picked)
                    ]
                result["act"] = torch.stack(picked).float()
            if mean:
                m = mask[:, :, None].to(states[0].dtype)
                sums = torch.stack([(h * m).sum(1) for h in states])
                if prefix is not None:
                    sums = sums + prefix.states.sum(1)[:, None]
                result["mean"] = (sums / (m.sum(1) + skip)).float()
            if lens_ids is not None:
                ids = torch.tensor(lens_ids, device=self.device)
                result["lens"] = torch.stack(
                    [
                        self.lens.refusal_mass(h[rows, last_pos], layer, len(states), ids)
                        for layer, h in enumerate(states)
                    ]
                ).float()
        return {k: v.cpu().numpy() for k, v in result.items()}


def shared_prefix_length(prompts: list[list[int]], minimum: int = MIN_SHARED_PREFIX) -> int:
    """Tokens every prompt starts with, leaving each at least one of its own; 0 below `minimum` (not worth a cache)."""
    if len(prompts) < 2:
        return 0
    first = prompts[0]
    n = min(len(s) for s in prompts) - 1
    for other in prompts[1:]:
        n = next((i for i, (a, b) in enumerate(zip(first[:n], other[:n], strict=True)) if a != b), n)
    return n if n >= minimum else 0


@dataclass(frozen=True)
class CapturePlan:
    sets: dict[str, list[list[int]]]  # set name -> batches of prompt indices (sorted by length)


class ActivationStore:
    """The shard folder of one probe run: manifest, shard paths, and layer-at-a-time reads."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.json"

    def shard_path(self, name: str, batch: int) -> Path:
        return self.root / name / f"shard-{batch:05d}.safetensors"

    def manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError:
            return None

    def prepare(self, manifest: dict, *, fresh: bool) -> None:
        """Start or resume: a manifest from another configuration is an error unless `fresh`."""
        old = self.manifest()
        if fresh and self.root.exists():
            shutil.rmtree(self.root)
        elif old is not None and old.get("key") != manifest["key"]:
            raise UserError(
                f"{self.root} holds activations of another model, defense weights, prompt set or pooling; "
                "pass --fresh to replace them or choose another --out"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        for name in manifest["sets"]:
            (self.root / name).mkdir(exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, self.manifest_path)

    def write_shard(self, name: str, batch: int, tensors: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save_file

        path = self.shard_path(name, batch)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)

    def missing(self, plan: CapturePlan) -> list[tuple[str, int]]:
        return [
            (name, b)
            for name, batches in plan.sets.items()
            for b in range(len(batches))
            if not self.shard_path(name, b).exists()
        ]

    def read(self, name: str, key: str = "last", layer: int | None = None) -> np.ndarray:
        """One set's `key` tensor in prompt order: [n, d] at `layer` (or [n, L+1] for 'lens'); all layers if None."""
        from safetensors import safe_open

        manifest = self.manifest() or {}
        batches = manifest.get("sets", {}).get(name, {}).get("batches")
        if batches is None:
            raise UserError(f"no activations for set {name!r} in {self.root}; run the capture first")
        parts, order = [], []
        for b, indices in enumerate(batches):
            path = self.shard_path(name, b)
            if not path.exists():
                raise UserError(f"activation shard {path} is missing; rerun the same command to finish the capture")
            with safe_open(str(path), framework="numpy") as f:
                if key not in f.keys():  # noqa: SIM118  (safe_open has keys() but no __contains__)
                    raise UserError(f"{path} holds no {key!r} activations; rerun with --fresh")
                sl = f.get_slice(key)
                arr = sl[layer] if layer is not None else sl[:]
            # stored layer-major: [L+1, B, ...] -> [B, ...]
            parts.append(arr if layer is not None else np.moveaxis(arr, 0, 1))
            order.extend(indices)
        data = np.concatenate(parts, axis=0)
        out = np.empty_like(data)
        out[np.asarray(order)] = data
        return out


def plan_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def capture(
    reader: ResidualReader,
    prompts: dict[str, list[str]],
    store: ActivationStore,
    *,
    key: dict[str, Any],
    act_ends: dict[str, list[int]] | None = None,
    batch_size: int = 8,
    pooling: str = "last",
    fresh: bool = False,
    share_prefix: bool = True,
    state=None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Capture every set (resuming), return the manifest. `progress(done, total)` counts prompts.

    With pooling="act", `act_ends[name][i]` is where the request's action ends in prompt i (-1: its end).
    With `share_prefix` the tokens all prompts of a set start with (chat header, the wrapper's opening
    paragraphs) run once per set, and each prompt only runs the rest on their cache.
    """
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}: use {'|'.join(POOLINGS)}")
    lens_ids = refusal_token_ids(reader.tokenizer)
    act_at: dict[str, list[int]] = {}
    if pooling == "act":
        encoded = {}
        for name, texts in prompts.items():
            ends = (act_ends or {}).get(name) or [-1] * len(texts)
            pairs = [encode_chat_act(reader.tokenizer, t, e, reader.max_len) for t, e in zip(texts, ends, strict=True)]
            encoded[name] = [ids for ids, _ in pairs]
            act_at[name] = [pos for _, pos in pairs]
    else:
        encoded = {
            name: [reader.encode([{"role": "user", "content": text}]) for text in texts]
            for name, texts in prompts.items()
        }
    plan = CapturePlan({name: plan_batches([len(s) for s in ids], batch_size) for name, ids in encoded.items()})
    prefix_len = {name: shared_prefix_length(ids) if share_prefix else 0 for name, ids in encoded.items()}
    manifest = {
        "version": MANIFEST_VERSION,
        "key": {**key, "pooling": pooling, "batch_size": batch_size, "lens_token_ids": lens_ids},
        "n_layers": reader.n_layers,
        "hidden_size": reader.hidden_size,
        "pooling": pooling,
        "lens_token_ids": lens_ids,
        "lens_tokens": [reader.tokenizer.decode([i]) for i in lens_ids],
        "sets": {
            name: {"n": len(ids), "batches": plan.sets[name], "shared_prefix_tokens": prefix_len[name]}
            for name, ids in encoded.items()
        },
    }
    main = state is None or state.is_main_process
    if main:
        store.prepare(manifest, fresh=fresh)
    if state is not None:
        state.wait_for_everyone()
    todo = store.missing(plan)
    total = sum(len(plan.sets[n][b]) for n, b in todo)
    done = 0
    if progress:
        progress(0, total)
    mine = todo
    if state is not None and state.num_processes > 1:
        with state.split_between_processes(todo) as share:
            mine = list(share)
    for name, b in mine:
        indices = plan.sets[name][b]
        tensors = reader.hidden(
            [encoded[name][i] for i in indices],
            mean=pooling == "mean",
            lens_ids=lens_ids,
            act_pos=[act_at[name][i] for i in indices] if pooling == "act" else None,
            shared_prefix=encoded[name][0][: prefix_len[name]],
        )
        tensors["index"] = np.asarray(indices, dtype=np.int64)
        store.write_shard(name, b, tensors)
        done += len(indices)
        if progress:
            progress(done, total)
    if state is not None:
        state.wait_for_everyone()
    return manifest
