"""The README says how long each command it shows takes (on 2 CPU cores), or that it is instant, or why it was not
timed here: a reader can tell a 20-second demo from a 10-minute run before starting it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
# "~25 s", "3-4 min", "about 1 min", "instant", "not timed here"
STATED_TIME = re.compile(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?\s?(?:s|min|h)\b|\binstant\b|\bnot timed\b")


def shell_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)]


def commands_and_their_comments(lines: list[str]) -> list[tuple[str, str]]:
    """Each command of a block with the comment on its line and the comment lines heading it (a run of comment
    lines heads the commands below it, up to the next comment line)."""
    found, heading, in_heading, continued = [], [], False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            heading = [*heading, stripped] if in_heading else [stripped]
            in_heading = True
            continue
        in_heading = False
        if stripped and not continued:
            command, _, trailing = stripped.partition(" # ")
            found.append((command.strip(), " ".join([*heading, trailing])))
        continued = stripped.endswith("\\")
    return found


def test_the_readme_shows_commands():
    assert len([c for block in shell_blocks(README.read_text()) for c in commands_and_their_comments(block)]) >= 20


def test_every_command_in_the_readme_states_its_time_or_why_it_was_not_timed():
    untimed = [
        command
        for block in shell_blocks(README.read_text())
        for command, comment in commands_and_their_comments(block)
        if not STATED_TIME.search(comment)
    ]
    assert untimed == [], "commands without a time in their comment (or the comment lines heading them)"


def test_a_time_is_read_from_the_command_s_own_comment_or_the_comment_heading_it():
    block = [
        "# the demo (~20 s)",
        "python -m ftexp",
        "python -m ftexp seed=1",
        "# a sweep",
        "python -m ftexp -m seed=1,2 \\",
        "    trainer.max_epochs=2",
        "python -m ftexp --cfg job   # instant",
    ]
    timed = {c: bool(STATED_TIME.search(comment)) for c, comment in commands_and_their_comments(block)}
    assert timed == {
        "python -m ftexp": True,
        "python -m ftexp seed=1": True,
        "python -m ftexp -m seed=1,2 \\": False,
        "python -m ftexp --cfg job": True,
    }
