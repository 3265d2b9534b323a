"""qbsync: keeps a platform organisation and its QuickBooks Online company in step."""
