"""Where a run's files go, so that no earlier result is replaced without being asked.

A researcher who runs ``dtsim``, changes a setting and runs it again must still have the first
run's plots. :func:`fresh_output_dir` keeps the folder that was asked for when none of the files
about to be written is there yet, and otherwise picks the first free sibling ``NAME-2``,
``NAME-3``, ... (the caller says which folder it used). ``overwrite=True`` (the ``--overwrite``
option) writes into the folder as asked, replacing what is there.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["fresh_output_dir"]

#: How many numbered siblings to try before giving up (a guard, not a limit anyone meets).
MAX_SIBLINGS = 10_000


def fresh_output_dir(path: str | Path, names: Iterable[str], *, overwrite: bool = False) -> Path:
    """Return the folder to write ``names`` into without replacing an existing file.

    Parameters
    ----------
    path:
        The folder asked for (need not exist).
    names:
        File names about to be written into it.
    overwrite:
        Return ``path`` even when some of ``names`` exist there (they will be replaced).

    Returns
    -------
    Path
        ``path`` if ``overwrite`` or none of ``names`` exists in it, else the first of
        ``path-2``, ``path-3``, ... in which none of them exists. Nothing is created.
    """
    path = Path(path)
    names = list(names)
    if overwrite or not _holds_any(path, names):
        return path
    for n in range(2, MAX_SIBLINGS):
        candidate = path.with_name(f"{path.name}-{n}")
        if not _holds_any(candidate, names):
            return candidate
    raise FileExistsError(f"{path}: {MAX_SIBLINGS} numbered siblings already hold results; "
                          f"clean up or pass overwrite=True")


def _holds_any(folder: Path, names: list[str]) -> bool:
    return any((folder / name).exists() for name in names)
