"""BLE vitals source: standard Bluetooth health devices of a visiting nurse's kit.

See README.md in this folder for the supported devices, the config keys, the two stacks
(bumble, bleak/BlueZ), and what the tests exercise.
"""

from edge_agent.sources.ble.config import Config
from edge_agent.sources.ble.source import Source

__all__ = ["Config", "Source"]
