"""What runs beside the requests: warmups, usage polls, the status watch."""
