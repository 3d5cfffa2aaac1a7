"""``python -m kinkgrad``: the command line, as the ``kinkgrad`` script (:mod:`.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
