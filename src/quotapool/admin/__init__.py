"""The control plane: a JSON API (FastAPI) mounted beside the data plane at /quotapool/api/."""
