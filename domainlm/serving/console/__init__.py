"""The web console at /console: verticals, registry (promote / rollback), eval reports, live metrics, playground
and audit log, served by the gateway itself from package files (no CDN, no Node toolchain).

The gateway calls `mount(app, service)` when `gateway.console` is true (domainlm.serving.app.mount_console).
"""

from __future__ import annotations


def mount(app, service) -> None:
    """Add the console's routes to a gateway app and give them the service's registry, metrics and audit log."""
    from domainlm.serving.console.router import router
    from domainlm.serving.console.state import ConsoleState

    app.state.console = ConsoleState(service)
    app.include_router(router)


__all__ = ["mount"]
