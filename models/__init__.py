"""The case database: SQLAlchemy 2 models, their named queries, engine and migrations.

One module per aggregate (contacts, cases, messages, keywords); `models.db` builds the
engine and sessions and applies the Alembic migrations kept in `models/migrations`.
"""

from models.audit import AuditEntry
from models.base import Base
from models.cases import Case, CaseEvent
from models.contacts import Contact
from models.conversations import Conversation
from models.keywords import Keyword
from models.mail import MailCursor, StoredAttachment
from models.messages import InboundMessage, OutboundMessage

__all__ = [
    "AuditEntry",
    "Base",
    "Case",
    "CaseEvent",
    "Contact",
    "Conversation",
    "InboundMessage",
    "Keyword",
    "MailCursor",
    "OutboundMessage",
    "StoredAttachment",
]
