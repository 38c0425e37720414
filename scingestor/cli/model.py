"""``scicat_ingest``: post JSON documents of any SciCat model (Samples, Instruments, ...)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Optional, Sequence

from ..credentials import CredentialError, CredentialSource, read_token_file
from ..scicat.api import V4_MODELS
from ..scicat.client import SciCatClient
from ..scicat.errors import SciCatError
from .common import add_common_options, start_up

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scicat_ingest",
        description="Ingest script for SciCat Models: posts each JSON file to <scicat_url>/MODEL.",
        epilog="examples:\n"
        "  scicat_ingest -m Samples -c ~/.scingestor.yaml sample1.json sample2.json\n"
        "  scicat_ingest -m Attachments -c ~/.scingestor.yaml -p ~/.mytoken.cfg att.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-m",
        "--model",
        dest="model",
        default="",
        help="SciCat model (collection) in plural, e.g. Samples, Instruments, Proposals",
    )
    add_common_options(parser)
    parser.add_argument(
        "-p",
        "--token-file",
        dest="tokenfile",
        default=None,
        help="file holding a ready access token (no login is made)",
    )
    parser.add_argument(
        "files", metavar="metadata_json_file", nargs="+", help="JSON file(s) to post"
    )
    return parser


def _client(cfg, tokenfile: Optional[str]) -> SciCatClient:
    if tokenfile:
        return SciCatClient(cfg, None, token=read_token_file(tokenfile))
    credentials = None
    if cfg.ingestor_credential_file:
        credentials = CredentialSource(cfg.ingestor_credential_file, cfg.ingestor_username)
    return SciCatClient(cfg, credentials)


def model_path(client: SciCatClient, model: str) -> str:
    """Where documents of ``model`` are posted.

    With a v4 ``scicat_url`` only datasets, origdatablocks and attachments live
    there; every other model (Samples, Proposals, Instruments …) is posted
    below the v3 root beside it (README "SciCat API v3 and v4").
    """
    if client.api_version == 4 and model.lower() not in V4_MODELS:
        return client.v3_url(model)
    return model


def post_file(client: SciCatClient, model: str, path: str) -> bool:
    """Post one file; logs one clear line and returns False on any failure."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        json.loads(text)
    except OSError as exc:
        logger.error("ModelIngestor: %s: cannot be read: %s", path, exc.strerror or exc)
        return False
    except ValueError as exc:
        logger.error("ModelIngestor: %s: not valid JSON: %s", path, exc)
        return False
    logger.info("ModelIngestor: Post the %s from %s", model, path)
    try:
        client.post(model_path(client, model), text)
    except SciCatError as exc:
        logger.error("ModelIngestor: %s: %s", path, exc)
        return False
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Post every file; exit 0 when all went in, 1 otherwise (255 without -m)."""
    parser = build_parser()
    options = parser.parse_args(argv)
    if not options.model:
        sys.stderr.write("Error: SciCat model not define. Use the -m or --model option\n")
        sys.stdout.write("\n")
        return 255
    options, cfg = start_up(parser, argv, options)
    model = options.model.strip("/")
    try:
        client = _client(cfg, options.tokenfile)
    except CredentialError as exc:
        logger.error("ModelIngestor: %s", exc)
        return 1
    try:
        results = [post_file(client, model, path) for path in options.files]
    finally:
        client.close()
    failed = results.count(False)
    if failed:
        logger.error("ModelIngestor: %d of %d file(s) not ingested", failed, len(results))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
