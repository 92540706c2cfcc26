"""``python -m labkit.data prepare ...``: see ``labkit.data.prepare``."""

from labkit.data.prepare import main

raise SystemExit(main())
