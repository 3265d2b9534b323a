"""What syncs and how: settings, mappings, QuickBooks reference lists, customer matching and the
dry-run preview. The push engine reads everything here."""
