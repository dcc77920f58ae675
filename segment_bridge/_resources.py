"""Locate the mapping files shipped with the package.

A built wheel carries ``mappings/`` inside the package (``segment_bridge/mappings``). An editable install or a
checkout has no such folder, so we fall back to the repository's top-level ``mappings/`` beside the package.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from segment_bridge.exceptions import ConfigurationError

__all__ = ["DEFAULT_MAPPING_NAME", "packaged_mapping"]

DEFAULT_MAPPING_NAME = "twilio_voice.toml"


def packaged_mapping(name: str = DEFAULT_MAPPING_NAME) -> Traversable:
    """Return the packaged mapping file ``name``.

    Raises:
        ConfigurationError: neither the installed package nor the checkout holds it.
    """
    installed = files("segment_bridge") / "mappings" / name
    if installed.is_file():
        return installed
    checkout = Path(__file__).resolve().parent.parent / "mappings" / name
    if checkout.is_file():
        return checkout
    raise ConfigurationError(
        f"packaged mapping {name!r} not found in {installed} or {checkout}; reinstall segment-bridge"
    )
