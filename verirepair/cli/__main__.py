"""``python -m verirepair.cli``."""

from verirepair.cli.entry import main

raise SystemExit(main())
