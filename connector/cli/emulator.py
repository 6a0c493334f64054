"""CLI commands: emulator (``connector emulator``): the local Entra inbound provisioning API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connector.cli.paths import input_file_option

if TYPE_CHECKING:
    from connector.emulator import EmulatorConfig, RunningEmulator

__all__ = ["banner", "build_config", "register"]

DEFAULT_PORT = 8089


def build_config(
    config: Path | None,
    *,
    token: str | None = None,
    log_delay: float | None = None,
    quota: int | None = None,
    no_limits: bool = False,
    fault_rate: float | None = None,
    seed: int | None = None,
) -> EmulatorConfig:
    """The config file (or defaults) with the command-line overrides applied.

    ``gc_freeze`` is on unless the file sets it: this process is nothing but the emulator.
    Raises ConfigError (bad file) or ValueError (bad override).
    """
    from connector.emulator import EmulatorConfig, load_config

    cfg = load_config(config) if config is not None else EmulatorConfig()
    updates: dict[str, object] = {}
    if "gc_freeze" not in cfg.model_fields_set:
        updates["gc_freeze"] = True
    if token is not None:
        updates["tokens"] = [token]
    if log_delay is not None:
        updates["log_delay_seconds"] = log_delay
    if quota is not None:
        updates["daily_quota"] = quota or None
    if no_limits:
        updates.update(daily_quota=None, rate_limit_calls=None, logs_rate_limit_calls=None)
    if fault_rate is not None:
        updates["fault_rate"] = fault_rate
    if seed is not None:
        updates["seed"] = seed
    return EmulatorConfig.model_validate({**cfg.model_dump(), **updates})


def banner(emu: RunningEmulator) -> tuple[list[str], list[str]]:
    """(lines for stdout, warnings for stderr) describing a running emulator.

    URLs use a connectable address: a wildcard bind (0.0.0.0, ::) is shown as loopback.
    """
    from connector.emulator.server import is_loopback, is_wildcard

    warnings: list[str] = []
    if is_wildcard(emu.host):
        warnings.append(
            f"warning: listening on all interfaces ({emu.host}), reachable from other machines;"
            f" the URLs below use {emu.connect_host} (this machine); from elsewhere use this"
            " machine's address. /_emulator/* needs the token from non-loopback clients."
        )
    elif not is_loopback(emu.host):
        warnings.append(
            f"warning: listening on {emu.host}, reachable from other machines;"
            " /_emulator/* needs the token from non-loopback clients."
        )
    lines = [
        f"base URL:         {emu.base_url}",
        f"bulkUpload URL:   {emu.endpoint_url}",
        f"token:            {emu.token}",
        f"servicePrincipal: {emu.service_principal_id}",
        f"job:              {emu.job_id}",
        f"logs:             {emu.graph_url}/auditLogs/provisioning",
        f"introspection:    {emu.base_url}/_emulator/users",
    ]
    return lines, warnings


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
    from connector.emulator import run_emulator
    from connector.errors import ConfigError

    try:
        cfg = build_config(
            config,
            token=token,
            log_delay=log_delay,
            quota=quota,
            no_limits=no_limits,
            fault_rate=fault_rate,
            seed=seed,
        )
        bind = host or "127.0.0.1"
        with run_emulator(cfg, host=bind, port=port, allow_non_loopback=host is not None) as emu:
            lines, warnings = banner(emu)
            for warning in warnings:
                typer.secho(warning, fg="yellow", err=True)
            for line in lines:
                typer.echo(line)
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
            bool,
            typer.Option(
                "--no-limits",
                help="Disable the 40/5 s window, the quota and the 5/10 s log-read limit.",
            ),
        ] = False,
        fault_rate: Annotated[
            float | None, typer.Option(help="Share of bulkUpload calls answered 500/503.")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of the fault lottery.")] = None,
        config: Annotated[
            Path | None,
            input_file_option("--config", help="YAML/JSON file with EmulatorConfig fields."),
        ] = None,
    ) -> None:
        """Run the local Entra inbound provisioning API emulator until Ctrl+C."""
        _serve(host, port, token, log_delay, quota, no_limits, fault_rate, seed, config)
