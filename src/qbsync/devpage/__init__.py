"""The dev stand-in for the platform settings page: the callback outcome and the confirm step."""
