"""The virtual glucometer: every reading is kept as a numbered record; records leave the meter only through
the Record Access Control Point (0x2A52): "report stored records" (all, or >= a sequence number) notifies
each 0x2A18 (plus 0x2A34 context for some records) and then indicates the RACP response."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

from bumble import att
from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from simulators.ble import encoders
from simulators.ble.device_base import Reading, VirtualDevice, uuid16

log = logging.getLogger(__name__)

MEASUREMENT = 0x2A18
CONTEXT = 0x2A34
RACP = 0x2A52

# RACP op codes, operators and response codes (Glucose Service 1.0, 3.3.x)
REPORT_STORED_RECORDS = 0x01
ABORT_OPERATION = 0x03
REPORT_NUMBER_OF_RECORDS = 0x04
OPERATOR_ALL = 0x01
OPERATOR_GREATER_OR_EQUAL = 0x03
FILTER_SEQUENCE = 0x01
SUCCESS = 0x01
OP_CODE_NOT_SUPPORTED = 0x02
INVALID_OPERATOR = 0x03
OPERATOR_NOT_SUPPORTED = 0x04
INVALID_OPERAND = 0x05
NO_RECORDS_FOUND = 0x06
CCCD_IMPROPERLY_CONFIGURED = 0xFD

MEALS = ("preprandial", "postprandial", "fasting")


@dataclass
class GlucoseRecord:
    sequence: int
    measurement: bytes
    context: bytes | None
    description: dict[str, Any]


class Glucometer(VirtualDevice):
    category = "glucose"
    value_keys = frozenset({"glucose", "glucose_meal"})
    service_uuid = 0x1808
    has_clock = True

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.records: list[GlucoseRecord] = []
        self.racp_requests = 0

    def services(self) -> list[Service]:
        racp_value = CharacteristicValue(write=self._on_racp_write)
        return [Service(uuid16(self.service_uuid), [
            self.characteristic(MEASUREMENT, Characteristic.Properties.NOTIFY),
            self.characteristic(CONTEXT, Characteristic.Properties.NOTIFY),
            self.characteristic(RACP, Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
                                racp_value, Characteristic.WRITEABLE),
        ])]

    def take(self, values: dict[str, Any], special: str | None) -> Reading:
        mg_dl = values.get("glucose", self.rng.randint(80, 180))
        if isinstance(mg_dl, bool) or not isinstance(mg_dl, (int, float)):
            raise ValueError(f"values.glucose: expected mg/dL as a number, got {mg_dl!r}")
        sequence = (self.records[-1].sequence + 1) if self.records else 1
        when = self.clock.now()
        # every other record carries a meal context, as a meter does when the user tags the reading
        meal = values.get("glucose_meal", MEALS[sequence % len(MEALS)] if sequence % 2 else None)
        payload = encoders.encode_glucose(sequence, when, mg_dl, sample="capillary_whole_blood",
                                          location="finger", context_follows=meal is not None, special=special)
        context = encoders.encode_glucose_context(sequence, meal=meal) if meal is not None else None
        description = {"values": {"glucose": mg_dl}, "special": special, "device_time": when.isoformat(),
                       "sequence": sequence, "glucose_meal": meal}
        self.records.append(GlucoseRecord(sequence, payload, context, description))
        return Reading(payload, description, MEASUREMENT)

    async def deliver(self, reading: Reading) -> dict[str, Any]:
        # a meter turns off when the strip comes out: a connected gateway sees the link drop and comes back
        # to pull the new record through RACP
        if self.device.connections:
            self._spawn(self._drop_connections())
        return {"device": self.id, "delivery": "stored", **reading.description}

    @property
    def stored_count(self) -> int:
        return len(self.records)

    def _on_racp_write(self, connection: Connection, value: bytes) -> None:
        value = bytes(value)
        if connection not in self.subscribers(RACP):
            raise att.ATT_Error(error_code=CCCD_IMPROPERLY_CONFIGURED, message="RACP indications are off")
        self.racp_requests += 1
        self._spawn(self._answer_racp(connection, value))

    def _select(self, value: bytes) -> tuple[int, list[GlucoseRecord]]:
        if len(value) < 2:
            return INVALID_OPERATOR, []
        op_code, operator = value[0], value[1]
        if op_code not in (REPORT_STORED_RECORDS, REPORT_NUMBER_OF_RECORDS):
            return OP_CODE_NOT_SUPPORTED, []
        if operator == OPERATOR_ALL and len(value) == 2:
            selected = list(self.records)
        elif operator == OPERATOR_GREATER_OR_EQUAL:
            if len(value) != 5 or value[2] != FILTER_SEQUENCE:
                return INVALID_OPERAND, []
            (first,) = struct.unpack_from("<H", value, 3)
            selected = [r for r in self.records if r.sequence >= first]
        elif operator in (0x02, 0x04, 0x05, 0x06):    # <=, within range, first, last: not needed by gateways
            return OPERATOR_NOT_SUPPORTED, []
        else:
            return INVALID_OPERATOR, []
        return SUCCESS, selected

    async def _answer_racp(self, connection: Connection, value: bytes) -> None:
        racp = self._characteristics[RACP]
        request = value[0] if value else 0
        code, selected = self._select(value)
        try:
            if code == SUCCESS and request == REPORT_NUMBER_OF_RECORDS:
                await self.device.indicate_subscriber(connection, racp, encoders.encode_racp_number(len(selected)))
                return
            if code == SUCCESS and not selected:
                code = NO_RECORDS_FOUND
            for record in selected:
                await self.device.notify_subscriber(connection, self._characteristics[MEASUREMENT], record.measurement)
                if record.context is not None:
                    await self.device.notify_subscriber(connection, self._characteristics[CONTEXT], record.context)
            await self.device.indicate_subscriber(connection, racp, encoders.encode_racp_response(request, code))
        except Exception as exc:    # the link dropped mid-transfer; the gateway asks again next time
            log.debug("%s RACP answer interrupted: %s", self.id, exc)

    def state(self) -> dict[str, Any]:
        state = super().state()
        state["stored"] = len(self.records)
        state["last_sequence"] = self.records[-1].sequence if self.records else None
        return state
