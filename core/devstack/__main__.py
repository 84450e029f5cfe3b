"""`python -m core.devstack` (what `make run` calls): the whole platform on one machine."""

from core.devstack.run import main

raise SystemExit(main())
