"""Arithmetic on dotted parameter names, shared by the schedule generator and the dry-run plan."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def module_prefixes(name: str) -> list[str]:
    """The modules a parameter sits in, outermost first: ``a.b.weight`` -> ``["a", "a.b"]``."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def count_by_module(names: Iterable[str], weights: Mapping[str, int] | None = None) -> dict[str, int]:
    """How many of ``names`` (or how much of their ``weights``) each module holds, at every depth."""
    totals: dict[str, int] = {}
    for name in names:
        amount = weights[name] if weights is not None else 1
        for prefix in module_prefixes(name):
            totals[prefix] = totals.get(prefix, 0) + amount
    return totals


def largest_modules(names: list[str], all_names: list[str]) -> dict[str, str]:
    """For each of ``names``, the largest module all of whose parameters (among ``all_names``) are in ``names``;
    the name itself when ``names`` hold only part of its innermost module: how the dry-run plan and the run record
    name what a phase or a parameter group holds."""
    under, covered = count_by_module(all_names), count_by_module(names)
    return {
        name: next((prefix for prefix in module_prefixes(name) if covered.get(prefix) == under[prefix]), name)
        for name in names
    }
