"""quotapool: one endpoint in front of many LLM credentials."""

__version__ = "0.1.0"
