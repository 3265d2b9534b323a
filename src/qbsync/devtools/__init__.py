"""Dev and demo helpers: play the platform's backend and the accountant in the simulator."""
