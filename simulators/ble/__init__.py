"""Virtual BLE health devices (bumble) for tests and the demo: see README.md."""

from simulators.ble.kit import KIT_DEVICES, VirtualKit, advertised_name, device_address, device_name

__all__ = ["KIT_DEVICES", "VirtualKit", "advertised_name", "device_address", "device_name"]
