"""``python -m upgrade_tasks ...``: the same as the ``praxis-upgrade`` command."""

from upgrade_tasks.program import main

if __name__ == "__main__":  # (not when a process of --projects imports it)
    main()
