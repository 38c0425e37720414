"""``python -m sardana_macros``: print the directory to add to the Sardana ``MacroPath``."""

from __future__ import annotations

import logging

from . import macro_path

logger = logging.getLogger(__name__)


def main() -> None:
    """Print :func:`sardana_macros.macro_path`."""
    print(macro_path())


if __name__ == "__main__":
    main()
