"""Allow ``python -m evalbench``."""

from evalbench.cli import main

raise SystemExit(main())
