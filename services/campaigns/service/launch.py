"""«Lancer la campagne»: claim it and queue its workflow's start in one transaction (`core.signals`).

The manager's answer never waits for Temporal: the campaign is EN COURS ENVOI at once and its workflow starts when
the relay delivers the start (at once, or when Temporal is back). A definition that cannot run (deactivated, a
template gone) is refused here, with a message, instead of failing later in a retried activity.
"""

from sqlalchemy.orm import Session

from core.models import Organisation, User
from core.settings import Settings
from core.signals import queue_start
from core.temporal import start_spec
from services.campaigns.models import Campaign, WorkflowDefinition
from services.campaigns.service.campaigns import KIND_LABELS, CampaignRefused, claim_launch
from services.campaigns.service.driverworkflows import IncompleteDefinition, snapshot_steps
from workflows.data.campaigns import EMAIL_CAMPAIGN, WORKFLOW_CAMPAIGN, EmailCampaignInput, WorkflowCampaignInput


def check_launchable(session: Session, *, campaign: Campaign) -> None:
    """Raises CampaignRefused when the campaign's workflow cannot run (deactivated meanwhile, Contraventions,
    incomplete)."""
    if campaign.kind != "workflow":
        return
    definition = session.get(WorkflowDefinition, campaign.workflow_definition_id)
    if definition is None or not definition.enabled:
        name = f"« {definition.name} » " if definition else ""
        raise CampaignRefused(f"Le workflow {name}de cette campagne n'est plus activé : lancement refusé.")
    if definition.family == "contraventions":
        raise CampaignRefused(f"Le workflow « {definition.name} » est de la famille Contraventions : il suit les "
                              "amendes (FPS) dès leur saisie et ne peut pas servir dans une campagne. "
                              "Lancement refusé.")
    try:
        snapshot_steps(session, definition)
    except IncompleteDefinition as exc:
        raise CampaignRefused(f"{exc} Lancement refusé.") from exc


def launch_campaign(session: Session, settings: Settings, *, campaign: Campaign, user: User,
                    leave_out_unable: bool = False) -> None:
    """EN ATTENTE → EN COURS ENVOI and the start of its workflow, together or not at all; raises CampaignRefused.
    `leave_out_unable` (Workflow campaigns): the recipients who cannot answer (`reach`) are not frozen, so
    nobody asks them what they cannot give."""
    check_launchable(session, campaign=campaign)
    claim_launch(session, campaign=campaign, user=user)
    campaign.leave_out_unable = leave_out_unable and campaign.kind == "workflow"  # read by the freeze
    organisation = session.get(Organisation, campaign.organisation_id)
    assert organisation is not None
    workflow, arg = ((WORKFLOW_CAMPAIGN, WorkflowCampaignInput(campaign.id, settings.task_queue,
                                                               settings.mail_task_queue))
                     if campaign.kind == "workflow" else
                     (EMAIL_CAMPAIGN, EmailCampaignInput(campaign.id, settings.mail_task_queue,
                                                         settings.campaign_batch_size)))
    queue_start(session, organisation_id=organisation.id, spec=start_spec(
        f"campaign-{campaign.id}", workflow, arg, task_queue=settings.task_queue,
        summary=f"Campagne {KIND_LABELS[campaign.kind]} « {campaign.name} » ({organisation.name})",
        RelaisOrganisation=organisation.slug, RelaisDomain="campaigns", RelaisCampaign=str(campaign.id),
        RelaisFamily=KIND_LABELS[campaign.kind], RelaisStatus="EN COURS ENVOI"))
