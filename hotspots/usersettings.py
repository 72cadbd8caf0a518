"""Per-user settings of the app (an officer's home ward), one small JSON file per user in
a folder next to the store, so two users saving at once never overwrite each other.

File I/O lives here, at the edge; nothing else reads these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def settings_folder(store_file: str | Path) -> Path:
    """The folder of per-user settings that goes with a store file."""
    return Path(store_file).with_name("user-settings")


def _file(folder: Path, user: str) -> Path:
    # a hash, not the name: user names are e-mail addresses, not safe file names
    return Path(folder) / f"{hashlib.sha256(user.encode()).hexdigest()[:24]}.json"


def read_settings(folder: str | Path, user: str) -> dict:
    """The user's settings; {} when there are none or the file cannot be read."""
    try:
        data = json.loads(_file(Path(folder), user).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("user") == user else {}


def write_setting(folder: str | Path, user: str, key: str, value) -> dict:
    """Set one of the user's settings (JSON-serialisable ``value``) and return them all.
    The file is replaced in one step, so a reader never sees half of it."""
    if not user:
        raise ValueError("user must be a signed-in user name; got an empty one")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = {**read_settings(folder, user), "user": user, key: value}
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
        os.replace(tmp, _file(folder, user))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data
