"""An original's outputs: the names they take, and whether one already holds this very content
enhanced by this very recipe ("same content + same recipe = already done").

Every output carries truepix's XMP record (``io.metadata``) with the original's sha256 and the
recipe's (``Recipe.sha256``: its settings, not only its name).  Before a file is enhanced,
``process.process_file`` — ``truepix process`` and the Ray engine, which runs it per file — looks
at the names an output of this original with this recipe takes (``output_name``: ``<stem><suffix>
<ext>``, then ``-1``, ``-2`` ... up to the first free one, beside the original or in the output
folder) and skips the file when one of them names the same two hashes.  So:

- a second run over a folder enhances nothing and writes nothing; ``--force`` redoes a file under
  the next free name (never over an output);
- an original whose bytes changed, or a recipe with any setting changed, is enhanced again; a file
  only touched (new mtime, same bytes) or copied back is not;
- an output an earlier truepix made, before its record carried the hashes, never matches: that
  original is enhanced once more, and from then on skipped.

The daemon applies the same rule with the same two keys at its door (``JobStore.submit``: a job for
the same sha256 and recipe key is a duplicate unless forced), and its outputs carry the same
record, so ``truepix process`` skips what the daemon did.  Its worker does not look at outputs: a
forced job must run, and the queue has already decided.
"""

from __future__ import annotations

import os
import pathlib

from truepix.io.atomic import fit_name
from truepix.recipes import Recipe

MAX_NUMBERED = 10_000  # numbered names looked at, at most (a folder is not searched for ever)


def output_name(source: pathlib.Path, recipe: Recipe, n: int = 0) -> str:
    """The ``n``-th name an output of ``source`` by ``recipe`` takes: ``<stem><suffix>.<ext>`` (n = 0),
    ``<stem><suffix>-<n>.<ext>``; the stem cut short to fit NAME_MAX bytes (``atomic.fit_name``;
    ValueError when even the suffix and extension do not fit)."""
    return fit_name(source.stem, f"{recipe.suffix}{f'-{n}' if n else ''}{recipe.extension}")


def existing(source: pathlib.Path, recipe: Recipe, folder: pathlib.Path) -> list[pathlib.Path]:
    """The outputs of ``source`` by ``recipe`` in ``folder`` by name: ``output_name`` 0, 1, 2 ...
    while each exists (a numbered name after a gap is not looked for: it is the name the next run
    takes)."""
    found = []
    for n in range(MAX_NUMBERED):
        try:
            path = folder / output_name(source, recipe, n)
        except ValueError:
            return found
        if not os.path.lexists(path):
            break
        found.append(path)
    return found


def digest(source: pathlib.Path) -> str | None:
    """The original's sha256 (``io.regular.file_sha256``), or None when it cannot be read (the decode
    that follows says why, in its words)."""
    from truepix.errors import TruepixError
    from truepix.io.regular import file_sha256

    try:
        return file_sha256(source)[0]
    except (TruepixError, OSError):
        return None


def record(source_sha256: str | None, recipe: Recipe) -> dict[str, str]:
    """What an output's XMP record says of what made it (``metadata.copy_metadata``'s ``xmp_info``)."""
    return {"recipe_sha256": recipe.sha256(), **({"source_sha256": source_sha256} if source_sha256 else {})}


def find_done(source: pathlib.Path, recipe: Recipe, folder: pathlib.Path, source_sha256: str | None, *,
              made_after: float | None = None) -> pathlib.Path | None:
    """The output in ``folder`` (``existing``) whose record names ``source_sha256`` and ``recipe``'s
    sha256, or None.  ``made_after`` (a time.time()): only an output modified since then counts (the
    Ray engine's forced run, which redoes older outputs but never one its own retried task wrote)."""
    if not source_sha256:
        return None
    from truepix.io.metadata import read_truepix_record

    want = recipe.sha256()
    for path in existing(source, recipe, folder):
        if made_after is not None:
            try:
                if os.stat(path).st_mtime < made_after:
                    continue
            except OSError:
                continue
        rec = read_truepix_record(path)
        if rec is not None and rec["recipe_sha256"] == want and rec["source_sha256"] == source_sha256:
            return path
    return None


def skip_line(source: pathlib.Path, recipe: Recipe, output: str | os.PathLike) -> str:
    """``IMG_0001.tif: already enhanced with recipe upscale (IMG_0001-truepix-x2.tif); --force to redo``."""
    return (f"{source.name}: already enhanced with recipe {recipe.name} ({pathlib.Path(output).name}); "
            "--force to redo")
