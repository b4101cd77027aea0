"""swapio: swap I/O to anything.

Page-sized data is swapped out to, and back in from, pluggable backends through one hook
interface (:mod:`swapio.hookspecs`), under a reserve-aware asyncio scheduler.
"""

from __future__ import annotations

from swapio.area import Capabilities, CreateRequest, SwapArea, SwapInfo
from swapio.hookspecs import hookimpl
from swapio.location import Location
from swapio.plugins import BackendInfo, PluginHost

__version__ = "0.1.0"

__all__ = [
    "BackendInfo",
    "Capabilities",
    "CreateRequest",
    "Location",
    "PluginHost",
    "SwapArea",
    "SwapInfo",
    "__version__",
    "hookimpl",
]
