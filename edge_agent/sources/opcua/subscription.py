"""One OPC UA subscription over all resolved devices, and what the watchdog needs to know.

asyncua's own Subscription queues notifications one by one; we take each publish
response whole instead, so one publishing cycle becomes one batch per device. The
source owns the watchdog and the reconnect (asyncua's built-in recovery re-creates
items with the old NodeIds, which breaks when a restarted server renumbers its
namespaces), so this subscription is not registered with the client's recovery.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Callable

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from edge_agent.sources.opcua.config import Config
from edge_agent.sources.opcua.nodes import BoundNode, DeviceNodes, convert, value_timestamp
from hinode.contract import Quality, Reading

# Emit callback: (device, readings of one cycle without repeated metrics, problem counts).
Emit = Callable[[DeviceNodes, list[Reading], Counter], None]

ITEMS_PER_CALL = 100          # many servers cap MonitoredItems per CreateMonitoredItems call
_FILTER_REFUSED = {ua.StatusCodes.BadMonitoredItemFilterUnsupported, ua.StatusCodes.BadFilterNotAllowed,
                   ua.StatusCodes.BadDeadbandFilterInvalid, ua.StatusCodes.BadMonitoredItemFilterInvalid}
_DEADBAND_TYPES = {"absolute": ua.DeadbandType.Absolute, "percent": ua.DeadbandType.Percent}


class _WholePublishSubscription(Subscription):
    """Hands every publish response to ``on_publish`` in one piece."""

    def __init__(self, client: Client, params: ua.CreateSubscriptionParameters, on_publish):
        super().__init__(client.uaclient.session, params, handler=None, queue_maxsize=1)
        self._on_publish = on_publish

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        self._on_publish(publish_result.NotificationMessage.NotificationData or [])


def split_cycle(readings: list[Reading]) -> list[list[Reading]]:
    """Split one cycle's readings so no batch holds the same metric twice (order kept)."""
    batches: list[list[Reading]] = []
    seen: list[set[str]] = []
    for item in readings:
        for batch, metrics in zip(batches, seen):
            if item.metric not in metrics:
                batch.append(item)
                metrics.add(item.metric)
                break
        else:
            batches.append([item])
            seen.append({item.metric})
    return batches


