"""The routing in effect: quotapool.toml's, with the strategies an operator chose while running
(admin API, dashboard) over it. Choosing one has the effect of editing the file and sending
SIGHUP, and it lasts: it is kept in the database until cleared."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quotapool.config import Settings
from quotapool.routing.profiles import Routing
from quotapool.routing.registry import STRATEGIES, get_strategy
from quotapool.store.routing_overrides import RoutingOverrides

log = logging.getLogger(__name__)


class LiveRouting:
    def __init__(
        self,
        settings: Settings,
        overrides: RoutingOverrides,
        build: Callable[[Settings], Routing],
        use: Callable[[Routing], None],
        now: Callable[[], float],
    ) -> None:
        self._configured = settings
        self._overrides = overrides
        self._build = build
        self._use = use
        self._now = now
        self._chosen = overrides.strategies()
        self.on_chosen: Callable[[str, str | None], None] | None = None
        """Told of each choice made here (profile, strategy): replicas share them."""
        self.on_reloaded: Callable[[dict[str, str], dict[str, str]], None] | None = None
        """Told when a reload changed the profiles' strategies (before, after): the audit."""

    def current(self) -> Routing:
        """The routing the configuration and the choices make (built, not yet in use)."""
        return self._build(self._configured.with_strategies(self._chosen))

    def reload(self, settings: Settings) -> Routing:
        """A new configuration (SIGHUP); the choices stay over it."""
        before = _strategies(self.current())
        self._configured = settings
        routing = self.current()
        self._use(routing)
        after = _strategies(routing)
        if after != before and self.on_reloaded is not None:
            self.on_reloaded(before, after)
        return routing

    def choose(self, profile: str, strategy: str | None) -> Routing:
        """Route `profile` with `strategy` from now on (None: back to the configuration's).
        Raises LookupError for an unknown profile, ValueError for an unknown strategy."""
        if profile not in self._configured.routing_profiles():
            known = ", ".join(sorted(self._configured.routing_profiles()))
            raise LookupError(f"no routing profile {profile!r} (profiles: {known})")
        if strategy is None:
            self._overrides.clear(profile)
            self._chosen.pop(profile, None)
        else:
            get_strategy(strategy)
            self._overrides.choose(profile, strategy, self._now())
            self._chosen[profile] = strategy
        routing = self.current()
        self._use(routing)
        log.info("routing of profile %s: strategy %s", profile, strategy or "as configured")
        if self.on_chosen is not None:
            self.on_chosen(profile, strategy)
        return routing

    def adopt(self, profile: str, strategy: str | None) -> None:
        """A choice another replica made (and kept in the shared database): in use here too."""
        if profile not in self._configured.routing_profiles():
            return
        if strategy is None:
            self._chosen.pop(profile, None)
        elif strategy in STRATEGIES:
            self._chosen[profile] = strategy
        self._use(self.current())

    def describe(self, routing: Routing) -> dict[str, Any]:
        """Each profile as routed now, with the strategy the configuration gives and whether an
        operator's choice is over it; the strategies there are to choose from."""
        configured = self._configured.routing_profiles()
        profiles = {}
        for name, profile in sorted(routing.profiles.items()):
            described = profile.describe()
            described["configured_strategy"] = configured[name].strategy
            described["chosen"] = name in self._chosen
            profiles[name] = described
        return {"profiles": profiles, "strategies": sorted(STRATEGIES)}


def _strategies(routing: Routing) -> dict[str, str]:
    """Each profile's strategy, by name."""
    return {name: profile.strategy.name for name, profile in sorted(routing.profiles.items())}
