"""QuickBooks webhooks in: verified on the raw bytes, each change stored once, pulls queued."""
