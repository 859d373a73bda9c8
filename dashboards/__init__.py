"""Grafana boards, alert rules and provisioning for hinode-iot, as code (grafana-foundation-sdk).

``python -m dashboards export DIR`` writes everything Grafana's provisioning reads;
nothing here is hand-edited JSON. Board modules: ``site_energy``, ``operations``;
shared pieces: ``common``; alert rules: ``alert_rules``; the list of boards: ``catalog``.
"""
