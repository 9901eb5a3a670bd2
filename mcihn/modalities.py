"""The three modalities and how they are named: one place for every name, letter and order.

Two orders are used, for two audiences:

* ``MODALITIES`` = (text, audio, vision): the order of MMSA's pickles and of the command line
  (``--modalities tav``), used for storage and iteration;
* ``PAPER_ORDER`` = (vision, text, audio): the order in which the paper writes them, so pair
  features are F^vt, F^va, F^ta and fused features F^{v-ta}, F^{t-va}, F^{a-vt}.

Everything else (the letters, pair names, "the other modalities" of a core one, input sizes read
from the data) is derived here, and every module imports it from here.
"""
from __future__ import annotations

from itertools import combinations

#: Storage / command-line order.
MODALITIES = ("text", "audio", "vision")
#: The order the paper writes them in (F^vt, F^va, F^ta).
PAPER_ORDER = ("vision", "text", "audio")
#: modality -> its letter, and back.
LETTER = {"text": "t", "audio": "a", "vision": "v"}
MODALITY_OF_LETTER = {v: k for k, v in LETTER.items()}


def parse_modalities(spec: str | list | tuple) -> tuple[str, ...]:
    """``"tav"`` / ``"vt"`` / ``["text", "audio"]`` -> ordered tuple of modality names.

    Raises ``ValueError`` for an empty set, an unknown letter or a repeated one.
    """
    if isinstance(spec, str):
        if not spec:
            raise ValueError("modalities: need a non-empty subset of 't', 'a', 'v'")
        unknown = [c for c in spec if c not in MODALITY_OF_LETTER]
        if unknown:
            raise ValueError(f"modalities: unknown letter(s) {unknown!r} in {spec!r}; use t (text), a (audio), v (vision)")
        names = [MODALITY_OF_LETTER[c] for c in spec]
    else:
        names = list(spec)
        bad = [n for n in names if n not in MODALITIES]
        if bad or not names:
            raise ValueError(f"modalities: {names!r} is not a non-empty subset of {MODALITIES}")
    if len(set(names)) != len(names):
        raise ValueError(f"modalities: repeated modality in {spec!r}")
    return tuple(m for m in MODALITIES if m in names)


def letters(modalities, order=PAPER_ORDER) -> str:
    """("text", "vision") -> "vt" (paper order by default)."""
    return "".join(LETTER[m] for m in order if m in modalities)


def input_sizes(modalities, dims: dict) -> dict:
    """{m: (T_m, D_m)} for the configured modalities, as ints, from the data's ``dims``; refuses missing ones."""
    missing = [m for m in modalities if m not in dims]
    if missing:
        raise ValueError(f"the data has no {missing} features but the config asks for modalities {tuple(modalities)}")
    return {m: (int(dims[m][0]), int(dims[m][1])) for m in modalities}


def paper_order(modalities) -> list[str]:
    return [m for m in PAPER_ORDER if m in modalities]


def pair_key(m: str, n: str) -> str:
    """Name of the pair feature of m and n in the paper's notation: ("text", "vision") -> "vt"."""
    a, b = sorted((m, n), key=PAPER_ORDER.index)
    return LETTER[a] + LETTER[b]


def pairs_of(modalities) -> list[tuple[str, str]]:
    """Unordered pairs in paper order: (v, t), (v, a), (t, a) for all three modalities."""
    return list(combinations(paper_order(modalities), 2))


def others_of(m: str, modalities) -> list[str]:
    return [o for o in paper_order(modalities) if o != m]
