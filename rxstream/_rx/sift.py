"""Filtering batches: the kept values, with their references acknowledged as `rxstream._core.sift` decides."""

from __future__ import annotations

from itertools import compress
from typing import Any

from .._core.sift import Sifted, move_shared_refs, shares_refs, sift
from .batch import Batch

__all__ = ["Sifted", "keep", "move_shared_refs", "shares_refs"]


def keep(batch: Batch, mask: list[Any], upto: int | None = None) -> Batch:
    """The values of the first ``upto`` (or all) whose mask is truthy; the others' references are
    acknowledged with the kept value before them, or at once when none precedes them (see `sift`)."""
    values = batch.values if upto is None else batch.values[:upto]
    refs = batch.refs
    if refs is None:
        return Batch(list(compress(values, mask)))
    refs = refs if upto is None else refs[:upto]
    acker = batch.acker
    if acker is None:
        return Batch(list(compress(values, mask)), list(compress(refs, mask)))
    kept, kept_acker = sift(refs, mask, acker)
    return Batch(list(compress(values, mask)), kept, kept_acker)
