"""``featurestore serve``: the REST API on uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from featurestore_dagster.cli.app import OVERRIDES, app, err, handle_errors, settings


@app.command()
@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    anonymous_read: Annotated[
        bool,
        typer.Option("--anonymous-read", help="Let clients without a token use the read routes."),
    ] = False,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body accepted (bytes).")
    ] = 1024 * 1024,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API under /api/v1 (OpenAPI document at /docs).

    Tokens: FEATURESTORE_API_TOKENS holds 'token:role' pairs (roles read and write, separated
    by commas), FEATURESTORE_API_TOKENS_FILE names a file of such pairs, one a line. Writes
    need a write token, reads a read or write token (none with --anonymous-read). Without
    tokens the server answers loopback clients only and refuses a non-loopback --host.
    """
    import uvicorn

    from featurestore_dagster.api.app import ENV_ANONYMOUS_READ, ENV_MAX_BODY_BYTES
    from featurestore_dagster.api.auth import check_bind, load_tokens
    from featurestore_dagster.config import ENV_DEFINITIONS, ENV_REGISTRY_URL

    tokens = load_tokens(anonymous_read=anonymous_read)
    check_bind(host, tokens)
    config = settings()  # fail now, not in every worker, on a bad configuration
    # Worker processes build the app from the environment: hand them these options.
    if OVERRIDES.definitions is not None:
        os.environ[ENV_DEFINITIONS] = str(config.definitions_path)
    if OVERRIDES.registry_url is not None:
        os.environ[ENV_REGISTRY_URL] = config.registry_url
    os.environ[ENV_ANONYMOUS_READ] = "1" if anonymous_read else ""
    os.environ[ENV_MAX_BODY_BYTES] = str(max_body_bytes)
    err.print(f"featurestore serve: http://{host}:{port}/docs ({tokens.summary()})")
    uvicorn.run(
        "featurestore_dagster.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=log_level == "debug",
    )
