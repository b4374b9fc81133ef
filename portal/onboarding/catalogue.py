"""The onboarding tasks of the seed's chapter 5, as KOMBIT lists them."""

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class TaskDefinition:
    number: int
    relevant_for: Promise
    kind: Promise
    frequency: Promise
    title: Promise
    tool: Promise
    responsible: Promise
    executor: Promise
    depends_on: tuple[int, ...]
    comment: Promise
    # Which organisation acts on the task, for reminders and "whose move".
    actor: str  # "vendor", "municipality", "kombit", "sender", "receiver"
    per_municipality: bool = False


TASKS = (
    TaskDefinition(
        10,
        _("Vendor"),
        _("Prerequisite"),
        _("Once"),
        _("Write the data specification"),
        _("Agreed between the parties"),
        _("Vendor"),
        _("Vendor"),
        (),
        _("See the suggested contents in the service description."),
        "sender",
    ),
    TaskDefinition(
        20,
        _("Vendor and municipality"),
        _("Agreement"),
        _("Once"),
        _("Make the data-processing agreement"),
        _("–"),
        _("Municipality"),
        _("Vendor"),
        (),
        _("Order the establishment of the route."),
        "sender",
    ),
    TaskDefinition(
        30,
        _("Vendor"),
        _("Prerequisite"),
        _("Once"),
        _("Order the InfRef and submit the GDPR declaration"),
        _("Administrationsmodulet"),
        _("Vendor"),
        _("Vendor"),
        (),
        _("Sent by mail to kdi@kombit.dk."),
        "sender",
    ),
    TaskDefinition(
        40,
        _("KOMBIT"),
        _("Prerequisite"),
        _("Once"),
        _("Create the InfRef"),
        _("Administrationsmodulet"),
        _("KOMBIT"),
        _("KOMBIT"),
        (30,),
        _("–"),
        "kombit",
    ),
    TaskDefinition(
        50,
        _("Vendor"),
        _("Prerequisite"),
        _("Once"),
        _("Create the SFTP user and IT system (sender)"),
        _("Administrationsmodulet"),
        _("Sending vendor"),
        _("Vendor (sender)"),
        (),
        _("Fælleskommunal Filudveksling."),
        "sender",
    ),
    TaskDefinition(
        60,
        _("Vendor"),
        _("Prerequisite"),
        _("Once"),
        _("Create the SFTP user and IT system (receiver)"),
        _("Administrationsmodulet"),
        _("Municipality"),
        _("Vendor (receiver)"),
        (),
        _("Fælleskommunal Filudveksling."),
        "receiver",
    ),
    TaskDefinition(
        70,
        _("Vendor"),
        _("Prerequisite"),
        _("Once per authority"),
        _("Order the establishment of the SFTP route"),
        _("Order the service in Digitaliseringskataloget"),
        _("Vendor"),
        _("Depends on the agreement between authority and vendors"),
        (50, 60),
        _("The assigned InfRef must be used."),
        "sender",
        per_municipality=True,
    ),
)
BY_NUMBER = {task.number: task for task in TASKS}
ONCE = tuple(task.number for task in TASKS if not task.per_municipality)
PER_MUNICIPALITY = tuple(task.number for task in TASKS if task.per_municipality)
