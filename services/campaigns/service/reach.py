"""Who cannot answer a Workflow campaign: told before the launch, and left out of it if the manager chooses.

A Compteurs workflow asks for a reading of the driver's vehicle: a driver without one cannot give it. Every
workflow's first mail carries the link to answer: a recipient without that mail's address never gets it.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, exists, false, func, or_, select
from sqlalchemy.orm import Session

from services.campaigns.models import Campaign, DistributionList, Driver, Vehicle, WorkflowDefinition
from services.campaigns.service.lists import recipients_query

ADDRESS_COLUMNS = {"utilisateur": Driver.email, "responsable": Driver.responsable_email}


@dataclass(frozen=True)
class Unable:
    """A group of recipients who cannot answer, and why (French, follows "N destinataire(s) …")."""

    count: int
    why: str


@dataclass(frozen=True)
class Reasons:
    conditions: list[tuple[ColumnElement[bool], str]]

    def any(self) -> ColumnElement[bool]:
        return or_(*[c for c, _ in self.conditions]) if self.conditions else false()


def reasons(definition: WorkflowDefinition) -> Reasons:
    """What each recipient of `definition` needs to answer, as SQL conditions on Driver that say they lack it."""
    conditions: list[tuple[ColumnElement[bool], str]] = []
    if definition.family == "compteurs":
        conditions.append((~exists().where(Vehicle.driver_id == Driver.id),
                           "n'ont aucun véhicule affecté : ils ne peuvent pas donner de relevé kilométrique"))
    first = (definition.steps or [{}])[0]
    if first.get("type") == "mail":
        to = str(first.get("to") or "utilisateur")
        column = ADDRESS_COLUMNS.get(to, Driver.email)
        who = "de responsable avec une adresse e-mail" if to == "responsable" else "d'adresse e-mail"
        conditions.append((func.coalesce(column, "") == "",
                           f"n'ont pas {who} : le mail de l'étape « {first.get('name') or 'Envoi mail'} » "
                           "(et son lien pour répondre) ne peut pas leur parvenir"))
    return Reasons(conditions)


def _campaign_parts(session: Session, campaign: Campaign) -> tuple[DistributionList, WorkflowDefinition] | None:
    if campaign.kind != "workflow" or campaign.workflow_definition_id is None:
        return None
    dlist = session.get(DistributionList, campaign.list_id)
    definition = session.get(WorkflowDefinition, campaign.workflow_definition_id)
    return (dlist, definition) if dlist is not None and definition is not None else None


def unable_recipients(session: Session, *, campaign: Campaign) -> tuple[list[Unable], int]:
    """The groups of the campaign's recipients who cannot answer (empty ones omitted) and how many that is in all
    (a recipient may be in two groups)."""
    parts = _campaign_parts(session, campaign)
    if parts is None:
        return [], 0
    dlist, definition = parts
    found = reasons(definition)
    base = recipients_query(campaign.organisation_id, dlist.filters).order_by(None)

    def count(condition: ColumnElement[bool]) -> int:
        return session.scalar(select(func.count()).select_from(base.where(condition).subquery())) or 0

    groups = [Unable(n, why) for condition, why in found.conditions if (n := count(condition))]
    return groups, (count(found.any()) if groups else 0)


def able_only(session: Session, campaign: Campaign, stmt: Select[Driver]) -> Select[Driver]:
    """`stmt` without the recipients who cannot answer, when the campaign was launched leaving them out."""
    parts = _campaign_parts(session, campaign) if campaign.leave_out_unable else None
    return stmt if parts is None else stmt.where(~reasons(parts[1]).any())

