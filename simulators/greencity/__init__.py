"""The green industrial city demo (issue 10): a deterministic history model of the demo sites
(``model``, ``sites``), where the plant's history meets the live PV site (``omika``) and the live
MQTT publisher of the SME sites (``live``, ``python -m simulators greencity``). README.md here."""
