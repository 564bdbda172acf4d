"""``python -m upgrade_tasks ...``: the same as the ``praxis-upgrade`` command."""

from upgrade_tasks.program import main

main()