class Feed:
    """A subscription with monitored items for a set of devices."""

    def __init__(self, config: Config, client: Client, emit: Emit):
        self.config = config
        self.client = client
        self.emit = emit
        self.active = False
        self.created_at = time.monotonic()
        self.last_data_at: float | None = None      # any data change, whatever its status
        self.last_good_at: float | None = None      # a data change with Good or Uncertain status
        self.server_status: ua.StatusCode | None = None   # a Bad StatusChangeNotification (subscription gone)
        self._routes: dict[int, tuple[DeviceNodes, BoundNode]] = {}
        self._next_handle = 1
        self._sub: _WholePublishSubscription | None = None

    @property
    def item_count(self) -> int:
        return len(self._routes)

    async def start(self, devices: list[DeviceNodes]) -> list[DeviceNodes]:
        """Create the subscription and items; returns devices whose items the server refused."""
        publishing = self.config.publishing_interval_ms
        keepalive = max(3, math.ceil(5000 / publishing))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=publishing, RequestedMaxKeepAliveCount=keepalive,
            RequestedLifetimeCount=max(3 * keepalive, math.ceil(60_000 / publishing)),
            MaxNotificationsPerPublish=0, PublishingEnabled=True, Priority=0)
        self._sub = _WholePublishSubscription(self.client, params, self._on_publish)
        self.active = True
        await self._sub.init()
        self.created_at = time.monotonic()
        return await self.add(devices)

    async def add(self, devices: list[DeviceNodes]) -> list[DeviceNodes]:
        refused: list[DeviceNodes] = []
        for device in devices:
            if not await self._add_device(device):
                refused.append(device)
        return refused

    def _filter(self) -> ua.DataChangeFilter | None:
        deadband = self.config.deadband
        if deadband.type == "none":
            return None
        return ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValue,
                                   DeadbandType=_DEADBAND_TYPES[deadband.type], DeadbandValue=deadband.value)

    def _request(self, handle: int, bound: BoundNode, mfilter: ua.DataChangeFilter | None) -> ua.MonitoredItemCreateRequest:
        sampling = self.config.sampling_interval_ms
        queue = max(2, min(100, math.ceil(self.config.publishing_interval_ms / max(sampling, 1.0)) + 1))
        params = ua.MonitoringParameters(ClientHandle=handle, SamplingInterval=sampling, QueueSize=queue,
                                         DiscardOldest=True, Filter=mfilter)
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=bound.node_id, AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params)

    async def _create(self, device: DeviceNodes, nodes: list[BoundNode], mfilter) -> list[tuple[BoundNode, object]]:
        results: list[tuple[BoundNode, object]] = []
        for start in range(0, len(nodes), ITEMS_PER_CALL):
            chunk = nodes[start:start + ITEMS_PER_CALL]
            handles = list(range(self._next_handle, self._next_handle + len(chunk)))
            self._next_handle += len(chunk)
            for handle, bound in zip(handles, chunk):
                self._routes[handle] = (device, bound)      # notifications may beat the response
            outcome = await self._sub.create_monitored_items(
                [self._request(h, b, mfilter) for h, b in zip(handles, chunk)])
            for handle, bound, result in zip(handles, chunk, outcome):
                if isinstance(result, ua.StatusCode):
                    del self._routes[handle]
                results.append((bound, result))
        return results

    async def _add_device(self, device: DeviceNodes) -> bool:
        mfilter = self._filter()
        results = await self._create(device, device.nodes, mfilter)
        refused_filter = [b for b, r in results if isinstance(r, ua.StatusCode) and r.value in _FILTER_REFUSED]
        if refused_filter:
            # A deadband the server cannot apply (no EURange, not numeric): monitor without it.
            results = [(b, r) for b, r in results if b not in refused_filter]
            results += await self._create(device, refused_filter, None)
            self.emit(device, [], Counter({"deadband_unsupported": len(refused_filter)}))
        failed = [(b, r) for b, r in results if isinstance(r, ua.StatusCode)]
        if not failed:
            return True
        device.problems = [f"{b.metric}: {b.node_id.to_string()}: {r.name}" for b, r in failed]
        created = [r for _, r in results if not isinstance(r, ua.StatusCode)]
        self._routes = {h: route for h, route in self._routes.items() if route[0] is not device}
        if created:
            try:
                await self._sub.unsubscribe(created)
            except ua.UaStatusCodeError:
                pass
        return False

    def _on_publish(self, notifications: list) -> None:
        if not self.active:
            return
        now = time.monotonic()
        cycle: dict[str, tuple[DeviceNodes, list[Reading], Counter]] = {}
        for notification in notifications:
            if isinstance(notification, ua.StatusChangeNotification):
                if not notification.Status.is_good():
                    self.server_status = notification.Status
                continue
            if not isinstance(notification, ua.DataChangeNotification):
                continue
            for item in notification.MonitoredItems:
                route = self._routes.get(item.ClientHandle)
                if route is None:
                    continue
                device, bound = route
                data = item.Value or ua.DataValue()
                converted = convert(bound, data, value_timestamp(data))
                entry = cycle.setdefault(device.id, (device, [], Counter()))
                entry[1].append(converted.reading)
                if converted.problem:
                    entry[2][converted.problem] += 1
                self.last_data_at = now
                if converted.reading.quality is not Quality.BAD:
                    self.last_good_at = now
        for device, readings, problems in cycle.values():
            for number, batch in enumerate(split_cycle(readings)):
                self.emit(device, batch, problems if number == 0 else Counter())

    def silent_for(self, now: float) -> float:
        """Seconds since the last non-Bad data change (or since the subscription was made)."""
        return now - (self.last_good_at or self.created_at)

    async def stop(self) -> None:
        """Delete on the server, best effort: the session may already be gone."""
        self.active = False
        if self._sub is None:
            return
        try:
            await asyncio.wait_for(self._sub.delete(), self.config.timeout_s)
        except (ua.UaError, ConnectionError, OSError, asyncio.TimeoutError):
            pass
