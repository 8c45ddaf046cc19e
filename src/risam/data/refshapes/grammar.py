"""RefShapes sentences: a small grammar, the meaning of each sentence in a scene, and its type.

A sentence is generated from a :class:`Query` and kept only when its meaning (see
:func:`resolve`) is exactly the intended target set in the scene:

- attributes: "the small striped green ring", "the yellow shape";
- absolute position among the objects a phrase names: "the square on the left", "the highest star";
- ordinals: "the second triangle from the right", "the third shape from the top";
- relations to an object named uniquely: "the circle above the red star", "the oval to the left of the cross";
- gRefCOCO only, multi-target: "all blue shapes", "the two squares", "both rings";
- gRefCOCO only, no-target: near misses such as "the purple hexagon" in a scene without one.

Positions are compared between object centres, with a margin (8% of the shorter image side in
RefShapes): an ordering or a relation that is too close to call makes the expression invalid.
:func:`scene_referrals` picks a scene's sentences: ``expressions_per_image`` single-target ones,
spread round-robin over up to ``MAX_REFS`` objects, so that no object answers more than about a
third of them, then up to 2 multi-target and 1 no-target sentences. Each sentence carries its
:func:`sentence_type`, one of :data:`SENTENCE_TYPES`: ``attribute``, ``position``, ``ordinal``,
``relation``, ``group`` (multi-target) or ``no_target``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from risam.data.refshapes.shapes import COLOURS, ID_STRIDE, KINDS, Shape

PLURALS = {kind: kind + ("es" if kind.endswith("s") else "s") for kind in (*KINDS, "shape")}
SIZE_WORDS = {"small": ("small", "little"), "large": ("large", "big")}
TEXTURE_WORDS = {"solid": ("plain", "solid"), "striped": ("striped",), "dotted": ("dotted", "spotted")}
EXTREME_TEMPLATES = {
    "left": ("the {} on the left", "the leftmost {}"),
    "right": ("the {} on the right", "the rightmost {}"),
    "top": ("the {} at the top", "the highest {}"),
    "bottom": ("the {} at the bottom", "the lowest {}"),
}
ORDINAL_WORDS = {2: "second", 3: "third"}
RELATION_WORDS = {
    "above": ("above",),
    "below": ("below", "under"),
    "left": ("left of", "to the left of"),
    "right": ("right of", "to the right of"),
}
COUNT_TEMPLATES = {0: ("all {}", "all the {}"), 2: ("the two {}", "both {}"), 3: ("the three {}", "all three {}")}
SENTENCE_TYPES = ("attribute", "position", "ordinal", "relation", "group", "no_target")
MAX_REFS = 4


@dataclass(frozen=True)
class Phrase:
    """A noun phrase: a shape kind (None: "shape") and the attributes it states (None: not stated)."""

    kind: str | None = None
    colour: str | None = None
    size: str | None = None
    texture: str | None = None

    def matches(self, shape: Shape) -> bool:
        """Whether ``shape`` has every stated attribute."""
        return (
            self.kind in (None, shape.kind)
            and self.colour in (None, shape.colour)
            and self.size in (None, shape.size)
            and self.texture in (None, shape.texture)
        )


@dataclass(frozen=True)
class Query:
    """The meaning of one sentence, evaluated by :func:`resolve`.

    ``count``: 1 for "the <phrase>" (one object, or none), 0 for "all <phrases>" (two or more),
    2 or 3 for "the two/three <phrases>" (exactly that many). ``rank`` > 0 with ``direction``
    (left/right/top/bottom): the rank-th of the phrase's objects from that side, 1 being "on the
    left", "the highest", ... ``relation`` (above/below/left/right) with ``anchor``: the phrase's
    objects in that relation to the one object the anchor names.
    """

    phrase: Phrase
    count: int = 1
    rank: int = 0
    direction: str = ""
    relation: str = ""
    anchor: Phrase | None = None


@dataclass(frozen=True)
class Referral:
    """One ref: its target objects (indices into ``Scene.shapes``; empty: no target) and sentences.

    ``sentences`` holds ``(sent_id, raw)`` pairs; ``sentence_types`` the :func:`sentence_type` of
    each, in the same order.
    """

    ref_id: int
    targets: tuple[int, ...]
    sentences: tuple[tuple[int, str], ...]
    sentence_types: tuple[str, ...]


def normalize_sentence(raw: str) -> str:
    """REFER's ``sent``: lowercase words without punctuation, single spaces."""
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", raw.lower()).split())


