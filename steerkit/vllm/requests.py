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
import os
from dataclasses import dataclass

from ..strengths import parse_cli, strength_values
from .registry import COPY_SEPARATOR

CONFIG_KEY = "steerkit"          # additional_config={"steerkit": {...}}
VECTORS, STRENGTH, TOKENS = "steerkit_vectors", "steerkit_strength", "steerkit_tokens"
# a set named by its file under the server's room["load_from"]: the endpoint plugin loads it (once) and
# writes its name into the request before vLLM sees it (runtime.SteeringSetsEndpoints)
PATH = "steerkit_path"
PATH_PREFIX = "path:"  # the name a set loaded by path is served under (load_set refuses names with it)
REQUEST_KEYS = (VECTORS, STRENGTH, TOKENS, PATH)
# stamped into a request at admission, never written by a client: the copy of its set it is steered by
# (registry.Catalog), so a request keeps its set when the name is loaded again or unloaded
COPY = "steerkit_copy"
POLICIES = ("all", "prompt", "generated")
MAX_SETS = 64       # steering sets resident in one engine
MAX_COLUMNS = 256   # their attributes together: one launch per (site, layer) steers [tokens, <= 256] strengths


@dataclass(frozen=True)
class Room:
    """``"room"``: what an engine that loads sets while it serves keeps free for them. Its bank is built
    at start with ``columns`` strength columns at every place in ``places`` (a compiled or captured graph
    cannot grow later), gated, one launch per norm-preserve flag in ``norm_preserve``; at most ``sets``
    sets are resident at once."""

    sets: int = MAX_SETS
    columns: int = 4 * 16
    places: tuple = ()  # ((site, layer), ...); default: the places of the sets the engine starts with
    norm_preserve: tuple = (False,)
    load_from: str | None = None  # a folder: requests may name a set by its file there (PATH); None: they may not

    @classmethod
    def from_config(cls, cfg, where: str) -> "Room":
        from ..sites import SITES

        if not isinstance(cfg, dict):
            raise ValueError(f'{where}: expected {{"sets": N, "columns": N, "places": ["block_out:12", ...]}}, '
                             f"got {cfg!r}")
        unknown = sorted(set(cfg) - {"sets", "columns", "places", "norm_preserve", "load_from"})
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected sets, columns, places, norm_preserve, "
                             "load_from")
        d = cls()
        sets, columns = cfg.get("sets", d.sets), cfg.get("columns", d.columns)
        for name, v, cap in (("sets", sets, MAX_SETS), ("columns", columns, MAX_COLUMNS)):
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= cap:
                raise ValueError(f'{where}["{name}"]: expected an int in [1, {cap}], got {v!r}')
        places = []
        for p in cfg.get("places", []):
            site, _, layer = p.partition(":") if isinstance(p, str) else ("", "", "")
            if site not in SITES or not layer.isdigit():
                raise ValueError(f'{where}["places"]: each place is "SITE:LAYER" with SITE one of '
                                 f"{', '.join(SITES)} (e.g. \"block_out:12\"), got {p!r}")
            places.append((site, int(layer)))
        flags = cfg.get("norm_preserve", list(d.norm_preserve))
        if not (isinstance(flags, list) and flags and all(isinstance(f, bool) for f in flags)):
            raise ValueError(f'{where}["norm_preserve"]: expected a non-empty list of true/false, got {flags!r}')
        load_from = cfg.get("load_from")
        if load_from is not None and not (isinstance(load_from, str) and os.path.isdir(load_from)):
            raise ValueError(f'{where}["load_from"]: expected a folder of steering-set files, got {load_from!r}')
        return cls(sets, columns, tuple(dict.fromkeys(places)), tuple(dict.fromkeys(flags)),
                   None if load_from is None else os.path.realpath(load_from))


@dataclass(frozen=True)
class PluginConfig:
    """``{"vectors": {NAME: path.safetensors}, "room": {...}}``: the steering sets an engine loads at start,
    and (``room``, optional) what it keeps free for sets loaded while it serves."""

    vectors: dict
    room: Room | None = None

    @classmethod
    def from_additional(cls, additional) -> "PluginConfig | None":
        """None when the engine was started without steerkit's key (the plugin then installs nothing)."""
        if not isinstance(additional, dict) or CONFIG_KEY not in additional:
            return None
        cfg = additional[CONFIG_KEY]
        where = f'additional_config["{CONFIG_KEY}"]'
        if not isinstance(cfg, dict):
            raise ValueError(f'{where}: expected {{"vectors": {{NAME: "path.safetensors"}}}}, got {cfg!r}')
        unknown = sorted(set(cfg) - {"vectors", "room"})
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; expected 'vectors' and 'room'")
        room = Room.from_config(cfg["room"], f'{where}["room"]') if "room" in cfg else None
        vectors = cfg.get("vectors", {})
        if not isinstance(vectors, dict) or not (vectors or room):
            raise ValueError(f'{where}["vectors"]: expected a non-empty {{NAME: "path.safetensors"}} (or "room" '
                             f"for sets loaded while serving), got {vectors!r}")
        for name, path in vectors.items():
            if not isinstance(name, str) or not name or COPY_SEPARATOR in name or not isinstance(path, str) \
                    or not path:
                raise ValueError(f'{where}["vectors"]: each entry is NAME: "path.safetensors" (a NAME without '
                                 f'"{COPY_SEPARATOR}"), got {name!r}: {path!r}')
        cap = room.sets if room else MAX_SETS
        if len(vectors) > cap:
            raise ValueError(f'{where}["vectors"]: {len(vectors)} sets, but at most {cap} are resident at once')
        if room and not (room.places or vectors):
            raise ValueError(f'{where}["room"]["places"]: needed when the engine starts with no sets (where may '
                             'sets loaded later steer?)')
        return cls(dict(vectors), room)


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
    of the sets served (None: the engine was started without steerkit's sets). Raises ValueError with one line naming the key at fault."""
    if not has_steering(extra_args):
        return None
    if PATH in extra_args:  # the endpoint plugin replaces it by the set's name before admission
        raise ValueError(f"{PATH}: this engine loads no steering set named by its path (the OpenAI server does, "
                         f'with VLLM_PLUGINS naming steerkit_sets and {{"room": {{"load_from": FOLDER}}}}); name a '
                         f"loaded set with {VECTORS}")
    if set_attributes is None:
        raise ValueError(f"{VECTORS}: this engine was started without steering sets; start it with "
                         f'additional_config={{"{CONFIG_KEY}": {{"vectors": {{NAME: "path.safetensors"}}}}}}')
    name = extra_args.get(VECTORS)
    if name is None:
        raise ValueError(f"{VECTORS} is required with {STRENGTH}/{TOKENS}: one of {sorted(set_attributes)}")
    if not isinstance(name, str) or name not in set_attributes:
        raise ValueError(f"{VECTORS}: unknown steering set {name!r}; this engine serves "
                         + (f"{sorted(set_attributes)}" if set_attributes else "none now"))
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
    # by the copy stamped at admission: a set loaded again under its name never reuses the old one's blocks
    return f"{extra_args.get(COPY, extra_args.get(VECTORS))}|{strength}|{extra_args.get(TOKENS, 'all')}"
