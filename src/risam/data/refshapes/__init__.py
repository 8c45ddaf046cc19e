"""RefShapes: a synthetic referring-segmentation benchmark in REFER's and gRefCOCO's file formats.

``generate_refshapes(out, num_images, seed)`` writes, under a data root ``OUT``::

    OUT/images/refshapes/refshapes_000001.png ...     RGB, sizes vary in 112..176 (never square)
    OUT/refshapes/instances.json   OUT/refshapes/refs(unc).p          REFER: one target per sentence
    OUT/grefshapes/instances.json  OUT/grefshapes/grefs(unc).json     gRefCOCO: also multi- and no-target

so that the ``refshapes`` and ``grefshapes`` datasets of :mod:`risam.data.catalog` read them. With
``refer_layout=True`` (``risam data synth --refer-layout``) the same files go where REFER and gRefCOCO
look for RefCOCO and gRefCOCO::

    OUT/images/mscoco/images/train2014/refshapes_000001.png ...
    OUT/refcoco/instances.json    OUT/refcoco/refs(unc).p
    OUT/grefcoco/instances.json   OUT/grefcoco/grefs(unc).json

so that ``REFER(OUT, "refcoco", "unc")`` opens them unchanged and risam reads them as ``refcoco`` and
``grefcoco``. Every object is stored as COCO stores a non-crowd object, a list of polygons.
Image ``i`` (1-based) is ``refshapes_{i:06d}.png``; its objects, refs and sentences have ids
``100 * i + k``. The same seed writes the same bytes.

The modules, from the bottom up:

- :mod:`~risam.data.refshapes.shapes`: the attribute vocabulary, COCO categories and :class:`Shape`;
- :mod:`~risam.data.refshapes.paint`: object masks and the painted image;
- :mod:`~risam.data.refshapes.grammar`: queries, their meaning in a scene, sentences and their types;
- :mod:`~risam.data.refshapes.scene`: splits, layouts and whole scenes (:func:`refshapes_scenes`);
- :mod:`~risam.data.refshapes.write`: the files (:func:`generate_refshapes`);
- :mod:`~risam.data.refshapes.baseline`: :func:`sentence_free_baseline` of a written split.
"""

from risam.data.refshapes.baseline import sentence_free_baseline
from risam.data.refshapes.grammar import (
    SENTENCE_TYPES,
    Phrase,
    Query,
    Referral,
    normalize_sentence,
    render,
    resolve,
    sentence_type,
)
from risam.data.refshapes.scene import SPLITS, Scene, refshapes_scenes
from risam.data.refshapes.shapes import (
    ANGULAR_KINDS,
    CATEGORIES,
    COLOURS,
    KINDS,
    ROUND_KINDS,
    SIZES,
    TEXTURES,
    Shape,
)
from risam.data.refshapes.write import generate_refshapes

__all__ = [
    "ANGULAR_KINDS",
    "CATEGORIES",
    "COLOURS",
    "KINDS",
    "ROUND_KINDS",
    "SENTENCE_TYPES",
    "SIZES",
    "SPLITS",
    "TEXTURES",
    "Phrase",
    "Query",
    "Referral",
    "Scene",
    "Shape",
    "generate_refshapes",
    "normalize_sentence",
    "refshapes_scenes",
    "render",
    "resolve",
    "sentence_free_baseline",
    "sentence_type",
]
