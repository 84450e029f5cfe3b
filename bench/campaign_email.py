"""Benchmark: a 10,000-recipient e-mail campaign against smtp-sink, compared with a bare aiosmtplib loop.

    .venv/bin/python bench/campaign_email.py [--recipients 10000]

Both figures are measured in the same run, against the same sink, with messages of the same size;
the campaign figure is end to end: from the launch (workflow start) to the campaign's ENVOYE.
"""

import argparse
import asyncio
import os
import time

from bench.common import free_port, smtp_sink, start_database, temporal_and_workers

TARGET, STRETCH = 0.8, 1.0


async def plain_loop(port: int, count: int, subject: str, text: str, html: str) -> float:
    """The reference: one aiosmtplib connection, one message after the other (messages/s), each built by
    the same `build_email` as the campaign's, so both send the same bytes."""
    import aiosmtplib

    from core.models import OutboxMessage
    from core.outbox import build_email

    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    started = time.perf_counter()
    for n in range(count):
        row = OutboxMessage(sender="Relais <no-reply@relais.local>", recipients=[f"c{n}@bench.example"], cc=[],
                            subject=subject, text_body=text, html_body=html, message_id=f"<plain-{n}@relais.local>")
        await client.send_message(build_email(row))
    elapsed = time.perf_counter() - started
    await client.quit()
    return count / elapsed


def seed_campaign(recipients: int) -> tuple[int, int]:
    """An organisation with `recipients` drivers (bulk insert), a list, a template and a campaign."""
    from sqlalchemy.dialects.postgresql import insert

    from core.db import session_scope
    from core.models import Organisation, User
    from services.campaigns.models import Campaign, DistributionList, Driver, MailTemplate

    with session_scope() as session:
        org = Organisation(slug="bench", name="Bench", kind="fleet")
        session.add(org)
        session.flush()
        user = User(organisation_id=org.id, email="bench@bench.example", full_name="Bench", password_hash="x")
        session.add(user)
        session.flush()
        rows = [{"organisation_id": org.id, "matricule": f"B{n:06d}", "nom": f"Nom{n}", "prenom": f"Prénom{n}",
                 "email": f"c{n}@bench.example", "code_postal": "31000", "departement": "31"}
                for n in range(recipients)]
        for start in range(0, recipients, 2000):
            session.execute(insert(Driver).values(rows[start:start + 2000]))
        dlist = DistributionList(organisation_id=org.id, name="Tous", filters={})
        template = MailTemplate(organisation_id=org.id, name="Relevé", subject="Relevé kilométrique de {{prenom}}",
                                body="Bonjour {{prenom}} {{nom}},\n\nMerci de saisir votre kilométrage.\n\n"
                                     "{{lien_connexion}}\n\nVotre gestionnaire de parc vous remercie.")
        session.add_all([dlist, template])
        session.flush()
        campaign = Campaign(organisation_id=org.id, name="Bench", kind="email", list_id=dlist.id,
                            template_id=template.id, status="sending", created_by_id=user.id)
        session.add(campaign)
        session.flush()
        return org.id, campaign.id


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    os.environ.update(ENVIRONMENT="test", SECRET_KEY="bench-secret-" + "x" * 40, LOG_FORMAT="json",
                      SMTP_HOST="127.0.0.1", SMTP_PORT=str(port))
    start_database()
    from core.settings import get_settings
    from services.campaigns.models import Campaign
    from workflows.campaign_email import EmailCampaignInput, EmailCampaignWorkflow

    _org_id, campaign_id = seed_campaign(args.recipients)
    settings = get_settings()
    with smtp_sink(port):
        async with temporal_and_workers() as client:
            from core.db import session_scope
            from services.campaigns.models import Driver
            from services.campaigns.service.mailtemplates import render_for_driver

            with session_scope() as session:
                campaign = session.get(Campaign, campaign_id)
                driver = session.query(Driver).filter(Driver.matricule == "B000000").one()
                from services.campaigns.models import MailTemplate

                template = session.get(MailTemplate, campaign.template_id)  # type: ignore[union-attr]
                sample = render_for_driver(template.subject, template.body, driver=driver, vehicle=None,  # type: ignore[union-attr]
                                           settings=settings)
            plain = await plain_loop(port, min(args.recipients, 5000), sample.subject, sample.text, sample.html)
            started = time.perf_counter()
            await client.execute_workflow(  # type: ignore[attr-defined]
                EmailCampaignWorkflow.run,
                EmailCampaignInput(campaign_id, settings.mail_task_queue, settings.campaign_batch_size),
                id=f"campaign-{campaign_id}", task_queue=settings.task_queue,
            )
            elapsed = time.perf_counter() - started
    rate = args.recipients / elapsed
    with session_scope() as session:
        from services.campaigns.service.campaigns import progress

        done = progress(session, session.get(Campaign, campaign_id))  # type: ignore[arg-type]
    print(f"campaign: {args.recipients} recipients sent in {elapsed:.1f} s → {rate:.0f} msg/s "
          f"(sent {done.sent}, errors {done.errors})")
    print(f"plain aiosmtplib loop, one connection: {plain:.0f} msg/s")
    print(f"ratio campaign / plain = {rate / plain:.2f} (target >= {TARGET}, stretch >= {STRETCH})")


if __name__ == "__main__":
    asyncio.run(main())
