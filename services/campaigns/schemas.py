"""JSON shapes of the campaigns partner API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DriverOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    matricule: str
    civilite: str | None
    nom: str
    prenom: str
    email: str | None
    code_postal: str | None


class TestMailOut(BaseModel):
    __test__ = False
    id: int
    driver_id: int
    subject: str
    created_at: datetime
    workflow_id: str | None
    status: str
    attempts: int
    last_reply: str | None
    acknowledged_at: datetime | None
