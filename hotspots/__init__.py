"""hotspots: hotspot maps and ranked problem locations for community-safety tasking.

The public API, re-exported explicitly. Analysis functions are pure (no I/O); reading
and writing live in ``geography`` (boundaries), ``ingest.read_*``, ``store`` and ``jobs``.
"""

from .analysis import Analysis, AnalysisSpec, GridSpec, KdeSpec, analyse, resolve_spec
from .assign import assign_codes, assign_points
from .config import Config, load_config
from .errors import (
    ConfigError,
    CRSError,
    GeodataError,
    HotspotsError,
    InputError,
    StoreError,
    ValidationError,
)
from .geography import install_geodata, read_layer, read_layers, study_area
from .ingest import IngestResult, Mapping, read_export, read_mapping, to_incidents
from .summary import Period, area_summary, month_period, parse_period

__all__ = [
    "Analysis", "AnalysisSpec", "GridSpec", "KdeSpec", "ValidationError", "analyse",
    "resolve_spec", "CRSError", "Config", "ConfigError", "GeodataError", "HotspotsError",
    "IngestResult",
    "InputError", "Mapping", "Period", "StoreError", "area_summary", "assign_codes",
    "assign_points", "install_geodata", "load_config", "month_period", "parse_period",
    "read_export", "read_layer", "read_layers", "read_mapping", "study_area", "to_incidents",
]
__version__ = "0.1.0"
