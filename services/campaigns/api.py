"""Campaigns JSON API for partners (API key; every query scoped to the key's organisation)."""

from fastapi import APIRouter, HTTPException

from core.auth import DbSession, PartnerKey
from core.db import scoped
from core.params import PageNo, PerPage, RecordId
from core.ui import paginate
from services.campaigns.models import Driver
from services.campaigns.schemas import DriverOut, TestMailOut
from services.campaigns.service import testmail as service

router = APIRouter(prefix="/api/v1", tags=["campagnes"])


@router.get("/drivers", response_model=list[DriverOut], summary="Conducteurs de l'organisation")
def list_drivers(key: PartnerKey, session: DbSession, page: PageNo = 1,
                 per_page: PerPage = 100) -> list[Driver]:
    stmt = scoped(Driver, key.organisation_id).order_by(Driver.id)
    return paginate(session, stmt, page=page, per_page=per_page).items


@router.get("/test-mails/{test_mail_id}", response_model=TestMailOut, summary="Statut d'un envoi de test")
def get_test_mail(test_mail_id: RecordId, key: PartnerKey, session: DbSession) -> TestMailOut:
    row = service.get_test_mail(session, organisation_id=key.organisation_id, test_mail_id=test_mail_id)
    if row is None:
        raise HTTPException(404, "Envoi de test introuvable.")
    t, o = row.test_mail, row.outbox
    return TestMailOut(id=t.id, driver_id=t.driver_id, subject=t.subject, created_at=t.created_at,
                       workflow_id=t.workflow_id, status=o.status if o else "pending",
                       attempts=o.attempts if o else 0, last_reply=o.last_reply if o else None,
                       acknowledged_at=t.acknowledged_at)
