"""Every table, imported here so Alembic and the app see one complete metadata."""

from qbsync.models.base import Base
from qbsync.models.catalogue_entry import CatalogueEntry, CatalogueKind
from qbsync.models.cdc_watermark import CdcWatermark
from qbsync.models.connection import Connection, ConnectionStatus
from qbsync.models.entity_mapping import EntityMapping, MappingKind, MappingSource
from qbsync.models.oauth_state import OAuthState
from qbsync.models.outbound_event import DeliveryStatus, OutboundEvent
from qbsync.models.pending_grant import PendingGrant
from qbsync.models.pending_revocation import PendingRevocation
from qbsync.models.platform_event import PlatformEvent
from qbsync.models.qbo_webhook_event import QboWebhookEvent
from qbsync.models.sync_record import RecordKind, RecordStatus, SyncRecord
from qbsync.models.sync_settings import CustomerSyncMode, ExpenseMode, SyncSettings

__all__ = [
    "Base",
    "CatalogueEntry",
    "CatalogueKind",
    "CdcWatermark",
    "Connection",
    "ConnectionStatus",
    "CustomerSyncMode",
    "DeliveryStatus",
    "EntityMapping",
    "ExpenseMode",
    "MappingKind",
    "MappingSource",
    "OAuthState",
    "OutboundEvent",
    "PendingGrant",
    "PendingRevocation",
    "PlatformEvent",
    "QboWebhookEvent",
    "RecordKind",
    "RecordStatus",
    "SyncRecord",
    "SyncSettings",
]
