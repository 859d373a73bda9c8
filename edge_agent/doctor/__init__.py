"""``python -m edge_agent doctor <check>``: commissioning checks that print a report and draft a site.yaml.

Checks: ``modbus``, ``opcua``, ``ocpp``, ``ble``, ``site``; see README.md in this folder.
"""

from edge_agent.doctor.report import Finding, Report

__all__ = ["Finding", "Report"]
