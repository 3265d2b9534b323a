"""The companies a user can pick on the simulator's consent page."""
