"""What the Espace Conducteur shows: the state that is recorded, per vehicle and per kind of request.

A request is "asked" while a follow-up of its family runs and nothing was answered since it started; once answered
the page says what was recorded («Relevé reçu le …»), and once every follow-up of a family is closed it says so.
"""

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.campaigns.models import FollowUp, OdometerReading, Vehicle
from services.campaigns.service.driverworkflows import STATUS_LABELS


@dataclass
class Request:
    """The driver's latest follow-up of one family: running (asked) or closed (with its outcome)."""

    followup: FollowUp

    @property
    def open(self) -> bool:
        return self.followup.status == "en_cours"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.followup.status, self.followup.status)


@dataclass
class SpaceState:
    requests: dict[str, Request] = field(default_factory=dict)  # family → latest follow-up
    readings: dict[int, OdometerReading] = field(default_factory=dict)  # vehicle id → latest reading

    def asked(self, family: str) -> bool:
        request = self.requests.get(family)
        return request is not None and request.open

    def reading_asked(self, vehicle: Vehicle) -> bool:
        """«Relevé demandé»: a Compteurs follow-up runs and this vehicle got no reading since it started."""
        request, reading = self.requests.get("compteurs"), self.readings.get(vehicle.id)
        if request is None or not request.open:
            return False
        return reading is None or reading.created_at < request.followup.started_at

    def closed(self, family: str) -> Request | None:
        """The family's latest follow-up when it is closed and none runs (the link's workflow is over)."""
        request = self.requests.get(family)
        return request if request is not None and not request.open else None


def space_state(session: Session, *, driver_id: int, vehicle_ids: list[int]) -> SpaceState:
    """The driver's requests (a running one wins over closed ones) and each vehicle's latest reading."""
    state = SpaceState()
    followups = session.scalars(select(FollowUp).where(FollowUp.driver_id == driver_id)
                                .order_by(FollowUp.started_at, FollowUp.id))
    for followup in followups:
        current = state.requests.get(followup.family)
        if current is None or not current.open or followup.status == "en_cours":
            state.requests[followup.family] = Request(followup)
    readings = session.scalars(select(OdometerReading).where(OdometerReading.vehicle_id.in_(vehicle_ids))
                               .order_by(OdometerReading.created_at, OdometerReading.id))
    for reading in readings:
        state.readings[reading.vehicle_id] = reading
    return state
