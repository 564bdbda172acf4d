"""prAxIs OS upgrader: the Invoke task file of a checkout (``invoke -r CHECKOUT upgrade ...``).

The tasks live in the package (``upgrade_tasks/tasks.py``) so that the installed
``praxis-upgrade`` command has them too; ``invoke --list`` shows each phase task with the
module that implements it.
"""

from upgrade_tasks.tasks import ns

__all__ = ["ns"]
