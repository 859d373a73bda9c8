from pydantic import BaseModel, ConfigDict

from hinode.contract import DeviceKind, MetricName


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DeviceKind = DeviceKind.METER
    metric: MetricName = "power_total"
