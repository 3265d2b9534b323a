"""Outbound events to the platform: an outbox table, signed with Standard Webhooks, retried."""