def resolve(query: Query, shapes: Sequence[Shape], margin: float) -> frozenset[int] | None:
    """The indices of the shapes ``query`` refers to, or None when it is ambiguous or ill-formed.

    Orderings and relations need centres at least ``margin`` pixels apart along the axis in
    question; anything closer to call makes the whole query ambiguous.
    """
    members = [index for index, shape in enumerate(shapes) if query.phrase.matches(shape)]
    if query.rank:
        chosen = _ranked(members, shapes, query.rank, query.direction, margin)
        return None if chosen is None else frozenset({chosen})
    if query.anchor is not None:
        anchors = [index for index, shape in enumerate(shapes) if query.anchor.matches(shape)]
        if len(anchors) != 1:
            return None
        anchor = shapes[anchors[0]]
        states = {
            index: _related(shapes[index], anchor, query.relation, margin) for index in members if index != anchors[0]
        }
        if None in states.values():
            return None
        members = [index for index, state in states.items() if state]
    if query.count == 0:
        return frozenset(members) if len(members) >= 2 else None
    if query.count == 1:
        return frozenset(members) if len(members) <= 1 else None
    return frozenset(members) if len(members) == query.count else None


def sentence_type(query: Query, targets: Collection[int]) -> str:
    """The form of a sentence, one of :data:`SENTENCE_TYPES`, from its query and its targets.

    ``no_target`` when ``targets`` is empty (whatever the query's form), else ``position`` (rank 1),
    ``ordinal`` (rank 2 or 3), ``relation`` (an anchor), ``attribute`` (count 1) or ``group``.
    """
    if not targets:
        return "no_target"
    if query.rank:
        return "position" if query.rank == 1 else "ordinal"
    if query.anchor is not None:
        return "relation"
    return "attribute" if query.count == 1 else "group"


def _ranked(members: list[int], shapes: Sequence[Shape], rank: int, direction: str, margin: float) -> int | None:
    """The rank-th member from ``direction``, if the phrase names more than ``rank`` objects and
    the first rank + 1 of them are at least ``margin`` apart along that axis."""
    if len(members) <= rank:
        return None
    sign = 1.0 if direction in ("left", "top") else -1.0
    axis = "x" if direction in ("left", "right") else "y"
    ordered = sorted((sign * getattr(shapes[index], axis), index) for index in members)
    head = [position for position, _ in ordered[: rank + 1]]
    if min(np.diff(head)) < margin:
        return None
    return ordered[rank - 1][1]


def _related(shape: Shape, anchor: Shape, relation: str, margin: float) -> bool | None:
    """Whether ``shape`` is clearly in ``relation`` to ``anchor`` (True), clearly not (False), or neither (None).

    True: at least ``margin`` away in that direction and no farther sideways (a 90 degree cone).
    False: not in that direction at all, or more than twice as far sideways.
    """
    dx, dy = shape.x - anchor.x, shape.y - anchor.y
    along, across = {"above": (-dy, dx), "below": (dy, dx), "left": (-dx, dy), "right": (dx, dy)}[relation]
    if along >= margin and along >= abs(across):
        return True
    if along <= 0 or along <= abs(across) / 2:
        return False
    return None


def _phrases(shape: Shape, max_attributes: int = 3) -> list[Phrase]:
    """The phrases that describe ``shape`` with up to ``max_attributes`` attributes, with its
    kind or as "shape" (then with at least one attribute)."""
    attributes = {"colour": shape.colour, "size": shape.size, "texture": shape.texture}
    phrases = []
    for number in range(max_attributes + 1):
        for names in combinations(attributes, number):
            stated = {name: attributes[name] for name in names}
            phrases.append(Phrase(kind=shape.kind, **stated))
            if stated:
                phrases.append(Phrase(**stated))
    return phrases


