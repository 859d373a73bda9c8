"""domains.forecast in cloud.yaml: refusals name the key and what was expected."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud.domains.forecast.config import ForecastConfig

PRESS = {"site": "sme-press", "target": "demand", "meters": [{"device": "main-meter"}]}


def test_the_design_example_is_valid_and_gives_meter_refs():
    config = ForecastConfig.model_validate({"targets": [
        PRESS, {"site": "hitachi-omika", "target": "pv", "meters": [{"device": "pv-inverter", "metric": "energy_export"}],
                "kwp": 400}], "weather_csv": None})
    pv = config.target("hitachi-omika", "pv")
    assert pv is not None and pv.spec().kwp == 400.0
    assert [(m.site, m.device, m.metric) for m in pv.meter_refs()] == [("hitachi-omika", "pv-inverter", "energy_export")]
    assert config.target("sme-press", "pv") is None


@pytest.mark.parametrize("section, text", [
    ({"targets": [{**PRESS, "target": "pv"}]}, "target pv of site 'sme-press' needs kwp"),
    ({"targets": [PRESS, PRESS]}, "site 'sme-press' has target 'demand' twice"),
    ({"targets": [{**PRESS, "meters": []}]}, "targets.0.meters"),
    ({"targets": [{**PRESS, "target": "wind"}]}, "targets.0.target"),
    ({"targets": [PRESS], "horizon": 2}, "horizon"),
])
def test_refusals_name_the_key(section, text):
    with pytest.raises(ValidationError) as error:
        ForecastConfig.model_validate(section)
    assert text in str(error.value)
