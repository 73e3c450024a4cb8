"""The plugin's two inputs, checked: the engine's ``additional_config["steerkit"]`` and a request's flat
keys (``SamplingParams.extra_args`` offline, ``vllm_xargs`` over HTTP). Imports neither torch nor vLLM,
so the front end validates a request with nothing but these functions.

A request names one resident set, a strength (a float for every attribute, a list with one per
attribute, or ``{attribute: float}`` with the others 0, over HTTP written ``"sentiment=4,food=2"``) and a
token policy. ``cache_key()`` goes into
the prefix-cache block hash, so KV blocks computed under one steering never serve a request with
another or none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..strengths import parse_cli, strength_values

CONFIG_KEY = "steerkit"          # additional_config={"steerkit": {...}}
VECTORS, STRENGTH, TOKENS = "steerkit_vectors", "steerkit_strength", "steerkit_tokens"
REQUEST_KEYS = (VECTORS, STRENGTH, TOKENS)
POLICIES = ("all", "prompt", "generated")
MAX_SETS = 8        # steering sets resident in one engine
MAX_COLUMNS = 64    # their attributes together: one launch per layer steers [tokens, <= 64] strengths


@dataclass(frozen=True)
class PluginConfig:
    """``{"vectors": {NAME: path.safetensors}}``: the steering sets an engine loads at start."""

    vectors: dict

    @classmethod
    def from_additional(cls, additional) -> "PluginConfig | None":
        """None when the engine was started without steerkit's key (the plugin then installs nothing)."""
        if not isinstance(additional, dict) or CONFIG_KEY not in additional:
            return None
        cfg = additional[CONFIG_KEY]
        where = f'additional_config["{CONFIG_KEY}"]'
        if not isinstance(cfg, dict):
            raise ValueError(f'{where}: expected {{"vectors": {{NAME: "path.safetensors"}}}}, got {cfg!r}')
        unknown = sorted(set(cfg) - {"vectors"})
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected 'vectors'")
        vectors = cfg.get("vectors")
        if not isinstance(vectors, dict) or not vectors:
            raise ValueError(f'{where}["vectors"]: expected a non-empty {{NAME: "path.safetensors"}}, got {vectors!r}')
        for name, path in vectors.items():
            if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
                raise ValueError(f'{where}["vectors"]: each entry is NAME: "path.safetensors", got {name!r}: {path!r}')
        if len(vectors) > MAX_SETS:
            raise ValueError(f'{where}["vectors"]: {len(vectors)} sets, but at most {MAX_SETS} are resident at once')
        return cls(dict(vectors))


@dataclass(frozen=True)
class RequestSteering:
    """One request's steering: the set's name, K strengths and the token policy."""

    name: str
    strength: tuple
    tokens: object  # "all" | "prompt" | "generated" | int start position

    def steered_positions(self, prompt_len: int) -> tuple:
        """The absolute positions steered, as a range [first, end) (positions from 0; the prompt is
        positions < prompt_len, as in steerkit's Hugging Face patch). Every policy is one range."""
        if self.tokens == "all":
            return 0, math.inf
        if self.tokens == "prompt":
            return 0, prompt_len
        if self.tokens == "generated":
            return prompt_len, math.inf
        return self.tokens, math.inf

    def steers(self, position: int, prompt_len: int) -> bool:
        """Whether the token at absolute ``position`` is steered."""
        first, end = self.steered_positions(prompt_len)
        return first <= position < end


def has_steering(extra_args) -> bool:
    return isinstance(extra_args, dict) and any(k in extra_args for k in REQUEST_KEYS)


def parse_request(extra_args, set_attributes: dict) -> RequestSteering | None:
    """The request's steering, or None when it names none. ``set_attributes``: {name: attribute names}
    of the resident sets. Raises ValueError with one line naming the key at fault."""
    if not has_steering(extra_args):
        return None
    if not set_attributes:
        raise ValueError(f"{VECTORS}: this engine was started without steering sets; start it with "
                         f'additional_config={{"{CONFIG_KEY}": {{"vectors": {{NAME: "path.safetensors"}}}}}}')
    name = extra_args.get(VECTORS)
    if name is None:
        raise ValueError(f"{VECTORS} is required with {STRENGTH}/{TOKENS}: one of {sorted(set_attributes)}")
    if not isinstance(name, str) or name not in set_attributes:
        raise ValueError(f"{VECTORS}: unknown steering set {name!r}; this engine has {sorted(set_attributes)}")
    attributes = set_attributes[name]
    values = strength_values(_named(extra_args.get(STRENGTH, 1.0)), attributes, STRENGTH)
    strength = tuple([values] * len(attributes) if isinstance(values, float) else values)
    tokens = extra_args.get(TOKENS, "all")
    if not (tokens in POLICIES or (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0)):
        raise ValueError(f"{TOKENS}: expected one of {', '.join(POLICIES)} or a start position (int >= 0), "
                         f"got {tokens!r}")
    return RequestSteering(name, strength, tokens)


def _named(value):
    """Over HTTP, ``vllm_xargs`` carries no dict: the string ``"sentiment=4,food=2"`` stands for one."""
    if not isinstance(value, str):
        return value
    pairs = value.replace(",", " ").split()
    if not pairs or not all("=" in p for p in pairs):
        raise ValueError(f'{STRENGTH}: a string must be NAME=number pairs ("sentiment=4,food=2"), got {value!r}')
    return parse_cli(pairs, STRENGTH)


def cache_key(extra_args: dict) -> str:
    """The steering of an admitted request as a string, read without the set's attribute names (the
    scheduler does not open the files). Equal strings mean equal steering; two spellings of one steering
    (a float and the list it stands for, a dict and its list) may differ, which costs a cache miss only."""
    s = _named(extra_args.get(STRENGTH, 1.0))
    if isinstance(s, dict):
        strength = ",".join(f"{n}={float(v)!r}" for n, v in sorted(s.items()))
    elif isinstance(s, (list, tuple)):
        strength = "[" + ",".join(repr(float(v)) for v in s) + "]"
    else:
        strength = repr(float(s))
    return f"{extra_args.get(VECTORS)}|{strength}|{extra_args.get(TOKENS, 'all')}"
