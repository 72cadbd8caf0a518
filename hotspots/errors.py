"""The exceptions hotspots raises: one hierarchy, messages that say how to fix the input."""

from __future__ import annotations


class HotspotsError(Exception):
    """Base class of every error hotspots raises on purpose."""


class ValidationError(HotspotsError, ValueError):
    """An argument of a public function is wrong (shape, units, range, choice); raised by
    the ``check_*`` helpers of :mod:`hotspots.validate`, the message names the argument."""


class ConfigError(HotspotsError, ValueError):
    """A configuration or mapping file is wrong; the message names the file and key."""


class InputError(HotspotsError, ValueError):
    """An input file cannot be read at all (not a row problem: those are rejections)."""


class GeodataError(HotspotsError):
    """Boundary files are missing, corrupt or cannot be fetched."""


class CRSError(ValidationError):
    """Data in the wrong coordinate reference system (analysis works in EPSG:27700)."""


class StoreError(HotspotsError):
    """The incident store cannot be opened or written."""


class FetchError(HotspotsError):
    """An online source (police.uk API, ONS, Nomis) refused, failed or answered badly."""
