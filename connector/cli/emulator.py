"""CLI commands: emulator (``connector emulator``): the local Entra inbound provisioning API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

DEFAULT_PORT = 8089


def _serve(
    host: str | None,
    port: int,
    token: str | None,
    log_delay: float | None,
    quota: int | None,
    no_limits: bool,
    fault_rate: float | None,
    seed: int | None,
    config: Path | None,
) -> None:
    from connector.emulator import EmulatorConfig, load_config, run_emulator
    from connector.emulator.server import is_loopback
    from connector.errors import ConfigError

    try:
        cfg = load_config(config) if config is not None else EmulatorConfig()
        updates: dict[str, object] = {}
        if token is not None:
            updates["tokens"] = [token]
        if log_delay is not None:
            updates["log_delay_seconds"] = log_delay
        if quota is not None:
            updates["daily_quota"] = quota or None
        if no_limits:
            updates.update(daily_quota=None, rate_limit_calls=None)
        if fault_rate is not None:
            updates["fault_rate"] = fault_rate
        if seed is not None:
            updates["seed"] = seed
        cfg = EmulatorConfig.model_validate({**cfg.model_dump(), **updates})
        bind = host or "127.0.0.1"
        with run_emulator(cfg, host=bind, port=port, allow_non_loopback=host is not None) as emu:
            if not is_loopback(bind):
                typer.secho(
                    f"warning: listening on {bind}, reachable from other machines;"
                    " anyone who can reach it can read the emulated directory",
                    fg="yellow",
                    err=True,
                )
            typer.echo(f"base URL:         {emu.base_url}")
            typer.echo(f"bulkUpload URL:   {emu.endpoint_url}")
            typer.echo(f"token:            {emu.token}")
            typer.echo(f"servicePrincipal: {emu.service_principal_id}")
            typer.echo(f"job:              {emu.job_id}")
            typer.echo(f"logs:             {emu.graph_url}/auditLogs/provisioning")
            typer.echo(f"introspection:    {emu.base_url}/_emulator/users")
            typer.echo("press Ctrl+C to stop", err=True)
            stop = threading.Event()
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                typer.echo("stopping", err=True)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:  # pydantic validation of the CLI overrides
        typer.secho(f"error: invalid emulator option: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""

    @app.command("emulator")
    def emulator(
        host: Annotated[
            str | None,
            typer.Option(help="Address to bind (default 127.0.0.1; non-loopback only if given)."),
        ] = None,
        port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = DEFAULT_PORT,
        token: Annotated[
            str | None, typer.Option(help="Bearer token to accept (default: a generated one).")
        ] = None,
        log_delay: Annotated[
            float | None, typer.Option(help="Seconds before a processed record shows in logs.")
        ] = None,
        quota: Annotated[
            int | None, typer.Option(help="Daily call quota (default 2000; 0 disables).")
        ] = None,
        no_limits: Annotated[
            bool, typer.Option("--no-limits", help="Disable the 40/5 s window and the quota.")
        ] = False,
        fault_rate: Annotated[
            float | None, typer.Option(help="Share of bulkUpload calls answered 500/503.")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of the fault lottery.")] = None,
        config: Annotated[
            Path | None, typer.Option(help="YAML/JSON file with EmulatorConfig fields.")
        ] = None,
    ) -> None:
        """Run the local Entra inbound provisioning API emulator until Ctrl+C."""
        _serve(host, port, token, log_delay, quota, no_limits, fault_rate, seed, config)