def scene_referrals(
    rng: np.random.Generator,
    shapes: Sequence[Shape],
    family: tuple[str, ...],
    expressions_per_image: int,
    margin: float,
    image_id: int,
) -> list[Referral] | None:
    """The refs of one scene: ``expressions_per_image`` single-target sentences over up to
    ``MAX_REFS`` objects of ``family``, then up to 2 multi-target and 1 no-target sentences.
    None when the scene cannot support that many single-target sentences over enough objects."""
    singles: dict[int, dict[str, list[Query]]] = defaultdict(lambda: defaultdict(list))
    multis: list[tuple[Query, frozenset[int]]] = []
    empties: list[Query] = []

    def consider(query: Query, form: str) -> None:
        result = resolve(query, shapes, margin)
        if result is None or any(shapes[index].kind not in family for index in result):
            return
        if len(result) == 1:
            singles[next(iter(result))][form].append(query)
        elif len(result) > 1:
            multis.append((query, result))
        elif query.phrase.kind in family:
            empties.append(query)

    phrases = list(dict.fromkeys(phrase for shape in shapes for phrase in _phrases(shape)))
    simple = list(dict.fromkeys(phrase for shape in shapes for phrase in _phrases(shape, max_attributes=1)))
    for phrase in phrases:
        consider(Query(phrase), "attribute")
        for count in (0, 2, 3):
            consider(Query(phrase, count=count), "group")
    for phrase in simple:
        for direction in EXTREME_TEMPLATES:
            for rank in (1, 2, 3):
                consider(Query(phrase, rank=rank, direction=direction), "position" if rank == 1 else "ordinal")
    anchors = [anchor for shape in shapes if (anchor := _anchor(rng, shape, shapes)) is not None]
    for phrase in simple:
        if sum(phrase.matches(shape) for shape in shapes) < 2:
            continue
        for anchor in anchors:
            for relation in RELATION_WORDS:
                consider(Query(phrase, relation=relation, anchor=anchor), "relation")
    for kind in family:
        for colour in COLOURS:
            near = any(shape.kind == kind or shape.colour == colour for shape in shapes)
            if near and not any(shape.kind == kind and shape.colour == colour for shape in shapes):
                empties.append(Query(Phrase(kind=kind, colour=colour)))

    needed_refs = min(3, expressions_per_image)
    eligible = sorted(singles)
    if len(eligible) < needed_refs:
        return None
    targets = [eligible[index] for index in rng.permutation(len(eligible))[:MAX_REFS]]
    chosen: dict[int, list[Query]] = {target: [] for target in targets}

    def remaining(target: int) -> list[str]:
        return [form for form, queries in singles[target].items() if queries]

    total = 0
    while total < expressions_per_image and any(remaining(target) for target in targets):
        for target in targets:
            forms = remaining(target)
            if forms and total < expressions_per_image:
                queries = singles[target][forms[rng.integers(len(forms))]]
                chosen[target].append(queries.pop(int(rng.integers(len(queries)))))
                total += 1
    if total < expressions_per_image or sum(bool(queries) for queries in chosen.values()) < needed_refs:
        return None

    groups: dict[tuple[int, ...], list[Query]] = {(target,): queries for target, queries in chosen.items() if queries}
    for position in rng.permutation(len(multis))[:2]:
        query, result = multis[position]
        groups.setdefault(tuple(sorted(result)), []).append(query)
    if empties:
        groups[()] = [empties[rng.integers(len(empties))]]

    referrals = []
    sent_number = 0
    for ref_number, (group_targets, queries) in enumerate(groups.items()):
        sentences = []
        for query in queries:
            sentences.append((ID_STRIDE * image_id + sent_number, render(query, rng)))
            sent_number += 1
        types = tuple(sentence_type(query, group_targets) for query in queries)
        referrals.append(Referral(ID_STRIDE * image_id + ref_number, group_targets, tuple(sentences), types))
    return referrals


def _anchor(rng: np.random.Generator, shape: Shape, shapes: Sequence[Shape]) -> Phrase | None:
    """A shortest phrase that names ``shape`` alone in ``shapes`` (a random one of them), or None."""
    unique = [phrase for phrase in _phrases(shape) if sum(phrase.matches(other) for other in shapes) == 1]
    if not unique:
        return None
    shortest = min(_length(phrase) for phrase in unique)
    choices = [phrase for phrase in unique if _length(phrase) == shortest]
    return choices[rng.integers(len(choices))]


def _length(phrase: Phrase) -> int:
    """How many words the phrase states (its noun included)."""
    return 1 + sum(value is not None for value in (phrase.colour, phrase.size, phrase.texture))


def _noun_phrase(rng: np.random.Generator, phrase: Phrase, plural: bool = False) -> str:
    """The words of ``phrase``: [size] [texture] [colour] noun, e.g. "small striped green ring", "blue shapes"."""
    words = []
    if phrase.size is not None:
        words.append(str(rng.choice(SIZE_WORDS[phrase.size])))
    if phrase.texture is not None:
        words.append(str(rng.choice(TEXTURE_WORDS[phrase.texture])))
    if phrase.colour is not None:
        words.append(phrase.colour)
    noun = phrase.kind or "shape"
    words.append(PLURALS[noun] if plural else noun)
    return " ".join(words)


def render(query: Query, rng: np.random.Generator) -> str:
    """One raw sentence for ``query``, with a random choice of synonyms, capital and full stop."""
    if query.rank == 1:
        text = str(rng.choice(EXTREME_TEMPLATES[query.direction])).format(_noun_phrase(rng, query.phrase))
    elif query.rank:
        text = f"the {ORDINAL_WORDS[query.rank]} {_noun_phrase(rng, query.phrase)} from the {query.direction}"
    elif query.anchor is not None:
        relation = str(rng.choice(RELATION_WORDS[query.relation]))
        text = f"the {_noun_phrase(rng, query.phrase)} {relation} the {_noun_phrase(rng, query.anchor)}"
    elif query.count == 1:
        text = f"the {_noun_phrase(rng, query.phrase)}"
    else:
        text = str(rng.choice(COUNT_TEMPLATES[query.count])).format(_noun_phrase(rng, query.phrase, plural=True))
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text + "." if rng.random() < 0.3 else text
