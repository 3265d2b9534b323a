"""The org's link to its QuickBooks company: connect, status, test, disconnect, token upkeep."""
