"""Writing the files that several processes share: ``result.json`` (read by the summary while the sweep runs), the
ranks' error records of a DDP run, and the sweep summary's own files (rewritten by every job as it ends).

Neutral ground, with nothing but the standard library: the run's writers (:mod:`ftexp.results`,
:mod:`ftexp.rank_errors`) and the sweep summary (:mod:`ftexp.sweeps`) both import it, and neither imports the other's
machinery (Lightning, Hydra) to get it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Have ``write`` fill a new temporary file next to ``path``, then move it over ``path``: a reader never sees
    half a file, and writers racing on one path each write their own file, the last one replacing the file whole.
    Such races are normal: every job of a sweep rewrites the summary when it ends, possibly at the same moment on
    different SLURM nodes sharing the sweep dir, where process ids (and so pid-based names) can be equal.

    The temporary name is random and created exclusively (``O_EXCL``; unlike ``mkstemp``, with the umask's
    permissions rather than 0600, so that the files stay readable to whoever may read the sweep dir); it keeps
    ``path``'s suffix, from which writers such as ``Figure.savefig`` take the format. It is removed if ``write``
    fails, which leaves ``path`` as it was.
    """
    path = Path(path)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial{path.suffix}")
    partial.open("x").close()
    try:
        write(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
