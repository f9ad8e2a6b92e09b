"""What the CLI, the admin API and the dashboard read and change in a running quotapool."""
