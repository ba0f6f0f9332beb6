"""What a schedule entry that selects no parameter probably meant: the closest names, for exact names and patterns.

An entry is an exact name or a regular expression matched at the start of names, so difflib's closest *names* say
little about a pattern (``net.O.*`` is far from ``net.0.weight`` as a string). Instead the entry itself is repaired:

1. **one edit where it stops matching.** The entry's prefix is grown, read as a regular expression, until it matches
   the start of no name: the typo is at that character. One character changed, added or removed there, or swapped
   with the next one, and the entries that then match are the suggestions (``net.O.*`` -> ``net.0.*``,
   ``classifer.*`` -> ``classifier.*``, ``encoder\\.layers\\.\\d+`` -> ``encoder\\.layer\\.\\d+``,
   ``net.4.wieght`` -> ``net.4.weight``). Edits that swap look-alikes (``O``/``0``, ``l``/``1``) or only change
   case come first; only the cheapest edits found are shown, the most specific first.
2. **the closest module path.** When no single edit helps (a schedule written for another model:
   ``model.bert.encoder...`` on RoBERTa, ``model.pooler`` where BERT has ``model.bert.pooler``), the entry's literal
   beginning, up to its first regex construct, is compared case-insensitively with the model's module paths and
   names from one level above to one level below it, and replaced by the closest ones that make the entry match.
3. **where it goes wrong.** With no suggestion, a message says what the model's names continue with after the part
   that matches (the layer numbers a 12-layer model has, for a schedule written for 24 layers).

Cost: one pass over the names for the prefix (each longer prefix is tried on the names the previous one matched),
``2 x |alphabet| + 2`` edits compiled and matched against every name, and one difflib pass over module paths: a
median of 9 ms and at most 21 ms over 120 random one-character typos of deberta-v3-large's 394 names on 2 shared CPU
cores. It runs only when resolution has already failed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_SUGGESTIONS = 3
_SHOWN_CONTINUATIONS = 6
# how alike (difflib's ratio) a module path must be to the entry's literal beginning to be offered in its place:
# 'model.roberta.encoder.layer' for 'model.bert.encoder.layer' (0.94), not 'model.roberta' for 'model.pooler' (0.64)
_PATH_CUTOFF = 0.75
_LOOKALIKES = {frozenset(pair) for pair in ("O0", "o0", "l1", "I1")}
_REGEX_SYNTAX = set(".^$*+?{}[]\\|()")
_QUANTIFIERS = "*+?{"


@dataclass(frozen=True)
class Suggestion:
    """A repaired entry, how unlikely the repair is as a typo (lower first), and the names it selects."""

    entry: str
    cost: int
    matched: tuple[str, ...]

    def describe(self) -> str:
        """Quoted as it would be written in a YAML file (``'layer\\.1'``, where repr would double the backslash)."""
        if self.matched == (self.entry,):
            return f"'{self.entry}'"
        if len(self.matched) <= 2:
            return f"'{self.entry}' (matches {', '.join(self.matched)})"
        return f"'{self.entry}' (matches {self.matched[0]} and {len(self.matched) - 1} more)"


def suggest_entries(entry: str, param_names: Sequence[str]) -> list[Suggestion]:
    """Up to three repairs of ``entry`` that select parameters, most likely first; ``[]`` when none is found.

    >>> [s.entry for s in suggest_entries("net.O.*", ["net.0.weight", "net.0.bias", "net.2.weight"])]
    ['net.0.*']
    """
    names = list(dict.fromkeys(param_names))
    if not names:
        return []
    found = _one_edit_repairs(entry, names) or _closest_path_repairs(entry, names)
    return found[:MAX_SUGGESTIONS]


def no_match_hint(entry: str, param_names: Sequence[str]) -> str:
    """The end of a "matches no parameter" message: ``"; did you mean 'net.0.*' (matches net.0.weight,
    net.0.bias)?"``, or where the entry stops matching, or ``""``."""
    suggestions = suggest_entries(entry, param_names)
    if suggestions:
        described = [s.describe() for s in suggestions]
        listed = described[0] if len(described) == 1 else f"{', '.join(described[:-1])} or {described[-1]}"
        return f"; did you mean {listed}?"
    stop = _matching_prefix_length(entry, param_names)
    if "." not in entry[:stop]:  # not even one module matched: nothing useful to say
        return ""
    continuations = _continuations(entry[:stop], param_names)
    shown = ", ".join(continuations[:_SHOWN_CONTINUATIONS])
    if len(continuations) > _SHOWN_CONTINUATIONS:
        shown += f", ... ({len(continuations)} in all)"
    return f"; after '{entry[:stop]}' the model's names continue with {shown}, none with '{entry[stop:]}'"


def _continuations(prefix: str, names: Sequence[str]) -> list[str]:
    """What follows ``prefix`` in the names it matches, up to the next dot, in registration order: the layer
    numbers after ``encoder.layer.``."""
    compiled = re.compile(prefix)
    after = (name[match.end() :].split(".")[0] for name in names if (match := compiled.match(name)))
    return list(dict.fromkeys(f"'{part}'" for part in after))


