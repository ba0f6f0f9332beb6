"""Layer-wise learning rates inside a phase (``lr_decay``), resolved against the model.

A phase with ``lr_decay: d`` trains each block of the model it holds in its own optimizer group: the block nearest
the output at the phase's lr, the next one down at ``lr * d``, then ``lr * d**2`` and so on (layer-wise lr decay,
the usual recipe for fine-tuning BERT-like encoders: Howard & Ruder 2018, Sun et al. 2019, Clark et al. 2020).
The blocks are those of the ``blocks`` implicit generator (:func:`ftexp.schedule.generate_schedule`: the head,
what sits between head and the repeated stack, each repeated block from the output side down, embeddings last),
so a generated schedule and a decayed phase see the same structure; ``k`` counts only the blocks the phase holds.

Nothing here touches a Trainer: the callback, the run's schedule resolution and the dry-run plan call these
functions, so the groups they train, check and show are the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from torch import nn

from ftexp.schedule.errors import ScheduleError
from ftexp.schedule.implicit import generate_schedule
from ftexp.schedule.model import Phase, PhaseGroup, Schedule
from ftexp.schedule.names import largest_modules


def resolve_layerwise(schedule: Schedule, module: nn.Module) -> Schedule:
    """``schedule`` (names resolved) with every ``lr_decay`` phase split into its block groups. Groups read from a
    saved schedule are trained as written (``lr_decay`` beside them only records how they were made), once checked
    to hold exactly the phase's parameters. Phases without either are unchanged, so an FTS schedule comes back as it
    went in."""
    if not any(phase.lr_decay is not None or phase.groups for phase in schedule.phases):
        return schedule
    blocks: list[tuple[str, ...]] | None = None
    all_names = [name for name, _ in module.named_parameters()]
    phases = []
    for phase in schedule.phases:
        if phase.groups:
            _check_groups(phase, schedule.source)
        elif phase.lr_decay is not None:
            if blocks is None:
                blocks = [group.params for group in generate_schedule(module, mode="blocks").phases]
            phase = replace(phase, groups=decayed_groups(phase, blocks, all_names, schedule.source))
        phases.append(phase)
    return schedule.with_phases(tuple(phases))


def decayed_groups(
    phase: Phase, blocks: Sequence[Sequence[str]], all_names: Sequence[str], source: str
) -> tuple[PhaseGroup, ...]:
    """The groups of an ``lr_decay`` phase: its parameters in each of ``blocks`` (output side first), the blocks it
    holds nothing of left out, block ``k`` at ``lr_decay**k`` of the phase's lr."""
    if not phase.params:
        raise ScheduleError(
            "lr_decay splits a phase's parameters by block, but this phase has none",
            source=source,
            phase=phase.index,
            key="lr_decay",
            value=phase.lr_decay,
        )
    held = set(phase.params)
    present = [[name for name in block if name in held] for block in blocks]
    present = [block for block in present if block]
    return tuple(
        PhaseGroup(block_name(block, all_names), tuple(block), lr_scale=phase.lr_decay**k)
        for k, block in enumerate(present)
    )


def block_name(names: Sequence[str], all_names: Sequence[str]) -> str:
    """The modules ``names`` make up, as the plan names them: ``model.bert.encoder.layer.1`` for a whole layer."""
    return ", ".join(dict.fromkeys(largest_modules(list(names), list(all_names)).values()))


def with_group_lrs(schedule: Schedule, phase_lrs: Mapping[int, float | None]) -> Schedule:
    """``schedule`` with the lr of every group fixed, given the lr each phase trains at (a phase missing from
    ``phase_lrs`` or mapped to ``None`` keeps its groups as they are): what a run saves, so that reading the saved
    schedule back gives the same groups at the same lrs."""
    phases = []
    for phase in schedule.phases:
        phase_lr = phase_lrs.get(phase.index)
        if phase.groups and phase_lr is not None:
            phase = replace(phase, groups=tuple(replace(g, lr=g.lr_for(phase_lr)) for g in phase.groups))
        phases.append(phase)
    return schedule.with_phases(tuple(phases))


def _check_groups(phase: Phase, source: str) -> None:
    """Groups given with the schedule (as a run saves them) must hold each of the phase's parameters exactly once."""
    seen: set[str] = set()
    for position, group in enumerate(phase.groups):
        again = [name for name in group.params if name in seen]
        if again:
            raise ScheduleError(
                "a parameter is in two groups", source=source, phase=phase.index, key=f"groups[{position}]", value=again
            )
        seen.update(group.params)
    held = set(phase.params)
    foreign, left_out = sorted(seen - held), [name for name in phase.params if name not in seen]
    if foreign or left_out:
        problem = (
            f"must hold exactly the phase's parameters: {len(foreign)} not in its params, {len(left_out)} of them "
            "in no group"
        )
        raise ScheduleError(problem, source=source, phase=phase.index, key="groups", value=(foreign or left_out)[:3])
