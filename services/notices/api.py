"""Notices partner API (API key of a broker): push clients, contracts and receipts in batches, read them back.

A batch is checked whole by the Excel import's rules and saved all or nothing (422 lists each refused value). A
retried call with the same `Idempotency-Key` is applied once and gets the first answer again (pushes and the queue's
actions); the same key with another body is refused (409). Another organisation's object answers 404, exactly like
a missing one.
"""

import hashlib
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from core.auth import DbSession, PartnerKey
from core.models import ApiKey, Organisation, UsedActionLink
from core.params import PageNo, PerPage, RecordId
from core.settings import get_settings
from core.ui import today_paris
from services.notices.models import ApiReply, Client, Contract, LegalEntity, Receipt
from services.notices.schemas import (
    ClientBatch,
    ClientOut,
    ContractBatch,
    ContractOut,
    EntityOut,
    NoticeActionIn,
    NoticeActionOut,
    NoticeOut,
    ReceiptBatch,
    ReceiptOut,
    RefusedOut,
    SaveOut,
)
from services.notices.service import directory, entities, queue
from services.notices.service.directory import ClientFilters, ReceiptFilters
from services.notices.service.records import CLIENTS, CONTRACTS, RECEIPTS, Kind, SaveReport, save_batch
from services.notices.service.statuses import LABELS

router = APIRouter(prefix="/api/v1", tags=["avis d'échéance"])
BROKER_KIND = "broker"
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Introuvable (ou d'une autre organisation)"}}
SAVE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Cette clé d'idempotence a déjà servi pour une autre requête"},
    422: {"model": RefusedOut, "description": "Lot refusé : rien n'a été enregistré"},
}
IdempotencyKey = Annotated[str | None, Header(max_length=200,
                                              description="Rejouer la même clé n'applique le lot qu'une fois")]


def broker_key(key: PartnerKey, session: DbSession) -> ApiKey:
    organisation = session.get(Organisation, key.organisation_id)
    if organisation is None or organisation.kind != BROKER_KIND:
        raise HTTPException(403, "Cette clé d'API n'est pas celle d'un cabinet de courtage.")
    return key


BrokerKey = Annotated[ApiKey, Depends(broker_key)]


# --- reading ---

@router.get("/entities", response_model=list[EntityOut], summary="Entités juridiques du cabinet")
def list_entities(key: BrokerKey, session: DbSession) -> list[LegalEntity]:
    return entities.list_entities(session, organisation_id=key.organisation_id)


@router.get("/clients", response_model=list[ClientOut], summary="Clients (recherche : dossier, nom, e-mail…)")
def list_clients(key: BrokerKey, session: DbSession, q: Annotated[str, Query(max_length=200)] = "",
                 page: PageNo = 1, per_page: PerPage = 100) -> list[Client]:
    return directory.search_clients(session, organisation_id=key.organisation_id, filters=ClientFilters(q=q),
                                    page=page, per_page=per_page).items


@router.get("/clients/{client_id}", response_model=ClientOut, responses=NOT_FOUND, summary="Un client")
def get_client(client_id: RecordId, key: BrokerKey, session: DbSession) -> Client:
    client = directory.get_client(session, organisation_id=key.organisation_id, client_id=client_id)
    if client is None:
        raise HTTPException(404, "Client introuvable.")
    return client


def _contract_out(contract: Contract, client: Client, entity: LegalEntity) -> ContractOut:
    return ContractOut(id=contract.id, number=contract.number, client_id=client.id, client_number=client.number,
                       entity_code=entity.code, insurer=contract.insurer, category=contract.category,
                       observations=contract.observations, tacit_renewal=contract.tacit_renewal,
                       notice_period_months=contract.notice_period_months)


@router.get("/contracts", response_model=list[ContractOut], summary="Contrats")
def list_contracts(key: BrokerKey, session: DbSession, q: Annotated[str, Query(max_length=200)] = "",
                   page: PageNo = 1, per_page: PerPage = 100) -> list[ContractOut]:
    rows = directory.search_contracts(session, organisation_id=key.organisation_id, q=q, page=page,
                                      per_page=per_page)
    return [_contract_out(*row) for row in rows.items]


@router.get("/contracts/{contract_id}", response_model=ContractOut, responses=NOT_FOUND, summary="Un contrat")
def get_contract(contract_id: RecordId, key: BrokerKey, session: DbSession) -> ContractOut:
    contract = directory.get_contract(session, organisation_id=key.organisation_id, contract_id=contract_id)
    if contract is None:
        raise HTTPException(404, "Contrat introuvable.")
    client, entity = session.get(Client, contract.client_id), session.get(LegalEntity, contract.legal_entity_id)
    assert client is not None and entity is not None
    return _contract_out(contract, client, entity)


