"""One allow-listed device: find it, connect, prepare, receive, and start over when it sleeps.

A session runs as its own task; nothing it meets (a stack error, a corrupt value, a device that
vanishes) reaches another device's session. One connection:

1. wait for the device's advertisement (the shared :class:`~edge_agent.sources.ble.scanner.Scanner`,
   allow-list: the configured address, else the exact name);
2. connect (the link discovers the services);
3. pick the model override (configured > matched by advertised name > generic of the category);
4. pair when the config gives a passkey or the model requires pairing (config passkey > model's);
5. set the device clock (Current Time 0x2A2B) when the device has it and the model says so;
6. scales: read the feature 0x2A9E (weight/height resolution);
7. subscribe to the category's characteristics; device up;
8. glucometers: ask the RACP for the records after the last one handed on (all the first time);
9. wait for the disconnection (device down with the reason), back off, go to 1.

Every value is decoded on arrival; a DecodeError counts ``decode_<code>`` and the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from edge_agent.sources.ble import decoders, gatt_ids
from edge_agent.sources.ble.config import Config, Device
from edge_agent.sources.ble.glucose_records import DeviceMemory, GlucoseAssembler
from edge_agent.sources.ble.link import Advert, GattConnection, GattLink, LinkError
from edge_agent.sources.ble.measurement import DecodeError, Measurement
from edge_agent.sources.ble.models import ModelError, generic_model, load_model, match_model
from edge_agent.sources.ble.scanner import Scanner
from edge_agent.sources.base import SourceContext, now_ms
from hinode.backoff import Backoff
from hinode.vitals import Category

MEASUREMENT_CHARACTERISTICS = gatt_ids.MEASUREMENTS
CURRENT_TIME = gatt_ids.CURRENT_TIME
WEIGHT_FEATURE = gatt_ids.WEIGHT_SCALE_FEATURE
GLUCOSE_MEASUREMENT = gatt_ids.GLUCOSE_MEASUREMENT
GLUCOSE_CONTEXT = gatt_ids.GLUCOSE_MEASUREMENT_CONTEXT
RACP = gatt_ids.RECORD_ACCESS_CONTROL_POINT

# A device clock further ahead than this is not believed (a cuff whose clock was never set may say 2030).
DEVICE_TIME_AHEAD_LIMIT = timedelta(minutes=10)
CLOCK_SLACK_MS = 60_000
DISCONNECT_TIMEOUT_S = 3.0

# (device id, profile, measurement, ts_ms, time_source) -> None; the source's intake into the VisitBook
Intake = Callable[[str, str, Measurement, int, str], None]


def _reason(exc: LinkError) -> str:
    return f"{exc.code}: {exc.message}"[:400]


class DeviceSession:
    def __init__(self, device: Device, config: Config, link: GattLink, scanner: Scanner, context: SourceContext,
                 intake: Intake, memory: DeviceMemory, profile: str):
        self.device = device
        self.config = config
        self.link = link
        self.scanner = scanner
        self.context = context
        self.intake = intake
        self.memory = memory
        self.profile = profile
        self.log: logging.Logger = context.log
        self.model = self._configured_model()
        self.clock_set = False
        self.decode_context = decoders.DecodeContext()
        self.connections = 0                     # completed connect+subscribe cycles (tests, status)
        self._glucose = GlucoseAssembler(self._hand_on_record)
        self._racp_answer: asyncio.Future | None = None
        self._records_received = 0
        self.record_transfers = 0                # finished RACP transfers (tests, status)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        backoff = Backoff(self.config.reconnect.initial_s, self.config.reconnect.max_s)
        while True:
            advert = await self.scanner.find(self.device.id, self._allowed, self.config.scan_timeout_s)
            if advert is None:
                self.context.device_down(self.device.id, "not_found: not advertising (asleep, switched off "
                                                         "or out of range); still scanning")
                continue                          # the shared scan is cheap: keep listening
            reason, was_up = await self._one_connection(advert)
            self.context.device_down(self.device.id, reason)
            if was_up:
                backoff.reset()
            await asyncio.sleep(backoff.next())

    def _allowed(self, advert: Advert) -> bool:
        return self.device.matches(advert.address, advert.name)

    async def _one_connection(self, advert: Advert) -> tuple[str, bool]:
        """Connect, prepare and wait for the disconnection; (reason it ended, whether it was up)."""
        try:
            connection = await self.scanner.connect(advert.address, self.config.connect_timeout_s)
        except LinkError as exc:
            self.context.count_error(self.device.id, exc.code)
            return _reason(exc), False
        up = False
        try:
            await self._prepare(connection, advert)
            self.context.device_up(self.device.id)
            self.connections += 1
            up = True
            if self.device.category is Category.GLUCOSE and connection.has(RACP):
                await self._pull_records(connection)
            await connection.wait_disconnected()
            return "disconnected: the device ended the connection (asleep or out of range)", True
        except LinkError as exc:
            self.context.count_error(self.device.id, exc.code)
            return _reason(exc), up
        except Exception as exc:                  # a bug here must not end the session task
            self.context.count_error(self.device.id, "internal")
            self.log.warning("%s: device %s: unexpected error", self.config.name, self.device.id, exc_info=True)
            return f"internal: {type(exc).__name__}", up
        finally:
            self._glucose.flush()
            try:
                async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                    await connection.disconnect()
            except (TimeoutError, LinkError):
                pass

    # ------------------------------------------------------------------ preparing a connection

    def _configured_model(self):
        if self.device.model:
            return load_model(self.device.model, self.config._profile_dirs)
        return None

    def _model_for(self, advert_name: str):
        if self.device.model:
            return self.model
        try:
            matched = match_model(advert_name, self.config._profile_dirs) if advert_name else None
        except ModelError as exc:             # a broken site model file: the generic model still works
            self.context.count_error(self.device.id, "model_file")
            self.log.warning("%s: device %s: %s", self.config.name, self.device.id, exc)
            matched = None
        if matched is not None and matched.category == self.device.category:
            return matched
        return generic_model(self.device.category)

    async def _prepare(self, connection: GattConnection, advert: Advert) -> None:
        self.model = self._model_for(advert.name)
        self.clock_set = False
        configured = self.device.configured_passkey()
        if configured or self.model.pairing.required:
            await connection.pair(configured or self.model.pairing.passkey)
        if self.model.clock.set_time and connection.has(CURRENT_TIME):
            await self._set_clock(connection)
        self.decode_context = decoders.DecodeContext()
        if self.device.category is Category.WEIGHT and connection.has(WEIGHT_FEATURE):
            try:
                feature = await connection.read(WEIGHT_FEATURE)
                self.decode_context = decoders.DecodeContext(weight_resolution=decoders.decode_weight_feature(feature))
            except DecodeError as exc:
                self.context.count_error(self.device.id, "decode_" + exc.code)
        wanted = MEASUREMENT_CHARACTERISTICS[self.device.category]
        present = [uuid for uuid in wanted if connection.has(uuid)]
        if not present:
            raise LinkError("gatt", f"the device offers none of {', '.join(f'0x{u:04X}' for u in wanted)}")
        if self.device.category is Category.GLUCOSE:
            await self._subscribe_glucose(connection)
        else:
            for uuid in present:
                await connection.subscribe(uuid, lambda data, uuid=uuid: self.handle(uuid, data))

    async def _set_clock(self, connection: GattConnection) -> None:
        try:
            await connection.write(CURRENT_TIME, decoders.encode_current_time(datetime.now(self.config.zone)))
            self.clock_set = True
            self.memory.note_clock_set(self.device.id, now_ms())
        except LinkError as exc:
            if exc.code == "disconnected":
                raise
            self.context.count_error(self.device.id, "clock_set")     # readings then carry the gateway's time
            self.log.info("%s: device %s refused the time: %s", self.config.name, self.device.id, exc.message)

    async def _subscribe_glucose(self, connection: GattConnection) -> None:
        await connection.subscribe(GLUCOSE_MEASUREMENT, lambda data: self.handle(GLUCOSE_MEASUREMENT, data))
        if connection.has(GLUCOSE_CONTEXT):
            await connection.subscribe(GLUCOSE_CONTEXT, lambda data: self.handle(GLUCOSE_CONTEXT, data))
        if connection.has(RACP):
            await connection.subscribe(RACP, lambda data: self.handle(RACP, data))

    async def _pull_records(self, connection: GattConnection) -> None:
        """Ask for the records after the last one handed on (all of them the first time)."""
        self._racp_answer = asyncio.get_running_loop().create_future()
        try:
            await connection.write(RACP, decoders.encode_racp_report(self.memory.last(self.device.id)))
        except BaseException:
            self._racp_answer = None
            raise
        await self._await_racp_answer(connection)

    async def _await_racp_answer(self, connection: GattConnection) -> None:
        """The transfer ends with the RACP answer; records arriving keep the wait alive. A device that
        disconnects mid-transfer keeps its records: the next connection asks again."""
        answer_future, answer = self._racp_answer, None
        gone = asyncio.ensure_future(connection.wait_disconnected())
        try:
            while True:
                before = self._records_received
                done, _ = await asyncio.wait({answer_future, gone}, timeout=self.config.gatt_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if answer_future in done:
                    answer = answer_future.result()
                    break
                if gone in done:
                    break
                if self._records_received == before:
                    self.context.count_error(self.device.id, "racp_timeout")
                    break
        finally:
            gone.cancel()
            self._racp_answer = None
            self._glucose.flush()
        self.record_transfers += 1
        if answer is not None and not answer.ok:
            self.context.count_error(self.device.id, f"racp_{answer.response}")

    # ------------------------------------------------------------------ values

    def handle(self, characteristic: int, data: bytes) -> None:
        """A notified or indicated value; never raises (the stack calls this)."""
        received = now_ms()
        try:
            if characteristic == RACP:
                answer = decoders.decode_racp(data)
                if answer.done and self._racp_answer is not None and not self._racp_answer.done():
                    self._racp_answer.set_result(answer)
                return
            if characteristic == GLUCOSE_CONTEXT:
                sequence, text = decoders.decode_glucose_context(data)
                if not self._glucose.context(sequence, text):
                    self.context.count_error(self.device.id, "glucose_context_unmatched")
                return
            measurement = decoders.decode(characteristic, data, model=self.model, context=self.decode_context)
        except DecodeError as exc:
            self.context.count_error(self.device.id, "decode_" + exc.code)
            return
        except Exception:
            self.context.count_error(self.device.id, "decode_internal")
            self.log.warning("%s: device %s: decoder failed on 0x%04X", self.config.name, self.device.id,
                             characteristic, exc_info=True)
            return
        if characteristic == GLUCOSE_MEASUREMENT:
            self._records_received += 1
            if not self.memory.is_new(self.device.id, measurement.sequence):
                self.context.count_error(self.device.id, "glucose_duplicate")
                return
            if decoders.glucose_context_follows(data):
                self._glucose.record(measurement, received)     # held until its context arrives
            else:
                self._glucose.flush()
                self._hand_on_record(measurement, received)
            return
        self._hand_on(measurement, received)

    def _hand_on_record(self, measurement: Measurement, received_ms: int) -> None:
        if not self.memory.is_new(self.device.id, measurement.sequence):
            return
        if self._hand_on(measurement, received_ms):
            self.memory.record(self.device.id, measurement.sequence)

    def _hand_on(self, measurement: Measurement, received_ms: int) -> bool:
        ts_ms, time_source = self.timestamp(measurement, received_ms)
        try:
            self.intake(self.device.id, self.profile, measurement, ts_ms, time_source)
            return True
        except Exception:
            self.context.count_error(self.device.id, "visit_book")
            self.log.error("%s: device %s: could not hold a reading", self.config.name, self.device.id,
                           exc_info=True)
            return False

    def timestamp(self, measurement: Measurement, received_ms: int) -> tuple[int, str]:
        """(UTC ms, time_source): the device's clock when it was set now or the model trusts it,
        and the time is plausible; else the time the value arrived."""
        trusted = self.clock_set or (self.model is not None and self.model.clock.trust_device_time)
        if measurement.device_time is None or not trusted:
            return received_ms, "gateway"
        local = measurement.device_time.replace(tzinfo=self.config.zone)
        utc_ms = int(local.astimezone(timezone.utc).timestamp() * 1000)
        if utc_ms - received_ms > DEVICE_TIME_AHEAD_LIMIT.total_seconds() * 1000:
            self.context.count_error(self.device.id, "device_time_ahead")
            return received_ms, "gateway"
        first_set = self.memory.clock_first_set_ms(self.device.id)
        if first_set is not None and utc_ms < first_set - CLOCK_SLACK_MS:
            self.context.count_error(self.device.id, "device_time_unset")   # stamped before anyone set the clock
            return received_ms, "gateway"
        return utc_ms, "device"
