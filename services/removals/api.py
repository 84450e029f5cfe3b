"""Removals partner API (API key of a deposer): its mandates, and accept / refuse / confirm (`process.record_action`).

Another partner's mandate answers 404, exactly like a missing one; an invalid transition answers 409 with the
reason; a retried call with the same `Idempotency-Key` is applied once.
"""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from core.auth import DbSession, PartnerKey
from core.models import ApiKey, Organisation, UsedActionLink
from core.params import PageNo, PerPage, RecordId
from core.settings import get_settings
from core.ui import paginate
from services.removals.schemas import ConfirmIn, MandateOut, RefuseIn, TransitionOut
from services.removals.service import listings, process, queries
from services.removals.service.queries import MandateRow
from services.removals.service.rules import STATUS_LABELS, TRANSITIONS, MandateAction, form_problem

router = APIRouter(prefix="/api/v1", tags=["déposes"])
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Mandat introuvable (ou adressé à un autre mandataire)"},
    409: {"description": "Transition impossible depuis le statut actuel : `detail` dit pourquoi"},
}


def deposer_key(key: PartnerKey, session: DbSession) -> ApiKey:
    organisation = session.get(Organisation, key.organisation_id)
    if organisation is None or organisation.kind != "deposer":
        raise HTTPException(403, "Cette clé d'API n'est pas celle d'un mandataire (déposeur).")
    return key


DeposerKey = Annotated[ApiKey, Depends(deposer_key)]


def _out(row: MandateRow) -> MandateOut:
    return MandateOut(id=row.id, request_no=row.request_no, requester=row.requester_name,
                      requester_code=row.requester_code, marque=row.marque, modele=row.modele, vin=row.vin,
                      subscription_no=row.subscription_no, declared_location=row.declared_location,
                      lieu=row.lieu, desired_date=row.desired_date,
                      comment=row.comment, status=row.status, status_label=STATUS_LABELS[row.status],
                      reason=row.reason, removal_date=row.removal_date, box_digits=row.box_digits,
                      technician=row.technician)


def _mandate(session: DbSession, key: ApiKey, mandate_id: int) -> MandateRow:
    row = queries.for_deposer(session, deposer_id=key.organisation_id, mandate_id=mandate_id)
    if row is None:
        raise HTTPException(404, "Mandat de dépose introuvable.")
    return row


@router.get("/mandates", response_model=list[MandateOut], summary="Mandats de dépose adressés au partenaire")
def list_mandates(key: DeposerKey, session: DbSession, statut: str = "", vin: str = "",
                  page: PageNo = 1, per_page: PerPage = 100) -> list[MandateOut]:
    stmt = listings.deposer_stmt(key.organisation_id, q=vin, statut=statut)
    result = paginate(session, stmt, page=page, per_page=per_page)
    return [_out(MandateRow(**r._mapping)) for r in result.items]


@router.get("/mandates/{mandate_id}", response_model=MandateOut, responses={404: ERRORS[404]},
            summary="Un mandat de dépose")
def get_mandate(mandate_id: RecordId, key: DeposerKey, session: DbSession) -> MandateOut:
    return _out(_mandate(session, key, mandate_id))


def _act(session: DbSession, key: ApiKey, mandate_id: int, action: str, payload: MandateAction,
         idempotency_key: str | None) -> TransitionOut:
    row = _mandate(session, key, mandate_id)
    if problem := form_problem(action, payload, process.now_utc()):
        raise HTTPException(422, problem)
    target, subject = TRANSITIONS[action][1], f"mandate-{row.id}-{action}"
    if idempotency_key and (seen := _earlier_use(session, key, idempotency_key, subject)) is not None:
        if seen != subject or row.status != target:
            raise HTTPException(409, "Cette clé d'idempotence a déjà servi pour une autre action.")
        return TransitionOut(id=row.id, vin=row.vin, status=target, status_label=STATUS_LABELS[target])
    try:
        process.record_action(session, get_settings(), row.id, action, payload)
    except process.TransitionRefused as exc:
        session.rollback()
        raise HTTPException(409, exc.message) from exc
    return TransitionOut(id=row.id, vin=row.vin, status=target, status_label=STATUS_LABELS[target])


def _earlier_use(session: DbSession, key: ApiKey, idempotency_key: str, subject: str) -> str | None:
    """Record the key in the single-use ledger of action links (committed with the action): None the first
    time, else what it was used for."""
    jti = "api-" + hashlib.sha256(f"{key.id}:{idempotency_key}".encode()).hexdigest()[:32]
    inserted = session.execute(insert(UsedActionLink).values(jti=jti, purpose="removals.api", subject=subject)
                               .on_conflict_do_nothing(index_elements=["jti"]).returning(UsedActionLink.jti)).first()
    if inserted is not None:
        return None
    return session.scalar(select(UsedActionLink.subject).where(UsedActionLink.jti == jti))


IdempotencyKey = Annotated[str | None, Header(description="Rejouer la même clé n'applique l'action qu'une fois")]


@router.post("/mandates/{mandate_id}/accept", response_model=TransitionOut, responses=ERRORS,
             summary="Accepter la demande de dépose")
def accept(mandate_id: RecordId, key: DeposerKey, session: DbSession,
           idempotency_key: IdempotencyKey = None) -> TransitionOut:
    return _act(session, key, mandate_id, "accept", MandateAction(by=f"API ({key.name})"), idempotency_key)


@router.post("/mandates/{mandate_id}/refuse", response_model=TransitionOut, responses=ERRORS,
             summary="Refuser la demande de dépose (motif obligatoire)")
def refuse(mandate_id: RecordId, body: RefuseIn, key: DeposerKey, session: DbSession,
           idempotency_key: IdempotencyKey = None) -> TransitionOut:
    payload = MandateAction(by=f"API ({key.name})", reason=body.reason)
    return _act(session, key, mandate_id, "refuse", payload, idempotency_key)


@router.post("/mandates/{mandate_id}/confirm", response_model=TransitionOut, responses=ERRORS,
             summary="Signaler la dépose (le boîtier a été démonté du véhicule)")
def confirm(mandate_id: RecordId, body: ConfirmIn, key: DeposerKey, session: DbSession,
            idempotency_key: IdempotencyKey = None) -> TransitionOut:
    removal_date = body.removal_date if body.removal_date.tzinfo else body.removal_date.replace(tzinfo=process.PARIS)
    payload = MandateAction(by=f"API ({key.name})", removal_date=removal_date, box_digits=body.box_digits,
                            technician=body.technician)
    return _act(session, key, mandate_id, "confirm", payload, idempotency_key)