def _receipt_out(receipt: Receipt, contract: Contract, client: Client) -> ReceiptOut:
    return ReceiptOut(id=receipt.id, number=receipt.number, contract_id=contract.id, contract_number=contract.number,
                      client_number=client.number, period_start=receipt.period_start,
                      period_end=receipt.period_end, effect_date=receipt.effect_date, entry_date=receipt.entry_date,
                      debit_month=f"{receipt.debit_month:%Y-%m}", collection=receipt.collection,
                      receipt_type=receipt.receipt_type, premium_ht=receipt.premium_ht, taxes=receipt.taxes,
                      fees=receipt.fees, total_ttc=receipt.total_ttc, edition_date=receipt.edition_date,
                      kind=receipt.kind, outstanding=receipt.outstanding, is_proposal=receipt.is_proposal,
                      broker_advance=receipt.broker_advance)


@router.get("/receipts", response_model=list[ReceiptOut], summary="Quittances (filtre sur la date d'effet)")
def list_receipts(key: BrokerKey, session: DbSession, q: Annotated[str, Query(max_length=200)] = "",
                  effect_from: Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "",
                  effect_to: Annotated[str, Query(pattern=r"^(\d{4}-\d{2}-\d{2})?$")] = "",
                  page: PageNo = 1, per_page: PerPage = 100) -> list[ReceiptOut]:
    filters = ReceiptFilters(q=q, effect_from=_date(effect_from), effect_to=_date(effect_to))
    rows = directory.search_receipts(session, organisation_id=key.organisation_id, filters=filters, page=page,
                                     per_page=per_page)
    return [_receipt_out(*row) for row in rows.items]


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as exc:
        raise HTTPException(422, f"Date inexistante « {value} » (aaaa-mm-jj attendu).") from exc


@router.get("/receipts/{receipt_id}", response_model=ReceiptOut, responses=NOT_FOUND, summary="Une quittance")
def get_receipt(receipt_id: RecordId, key: BrokerKey, session: DbSession) -> ReceiptOut:
    receipt = directory.get_receipt(session, organisation_id=key.organisation_id, receipt_id=receipt_id)
    if receipt is None:
        raise HTTPException(404, "Quittance introuvable.")
    contract = session.get(Contract, receipt.contract_id)
    assert contract is not None
    client = session.get(Client, contract.client_id)
    assert client is not None
    return _receipt_out(receipt, contract, client)


# --- pushing (Idempotency-Key in the single-use ledger of action links, as the removals API) ---

def _ledger_id(key: ApiKey, idempotency_key: str) -> str:
    return "api-" + hashlib.sha256(f"{key.id}:{idempotency_key}".encode()).hexdigest()[:32]


def _claim(session: DbSession, jti: str, subject: str) -> str | None:
    """Claim the key for this request (committed with what it does): None the first time, else the subject of the
    first use. A concurrent first use holds the row: this waits for it to commit (or roll back and free the key)."""
    inserted = session.execute(insert(UsedActionLink).values(jti=jti, purpose="notices.api", subject=subject)
                               .on_conflict_do_nothing(index_elements=["jti"]).returning(UsedActionLink.jti)).first()
    if inserted is not None:
        return None
    return session.scalar(select(UsedActionLink.subject).where(UsedActionLink.jti == jti)) or ""


def _digest(kind: str, body: BaseModel) -> str:
    return f"{kind}:{hashlib.sha256(body.model_dump_json().encode()).hexdigest()}"


def _earlier_answer(session: DbSession, jti: str, subject: str) -> SaveOut | None:
    """Claim the key for this batch: None the first time, else the first call's answer."""
    if (seen := _claim(session, jti, subject)) is None:
        return None
    kind, digest, *answer = seen.split(":")
    if f"{kind}:{digest}" != subject or len(answer) != 2:
        raise HTTPException(409, "Cette clé d'idempotence a déjà servi pour une autre requête.")
    return SaveOut(created=int(answer[0]), updated=int(answer[1]))


def _save(session: DbSession, key: ApiKey, kind: Kind, batch: ClientBatch | ContractBatch | ReceiptBatch,
          idempotency_key: str | None, response: Response) -> SaveOut:
    subject = _digest(kind.name, batch)
    jti = _ledger_id(key, idempotency_key) if idempotency_key else None
    if jti and (earlier := _earlier_answer(session, jti, subject)) is not None:
        response.headers["Idempotent-Replayed"] = "true"
        return earlier
    items = [item.model_dump() for item in batch.items]
    result = save_batch(session, organisation_id=key.organisation_id, kind=kind, items=items, today=today_paris())
    if not isinstance(result, SaveReport):  # the ledger claim is rolled back with the batch: the key may serve again
        raise HTTPException(422, [{"index": p.index, "field": p.field, "message": p.message} for p in result])
    if jti:
        session.execute(update(UsedActionLink).where(UsedActionLink.jti == jti)
                        .values(subject=f"{subject}:{result.created}:{result.updated}"))
    return SaveOut(created=result.created, updated=result.updated)