def _selects(pattern: str, names: Sequence[str]) -> tuple[str, ...]:
    try:
        compiled = re.compile(pattern)
    except re.error:
        return ()
    return tuple(name for name in names if compiled.match(name))


def _matching_prefix_length(entry: str, names: Sequence[str]) -> int:
    """The length of the prefix of ``entry`` that, read as a regular expression, matches the start of some name,
    grown until one more character matches none: the typo is right after it. Prefixes that are not valid
    expressions (``layer.(8|9``) are skipped. Each longer prefix is tried on the names the last one matched (all
    names only when those fail), so the cost stays near one pass over the names."""
    matching, length = list(names), 0
    for end in range(1, len(entry) + 1):
        try:
            compiled = re.compile(entry[:end])
        except re.error:
            continue
        narrowed = [n for n in matching if compiled.match(n)] or [n for n in names if compiled.match(n)]
        if not narrowed:
            break
        matching, length = narrowed, end
    return length


def _one_edit_repairs(entry: str, names: Sequence[str]) -> list[Suggestion]:
    at = _matching_prefix_length(entry, names)
    if at >= len(entry):
        return []
    head, typo, tail = entry[:at], entry[at], entry[at + 1 :]
    # a character of a name, as a pattern says it: a dot escaped, or it would stand for any character
    alphabet = sorted({char for name in names for char in name})
    spelled = {char: re.escape(char) for char in alphabet}
    edits = [(head + tail, 1)]  # removed
    edits += [(head + spelled[char] + typo + tail, 1) for char in alphabet]  # added before it
    edits += [(head + spelled[char] + tail, _substitution_cost(typo, char)) for char in alphabet if char != typo]
    if tail:
        edits.append((head + tail[0] + typo + tail[1:], 1))  # swapped with the next one
    return _cheapest([Suggestion(edited, cost, _selects(edited, names)) for edited, cost in edits], names)


def _substitution_cost(typed: str, meant: str) -> int:
    return 0 if typed.lower() == meant.lower() or frozenset((typed, meant)) in _LOOKALIKES else 1


def _closest_path_repairs(entry: str, names: Sequence[str]) -> list[Suggestion]:
    stem, stem_end = _literal_stem(entry)
    if not stem:
        return []
    # the module paths and names one level above to one below the stem's: another model may nest its modules one
    # level deeper or shallower (DeBERTa's model.pooler is BERT's model.bert.pooler)
    depth = stem.count(".")
    paths: dict[str, str] = {}  # lower-cased -> as written, in registration order
    for name in names:
        parts = name.split(".")
        for length in range(max(depth, 1), min(depth + 2, len(parts)) + 1):
            path = ".".join(parts[:length])
            paths.setdefault(path.lower(), path)
    typed = stem.lower()
    closest = difflib.get_close_matches(typed, list(paths), n=MAX_SUGGESTIONS, cutoff=_PATH_CUTOFF)
    if not closest:
        return []
    # only the paths about as close as the closest one: 'LayerNorm' for 'layernorm', not also 'layer'
    best = difflib.SequenceMatcher(None, typed, closest[0]).ratio()
    close_enough = [p for p in closest if difflib.SequenceMatcher(None, typed, p).ratio() >= best - 0.05]
    repaired = (paths[path] + entry[stem_end:] for path in close_enough)
    return [Suggestion(edited, 1, matched) for edited in repaired if (matched := _selects(edited, names))]


def _literal_stem(pattern: str) -> tuple[str, int]:
    """The text every match of ``pattern`` starts with, up to its first regex construct and without trailing dots,
    and where that ends in the pattern: ``model\\.bert\\.layer\\.[0-3]\\..*`` -> ``("model.bert.layer", 18)``.
    An unescaped dot is read as the dot it almost always stands for in a parameter name."""
    chars: list[str] = []
    ends: list[int] = []
    at = 0
    while at < len(pattern):
        if pattern[at] == "\\" and at + 1 < len(pattern) and not pattern[at + 1].isalnum():
            char, width = pattern[at + 1], 2
        elif pattern[at] == "." or pattern[at] not in _REGEX_SYNTAX:
            char, width = pattern[at], 1
        else:
            break
        following = pattern[at + width : at + width + 1]
        if following and following in _QUANTIFIERS:  # optional or repeated: not always there
            break
        chars.append(char)
        at += width
        ends.append(at)
    stem = "".join(chars).rstrip(".")
    return stem, ends[len(stem) - 1] if stem else 0


def _cheapest(suggestions: list[Suggestion], names: Sequence[str]) -> list[Suggestion]:
    """The suggestions that select something, cheapest first, one per set of selected names; only the cheapest tier
    is kept, then the most specific (fewest names), then the earliest registered."""
    by_selection: dict[tuple[str, ...], Suggestion] = {}
    for suggestion in sorted(suggestions, key=lambda s: (s.cost, s.entry not in s.matched)):  # exact names first
        if suggestion.matched:
            by_selection.setdefault(suggestion.matched, suggestion)
    if not by_selection:
        return []
    cheapest = min(s.cost for s in by_selection.values())
    order = {name: index for index, name in enumerate(names)}
    return sorted(
        (s for s in by_selection.values() if s.cost == cheapest), key=lambda s: (len(s.matched), order[s.matched[0]])
    )
