"""The image files a run trains and evaluates on, listed once and stored with the run.

A folder dataset lists each of its folders at the run's first start and writes the listings to
`RUN/data_listing.json`. A resumed run (and `gantrain-eval RUN`) reads them from there instead of walking the
folders again, so it sees the same files in the same order even when files were added to a folder since (a
new file would otherwise shift the split and every later index), and a folder of a million files is not
walked twice. Files that have gone since are read as unreadable ones are: skipped (in memory) or replaced by
the next readable file (stream), and counted in the log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from gantrain.data.images import list_images
from gantrain.errors import GantrainError
from gantrain.io import write_json_atomic

log = logging.getLogger(__name__)

LISTING_FILE = "data_listing.json"
_VERSION = 1


class FolderListing:
    """Image listings of folders, keyed by the folder's absolute path; stored in `path` when given.

    `FolderListing()` lists every time (no run: the sampling and translation commands, scripts);
    `FolderListing(run_dir / LISTING_FILE)` reuses what is stored there and stores what it lists
    (`write=False` for processes that must not write to the run, such as DDP ranks other than 0)."""

    def __init__(self, path: Path | None = None, write: bool = True) -> None:
        self.path, self.write = path, write
        self._folders: dict[str, list[str]] = {}
        if path is not None and path.is_file():
            try:
                blob = json.loads(path.read_text(encoding="utf-8"))
                if blob.get("version") != _VERSION:
                    raise ValueError(f"version {blob.get('version')}")
                self._folders = {str(k): [str(f) for f in v] for k, v in blob["folders"].items()}
            except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
                raise GantrainError(
                    f"{path} cannot be read ({exc}); it holds the run's file listing: delete it to list the data "
                    f"folders again (the split stays the same unless files were added or removed)"
                ) from None

    def images(self, folder: Path) -> list[Path]:
        """The image files under `folder`, sorted: the stored listing where this run has one."""
        folder = Path(folder)
        key = str(folder.expanduser().resolve())
        stored = self._folders.get(key)
        if stored is not None:
            log.info("%s: %d file(s) from the run's listing %s (files added since are not used)", folder, len(stored), self.path)
            return [folder / name for name in stored]
        files = list_images(folder)
        if self.path is not None and files:
            self._folders[key] = [str(f.relative_to(folder)) for f in files]
            if self.write:
                write_json_atomic({"version": _VERSION, "folders": self._folders}, self.path)
        return files
