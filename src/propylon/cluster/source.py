"""Read the config file once: the validated config and the sha256 of its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from propylon.config import load_config, load_config_text
from propylon.config.models import GatewayConfig


def load_config_file(path: str | os.PathLike[str]) -> tuple[GatewayConfig, str]:
    """Like load_config, plus the hash of exactly the bytes that were validated.

    Raises ConfigError with every problem, as load_config does.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        load_config(path)  # raises the ConfigError that explains what is wrong
        raise  # unreachable unless the file became readable in between
    config = load_config_text(text, os.fspath(path), base_dir=file.parent)
    return config, hashlib.sha256(data).hexdigest()
