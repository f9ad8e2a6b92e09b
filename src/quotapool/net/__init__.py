"""The data plane's upstream I/O: a small protocol, its aiohttp implementation."""