@router.post("/clients", response_model=SaveOut, responses=SAVE_ERRORS,
             summary="Créer ou mettre à jour des clients (par dossier)")
def push_clients(batch: ClientBatch, key: BrokerKey, session: DbSession, response: Response,
                 idempotency_key: IdempotencyKey = None) -> SaveOut:
    return _save(session, key, CLIENTS, batch, idempotency_key, response)


@router.post("/contracts", response_model=SaveOut, responses=SAVE_ERRORS,
             summary="Créer ou mettre à jour des contrats (par n° de contrat)")
def push_contracts(batch: ContractBatch, key: BrokerKey, session: DbSession, response: Response,
                   idempotency_key: IdempotencyKey = None) -> SaveOut:
    return _save(session, key, CONTRACTS, batch, idempotency_key, response)


@router.post("/receipts", response_model=SaveOut, responses=SAVE_ERRORS,
             summary="Créer ou mettre à jour des quittances (par n° de quittance)")
def push_receipts(batch: ReceiptBatch, key: BrokerKey, session: DbSession, response: Response,
                  idempotency_key: IdempotencyKey = None) -> SaveOut:
    return _save(session, key, RECEIPTS, batch, idempotency_key, response)


# --- the queue «Avis d'échéances par mail» ---

StatusLetter = Literal["E", "V", "OK", "KO", "B", "A"]


@router.get("/notices", response_model=list[NoticeOut], summary="Avis d'échéance de la file d'envoi par mail")
def list_notices(key: BrokerKey, session: DbSession, dossier: Annotated[str, Query(max_length=40)] = "",
                 status: Annotated[list[StatusLetter] | None, Query(description="Statut du PDF")] = None,
                 run_id: RecordId | None = None) -> list[NoticeOut]:
    search = queue.Search(dossier=dossier.strip(), statuses=list(status or []), run_id=run_id)
    return [NoticeOut(id=n.id, number=n.number, client_number=c.number, email=n.email, status=n.status,
                      status_label=LABELS[n.status], due_date=n.due_date, created_at=n.created_at,
                      sent_at=n.sent_at, observations=n.observations, workflow_id=n.workflow_id)
            for n, c in queue.find_notices(session, key.organisation_id, search)]


ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Cette clé d'idempotence a déjà servi pour une autre requête"},
    422: {"description": "Demande invalide (motif de blocage manquant…) : rien n'a été fait"},
}
ActionKey = Annotated[str | None, Header(max_length=200, description="Rejouer la même clé (même corps) n'applique "
                                                                     "les actions qu'une fois : la première réponse "
                                                                     "revient, telle quelle")]


@router.post("/notices/actions", response_model=list[NoticeActionOut], responses=ACTION_ERRORS,
             summary="Valider, bloquer ou renvoyer des avis (réponse par avis)")
def notice_actions(body: NoticeActionIn, key: BrokerKey, session: DbSession, response: Response,
                   idempotency_key: ActionKey = None) -> list[NoticeActionOut]:
    """Each notice answers for itself: accepted (applied a moment later by its workflow) or refused with why (its
    status, an action already under way, «envoi en cours»…). With an `Idempotency-Key`, a retried call is applied
    once and gets the first answer again (`Idempotent-Replayed: true`); the same key with another body is refused
    (409)."""
    subject = _digest("actions", body)
    jti = _ledger_id(key, idempotency_key) if idempotency_key else None
    if jti and (seen := _claim(session, jti, subject)) is not None:
        earlier = session.get(ApiReply, jti) if seen == subject else None
        if earlier is None:
            raise HTTPException(409, "Cette clé d'idempotence a déjà servi pour une autre requête.")
        response.headers["Idempotent-Replayed"] = "true"
        return [NoticeActionOut.model_validate(answer) for answer in earlier.answer]
    try:
        outcomes = queue.request_as(session, get_settings(), organisation_id=key.organisation_id, actor_id=None,
                                    actor_name=f"API « {key.name} »", notice_ids=body.ids, action=body.action,
                                    reason=body.reason)
    except queue.ActionInvalid as exc:  # rolled back with the claim: the key may serve again
        raise HTTPException(422, str(exc)) from exc
    answers = [NoticeActionOut(id=o.notice_id, number=o.number, accepted=o.refused is None, refused=o.refused)
               for o in outcomes]
    if jti:
        session.add(ApiReply(jti=jti, organisation_id=key.organisation_id,
                             answer=[answer.model_dump() for answer in answers]))
    return answers
