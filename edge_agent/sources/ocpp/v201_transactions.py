"""The transactions of one OCPP 2.0.1 station: ``TransactionEvent`` Started / Updated / Ended as
the source's transaction start / stop, samples and connector status.

* The meter start is the register of the Started event; a station that sends none there gets its
  start reported with the first register a later event of the transaction carries (and the
  Started event's timestamp).
* A repeated event (same transaction and ``seqNo``, sent again because our answer got lost) is
  reported once.
* 2.0.1's StatusNotification only knows Available / Occupied / Reserved / Unavailable / Faulted;
  the transaction's ``chargingState`` tells Charging / SuspendedEV / SuspendedEVSE apart, so while
  a transaction runs that is the status reported, when it changes. Queued (offline) events do not
  change the status: theirs is older than what the station reports now. (Timestamps are not
  compared for this: a station without a clock battery boots in 1970.)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from edge_agent.sources.ocpp.model import ChargerEvents, Sample, TransactionStart, TransactionStop
from edge_agent.sources.ocpp.v201_samples import energy_register_wh

_REMEMBERED_ENDED = 32          # ended transactions whose repeated events are still recognised
_STATUS_OF_CHARGING_STATE = {"Charging": "Charging", "SuspendedEV": "SuspendedEV", "SuspendedEVSE": "SuspendedEVSE",
                             "EVConnected": "Occupied", "Idle": "Occupied"}


@dataclass(slots=True)
class _Transaction:
    evse_id: int
    started_ts_ms: int | None = None      # set by the Started event
    id_tag: str = ""
    start_reported: bool = False
    status: str = ""                      # from the last chargingState
    seq_nos: set[int] = field(default_factory=set)


@dataclass(slots=True)
class TransactionEvent:
    """One TransactionEvent, its samples already converted."""

    event_type: str
    ts_ms: int
    seq_no: int
    transaction_id: str
    evse_id: int | None = None
    id_tag: str = ""
    charging_state: str | None = None
    stopped_reason: str | None = None
    samples: list[Sample] = field(default_factory=list)
    offline: bool = False


class Transactions:
    def __init__(self, events: ChargerEvents):
        self.events = events
        self._running: dict[str, _Transaction] = {}
        self._ended: deque[str] = deque(maxlen=_REMEMBERED_ENDED)

    def running_on(self, evse_id: int) -> str | None:
        """The newest transaction on the EVSE (an older one whose Ended never came is stale)."""
        return next((tx for tx, state in reversed(self._running.items()) if state.evse_id == evse_id), None)

    def note(self, transaction_id: str, evse_id: int) -> None:
        """A transaction that started before this connection (the agent restarted, or the station
        reconnected): its start is not reported again."""
        self._running.setdefault(transaction_id, _Transaction(evse_id=evse_id, start_reported=True))

    def on_status(self, evse_id: int, status: str, ts_ms: int) -> None:
        transaction = self._running.get(self.running_on(evse_id) or "")
        if status == "Occupied" and transaction is not None and transaction.status:
            status = transaction.status
        self.events.on_status(evse_id, status, "", ts_ms)

    def on_event(self, event: TransactionEvent) -> None:
        if event.transaction_id in self._ended:
            return
        transaction = self._running.get(event.transaction_id)
        if transaction is None:
            transaction = self._running[event.transaction_id] = _Transaction(evse_id=event.evse_id or 0)
        elif event.evse_id is not None:
            transaction.evse_id = event.evse_id
        if event.seq_no in transaction.seq_nos:
            return
        transaction.seq_nos.add(event.seq_no)
        transaction.id_tag = transaction.id_tag or event.id_tag
        if event.event_type == "Started":
            transaction.started_ts_ms = event.ts_ms

        self._report_start_once_metered(event, transaction)
        if event.samples:
            self.events.on_samples(transaction.evse_id, event.transaction_id, event.samples)
        if event.event_type == "Ended":
            self._end(event)
        elif event.charging_state in _STATUS_OF_CHARGING_STATE and not event.offline:
            status = _STATUS_OF_CHARGING_STATE[event.charging_state]
            if status != transaction.status:
                transaction.status = status
                self.events.on_status(transaction.evse_id, status, "", event.ts_ms)

    def _report_start_once_metered(self, event: TransactionEvent, transaction: _Transaction) -> None:
        if transaction.start_reported or transaction.started_ts_ms is None:
            return
        meter_start = energy_register_wh(event.samples, "Transaction.Begin", latest=False)
        if meter_start is None and event.event_type != "Ended":
            return
        if meter_start is None:     # ended without a register ever: an empty session rather than none
            meter_start = energy_register_wh(event.samples, "Transaction.End", latest=True) or 0.0
        transaction.start_reported = True
        self.events.on_transaction_started(TransactionStart(
            connector=transaction.evse_id, transaction_id=event.transaction_id, id_tag=transaction.id_tag,
            meter_start_wh=meter_start, ts_ms=transaction.started_ts_ms))

    def _end(self, event: TransactionEvent) -> None:
        self._running.pop(event.transaction_id, None)
        self._ended.append(event.transaction_id)
        self.events.on_transaction_ended(TransactionStop(
            transaction_id=event.transaction_id, ts_ms=event.ts_ms,
            meter_stop_wh=energy_register_wh(event.samples, "Transaction.End", latest=True),
            # 2.0.1 lets the station omit the reason only when it is Local
            reason=event.stopped_reason or "Local"))
