from __future__ import annotations

from wdp.cli import main

raise SystemExit(main())
