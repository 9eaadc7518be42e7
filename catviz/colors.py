"""One colour per model, level and feature layer, defined here once for every chart: the
per-level logits and layer share beside the maps, the Dataset tab's by-size chart and the
README's screenshots (no Qt, no torch).

A colour follows from what a name is, never from what was drawn first or in an earlier
session: the baseline (and its levels) grey, CAT's total blue; a CAT level by its stage
(the number its name ends with: stride 2^n), one hue per stage; a layer feeding a level
that is not itself a level (the stage's features after LRD) a lighter shade of that hue.
Level names come from the models' specs, never from here.
"""

from __future__ import annotations

import re
import zlib

BASELINE = "#757575"  # the baseline model and its levels
CAT = "#1e88e5"  # CAT's total (the sum of its levels)
OFFSET_NAME = "offset"
OFFSET = "#cfcfcf"  # the part of a level's logit that no position carries
#: stage → (a level's colour, a lighter shade for another layer of that stage)
STAGE_HUES = {
    5: ("#7e57c2", "#b39ddb"),  # purple
    4: ("#26a69a", "#80cbc4"),  # teal
    3: ("#ffa726", "#ffcc80"),  # orange
    2: ("#c0ca33", "#e6ee9c"),  # lime
    6: ("#5c6bc0", "#9fa8da"),  # indigo
}
#: Names without a known stage: picked by the name itself (the same in every session).
SPARE = ("#ec407a", "#00acc1", "#8d6e63", "#6d4c41", "#ad1457", "#00897b")
LEVEL, SOURCE, OF_BASELINE = "level", "source", "baseline"


def layer_color(name: str, kind: str = LEVEL) -> str:
    """The colour of a level or source layer name; ``kind``: a CAT ``LEVEL``, another layer
    feeding one (``SOURCE``), or a layer of the baseline (``OF_BASELINE``)."""
    if name == OFFSET_NAME:
        return OFFSET
    if kind == OF_BASELINE:
        return BASELINE
    stage = re.search(r"(\d+)$", name)
    if stage is not None and int(stage.group(1)) in STAGE_HUES:
        return STAGE_HUES[int(stage.group(1))][kind != LEVEL]
    return SPARE[zlib.crc32(name.encode()) % len(SPARE)]


def rgb(color: str) -> tuple[int, int, int]:
    """"#rrggbb" → (r, g, b)."""
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
