"""The dev QuickBooks card page and the dev-only routes it drives (dev and test env only)."""
