"""Strategies an operator chose while running (admin API, dashboard): kept in the database so
they outlive a restart and a reload, and win over quotapool.toml until cleared."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select, update

from quotapool.store.sql.schema import routing_overrides


class RoutingOverrides:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def strategies(self) -> dict[str, str]:
        """Profile → the strategy chosen for it."""
        query = select(routing_overrides.c.profile, routing_overrides.c.strategy)
        with self.engine.connect() as connection:
            return {profile: strategy for profile, strategy in connection.execute(query)}

    def choose(self, profile: str, strategy: str, now: float) -> None:
        values = {"strategy": strategy, "updated_at": now}
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(routing_overrides)
                .where(routing_overrides.c.profile == profile)
                .values(**values)
            ).rowcount
            if not changed:
                connection.execute(insert(routing_overrides).values(profile=profile, **values))

    def clear(self, profile: str) -> None:
        """Back to the configuration's strategy."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(routing_overrides).where(routing_overrides.c.profile == profile)
            )
