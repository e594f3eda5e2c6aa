"""How deeply a JSON document nests, measured on the raw bytes before anything decodes it.

msgspec and the standard ``json`` module recurse once per nesting level. Their only guard is
the interpreter's recursion limit (see :mod:`app.recursion`); a deep document must be refused
before it reaches them, whatever that limit is. A full parse would cost as much as the decode
it protects, so this reads only the structure, with bytes methods that run in C:

1. a document with at most ``limit`` opening brackets cannot nest deeper (every ordinary
   body stops here, for about a microsecond per kilobyte);
2. otherwise escapes and string contents are dropped (brackets inside strings do not nest),
   ``{}`` become ``[]`` and everything else goes, leaving the bracket skeleton;
3. the depth of the skeleton is the highest running total of its runs of ``[`` and ``]``.
   Removing every innermost ``[]`` lowers that depth by one (by at most one for invalid
   JSON), so wide documents (an array of many small objects) are first peeled that way while
   a round removes a good part of the skeleton.

The result is exact for valid JSON. For invalid JSON it may be higher than what a parser reaches
before it stops at the first error, never lower, so the check errs on the side of refusing.
"""

from __future__ import annotations

import re
from itertools import accumulate
from operator import neg

# The nesting no request body of passgate's comes near, and no common JSON API needs more
# (serde_json's default limit is the same).
MAX_JSON_DEPTH = 128

_RUNS = re.compile(rb"\[+|\]+")
_TO_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def nesting_exceeds(document: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the UTF-8 JSON ``document`` nests arrays and objects more than ``limit`` deep."""
    if document.count(b"[") + document.count(b"{") <= limit:
        return False
    return nesting_depth(document) > limit


def nesting_depth(document: bytes) -> int:
    return _skeleton_depth(_skeleton(document))


def _skeleton(document: bytes) -> bytes:
    """Only the brackets outside strings, all as ``[`` and ``]``."""
    if b"\\" in document:
        # An escaped backslash first, so the backslash of ``\\"`` does not escape the quote.
        document = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    # UTF-8 never uses these bytes inside a multi-byte character, so bytes are enough.
    structure = document.translate(_TO_SQUARE, _NOT_STRUCTURE)
    if b'"' in structure:
        # Most strings hold no brackets and are left as ``""``: removed pairwise from the
        # left, they all go. A quote that stays means some string holds brackets; then what
        # lies between the 1st and 2nd quote, the 3rd and 4th, ... is string content.
        bare = structure.replace(b'""', b"")
        structure = b"".join(structure.split(b'"')[::2]) if b'"' in bare else bare
    return structure


def _skeleton_depth(skeleton: bytes) -> int:
    peeled = 0
    while len(skeleton) > 1024:
        shorter = skeleton.replace(b"[]", b"")
        removed = len(skeleton) - len(shorter)
        if not removed:
            break
        skeleton, peeled = shorter, peeled + 1
        if removed * 16 < len(skeleton):
            # A round costs a pass over the skeleton; it pays while it removes many runs.
            break
    if not skeleton:
        return peeled
    runs = list(map(len, _RUNS.findall(skeleton)))
    if skeleton.startswith(b"]"):
        runs.insert(0, 0)
    # Runs alternate: openers at even positions, closers at odd ones.
    runs[1::2] = map(neg, runs[1::2])
    return peeled + max(accumulate(runs, initial=0))
