"""Shared by the green-city domains (co2, interchange, roadmap, forecast): the JST calendar of
30-minute slots, fiscal years and holidays, and the per-slot energy of meters. Not a domain
(the leading ``_`` keeps ``install_domains`` from loading it)."""
