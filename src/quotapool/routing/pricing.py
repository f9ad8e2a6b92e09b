"""Built-in prices for least_cost: USD per million tokens, blended 3 input : 1 output.

Public list prices at the time of writing; override or extend with `[routing.pricing]` or a
credential's own `prices` (a reseller or a discount).
"""

from __future__ import annotations


def _blend(input_usd: float, output_usd: float) -> float:
    return (3 * input_usd + output_usd) / 4


DEFAULT_PRICES: dict[str, float] = {
    "gpt-4.1": _blend(2.0, 8.0),
    "gpt-4.1-mini": _blend(0.4, 1.6),
    "gpt-4.1-nano": _blend(0.1, 0.4),
    "gpt-4o": _blend(2.5, 10.0),
    "gpt-4o-mini": _blend(0.15, 0.6),
    "o3": _blend(2.0, 8.0),
    "o4-mini": _blend(1.1, 4.4),
}
