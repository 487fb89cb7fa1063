"""Files and folders agentfuse creates are private to their owner, whatever the umask.

Spend, halts, event lines and reports say what an agent does and costs: folders are created
0700 and files 0600 (a umask can only take bits away from these, never add them).
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_dirs(folder: Path) -> None:
    """Create ``folder`` and each missing parent with mode 0700.

    ``Path.mkdir(parents=True, mode=...)`` gives the parents the default mode (0777 under a
    umask of 000), so each missing level is made here, outermost first.
    """
    missing = []
    current = Path(folder)
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for level in reversed(missing):
        try:
            level.mkdir(mode=FOLDER_MODE)
        except FileExistsError:  # made by another process meanwhile
            pass


def write_private(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, created 0600; an existing file keeps its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
