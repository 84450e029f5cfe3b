"""E-mail campaigns, behind their workflow: freeze the recipients, render a batch into the outbox, copy the outcome
of a batch onto its recipients, finish."""

from sqlalchemy import func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core import outbox
from core.db import utcnow
from core.rendering import RenderError
from core.settings import Settings
from services.campaigns.models import Campaign, CampaignRecipient, DistributionList, Driver, MailTemplate
from services.campaigns.service.campaigns import STATUS_LABELS
from services.campaigns.service.lists import recipients_query
from services.campaigns.service.mailtemplates import current_vehicles, render_for_driver
from services.campaigns.service.reach import able_only
from workflows.data.campaigns import PrepareBatch, PreparedBatch, RecordBatch

MISSING_EMAIL = ("Mail manquant", "Adresse mail manquante dans les infos du conducteur")


class CampaignGone(LookupError):
    """The campaign was deleted under its workflow."""


def freeze_recipients(session: Session, *, campaign_id: int) -> int:
    """Resolve the list once, in SQL, into campaign_recipients (idempotent: a retry adds nobody twice)."""
    campaign = session.get(Campaign, campaign_id, with_for_update=True)
    if campaign is None:
        raise CampaignGone(f"Campagne {campaign_id} introuvable")
    dlist = session.get(DistributionList, campaign.list_id)
    assert dlist is not None
    # A Workflow campaign launched leaving out who cannot answer (`reach`) never freezes them.
    drivers = able_only(session, campaign, recipients_query(campaign.organisation_id, dlist.filters)
                        .order_by(None)).subquery()
    session.execute(
        insert(CampaignRecipient)
        .from_select(["campaign_id", "driver_id", "email", "state"],
                     select(literal(campaign_id), drivers.c.id, drivers.c.email, literal("pending"))
                     .order_by(drivers.c.nom, drivers.c.prenom, drivers.c.id))
        .on_conflict_do_nothing(index_elements=["campaign_id", "driver_id"])
    )
    campaign.total = session.scalar(
        select(func.count()).where(CampaignRecipient.campaign_id == campaign_id)) or 0
    return campaign.total


def prepare_batch(session: Session, settings: Settings, inp: PrepareBatch) -> PreparedBatch:
    """Render the next recipients into the outbox; drivers without e-mail go straight to the error list."""
    campaign = session.get(Campaign, inp.campaign_id)
    assert campaign is not None and campaign.template_id is not None
    template = session.get(MailTemplate, campaign.template_id)
    assert template is not None
    recipients = session.execute(
        select(CampaignRecipient.id, CampaignRecipient.state, CampaignRecipient.outbox_id, Driver)
        .join(Driver, Driver.id == CampaignRecipient.driver_id)
        .where(CampaignRecipient.campaign_id == inp.campaign_id, CampaignRecipient.id > inp.after_id)
        .order_by(CampaignRecipient.id).limit(inp.limit)
    ).all()
    if not recipients:
        return PreparedBatch()
    vehicles = current_vehicles(session, [r.Driver.id for r in recipients])
    changes: list[dict[str, object]] = []
    messages: dict[int, outbox.NewMessage] = {}  # recipient id → its mail
    outbox_ids = [r.outbox_id for r in recipients if r.state == "pending" and r.outbox_id is not None]
    for r in recipients:
        driver = r.Driver
        if r.state != "pending" or r.outbox_id is not None:
            continue  # done by an earlier attempt of this batch
        if not driver.email:
            changes.append({"id": r.id, "state": "error", "status": MISSING_EMAIL[0],
                            "message": MISSING_EMAIL[1]})
            continue
        try:
            mail = render_for_driver(template.subject, template.body, driver=driver,
                                     vehicle=vehicles.get(driver.id), settings=settings)
        except RenderError as exc:
            changes.append({"id": r.id, "state": "error", "status": "Erreur de modèle", "message": str(exc)})
            continue
        messages[r.id] = outbox.NewMessage(f"campaign-{inp.campaign_id}-driver-{driver.id}", [driver.email],
                                           mail.subject, mail.text, mail.document())
    ids = outbox.enqueue_many(session, settings=settings, organisation_id=campaign.organisation_id,
                              messages=list(messages.values()))  # HeaderInjection: the caller's to fail for good
    for recipient_id, message in messages.items():
        changes.append({"id": recipient_id, "outbox_id": ids[message.key]})
        outbox_ids.append(ids[message.key])
    if changes:  # one executemany, not one UPDATE per recipient through the ORM
        session.execute(update(CampaignRecipient), changes)
    return PreparedBatch(recipients[0].id, recipients[-1].id, len(recipients), outbox_ids)


def record_batch(session: Session, inp: RecordBatch) -> None:
    """Copy the outbox outcome of a batch onto its recipients ("Envoyé" or the server's refusal)."""
    session.execute(text("""
        UPDATE campaigns.campaign_recipients r
           SET state = CASE o.status WHEN 'sent' THEN 'sent' ELSE 'error' END,
               status = CASE o.status WHEN 'sent' THEN 'Envoyé' ELSE 'Erreur d''envoi' END,
               message = CASE o.status WHEN 'sent' THEN 'Mail envoyé à l''adresse ' || r.email
                         ELSE 'Refusé par le serveur de messagerie : ' || coalesce(o.last_reply, '') END,
               updated_at = now()
          FROM core.outbox o
         WHERE o.id = r.outbox_id AND o.status IN ('sent', 'ko') AND r.state = 'pending'
           AND r.campaign_id = :campaign_id AND r.id BETWEEN :first_id AND :last_id
    """), {"campaign_id": inp.campaign_id, "first_id": inp.first_id, "last_id": inp.last_id})


def finish(session: Session, *, campaign_id: int) -> str:
    """EN COURS ENVOI → ENVOYE; returns the label of the campaign's final status."""
    session.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status == "sending")
                    .values(status="sent", finished_at=utcnow()))
    return STATUS_LABELS["sent"]
